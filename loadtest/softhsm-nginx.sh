#!/usr/bin/env bash
# loadtest/softhsm-nginx.sh DIR [PORT]: the classic HSM-offload setup Keyward is compared with:
# nginx (Debian) whose P-256 key lives in SoftHSM2, reached through OpenSSL's PKCS#11 engine
# (libengine-pkcs11-openssl). Creates, all under DIR: a SoftHSM2 token "kw" (user PIN 1234),
# an EC P-256 key pair "bench" generated inside it (pkcs11-tool), a self-signed certificate
# for localhost/127.0.0.1 signed by that key through the engine, an openssl.cnf that loads the
# engine, and nginx.conf serving "ok" on 127.0.0.1:PORT (default 18442). Then it starts nginx
# in the foreground.
#
# nginx's default `master_process on`: when nginx starts as root its workers run as `nobody`
# and open SoftHSM2's token again after fork(), so DIR/tokens is made readable by all
# (a+rX). Corrected 2026-12-06: the finding of 2026-11-30 ("every handshake fails in the
# workers with Object handle invalid: handles do not survive fork()") was this permission
# error, which libp11 reports as an invalid object handle; with a readable token folder the
# workers serve (tests/pkcs11_nginx_e2e.rs). MASTER_PROCESS=off runs one process instead.
#
# Needs (Debian): nginx-light or nginx, softhsm2, libengine-pkcs11-openssl, opensc (pkcs11-tool).
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
port=${2:-18442}
module=/usr/lib/softhsm/libsofthsm2.so
engine=$(ls /usr/lib/*/engines-3/pkcs11.so | head -1)
mkdir -p "$dir/tokens" "$dir/nginx"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" >"$dir/softhsm2.conf"
export SOFTHSM2_CONF=$dir/softhsm2.conf
if ! softhsm2-util --show-slots | grep -q 'Label:.*kw'; then
  softhsm2-util --init-token --free --label kw --pin 1234 --so-pin 1234 >/dev/null
  pkcs11-tool --module "$module" --login --pin 1234 --token-label kw --keypairgen \
    --key-type EC:prime256v1 --label bench --id 01 >/dev/null
fi
chmod -R a+rX "$dir/tokens"
cat >"$dir/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $module
init = 0
CNF
export OPENSSL_CONF=$dir/openssl.cnf
key_uri="pkcs11:token=kw;object=bench;type=private;pin-value=1234"
openssl req -engine pkcs11 -keyform engine -key "$key_uri" -x509 -new -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -days 1 -sha256 -out "$dir/cert.pem" 2>/dev/null
cat >"$dir/nginx/nginx.conf" <<CONF
master_process ${MASTER_PROCESS:-on};
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
ssl_engine pkcs11;
env SOFTHSM2_CONF;
env OPENSSL_CONF;
events {}
http {
  access_log off;
  client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx; fastcgi_temp_path $dir/nginx;
  uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key "engine:pkcs11:$key_uri";
    location / { return 200 "ok\n"; }
  }
}
CONF
echo "softhsm-nginx: https://127.0.0.1:$port/ (certificate $dir/cert.pem)" >&2
exec /usr/sbin/nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx"

#!/usr/bin/env bash
# loadtest/api-sign.sh: P-256 signatures per second through the HSM REST API, single requests
# and batches of 100, over HTTP/2 keep-alive (h2load from Debian's nghttp2-client).
# The API node runs on CPU 0 (TOKIO_WORKER_THREADS=1), h2load on CPU 1. Each request signs a
# 32-byte message with ecdsa-sha256 (DER). Prints a Markdown table.
# Env: REQUESTS (single-sign requests, default 20000), BATCHES (default 400), CLIENTS (4),
#      STREAMS (max concurrent streams per client, 16), KEYWARD_BIN (target/release/keyward).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v h2load >/dev/null || { echo "install h2load: apt-get install nghttp2-client" >&2; exit 1; }
bin=${KEYWARD_BIN:-target/release/keyward}
[[ -x $bin ]] || cargo build --release --bin keyward
requests=${REQUESTS:-20000}; batches=${BATCHES:-400}; clients=${CLIENTS:-4}; streams=${STREAMS:-16}
tmp=$(mktemp -d); pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
KEYWARD_ADMIN_PASSWORD=admin-password "$bin" init --data-dir "$tmp/hsm" >/dev/null
TOKIO_WORKER_THREADS=1 KEYWARD_LOG=info taskset -c 0 "$bin" hsm serve --data-dir "$tmp/hsm" --listen 127.0.0.1:0 2>"$tmp/log" &
pid=$!
addr=
for _ in $(seq 200); do
  addr=$(grep -o 'addr=[0-9.:]*' "$tmp/log" | head -1 | cut -d= -f2 || true)
  [[ -n $addr ]] && break
  sleep 0.05
done
port=${addr##*:}
api() { curl -sS --cacert "$tmp/hsm/api-ca.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port$1" \
  -H 'content-type: application/json' "${@:2}"; }
token() { api /v1/auth/login -d "{\"username\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
admin=$(token admin admin-password)
api /v1/users -H "authorization: Bearer $admin" -d '{"username":"bench","role":"crypto-user","password":"bench-password"}' >/dev/null
tok=$(token bench bench-password)
key=$(api /v1/keys/asymmetric-pair -H "authorization: Bearer $tok" \
  -d '{"spec":"ec-p256","private":{"label":"bench","attributes":{"sign":true}},"public":{"label":"bench"}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["private"]["handle"])')
msg=$(head -c 32 /dev/urandom | base64 -w0)
printf '{"key":%s,"mechanism":"ecdsa-sha256","message":"%s"}' "$key" "$msg" >"$tmp/one.json"
python3 - "$key" "$msg" >"$tmp/batch.json" <<'PY'
import json, sys
print(json.dumps({"items": [{"key": int(sys.argv[1]), "mechanism": "ecdsa-sha256", "message": sys.argv[2]}] * 100}))
PY
run() { # $1 body file, $2 path, $3 requests
  taskset -c 1 h2load -n "$3" -c "$clients" -m "$streams" -d "$1" \
    -H "authorization: Bearer $tok" -H 'content-type: application/json' "https://127.0.0.1:$port$2" 2>&1
}
one=$(run "$tmp/one.json" /v1/crypto/sign "$requests")
many=$(run "$tmp/batch.json" /v1/crypto/sign/batch "$batches")
rps() { grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$1" | grep -o '[0-9.]* req/s' | cut -d' ' -f1; }
ok() { grep -o '[0-9]* succeeded' <<<"$1" | head -1 | cut -d' ' -f1; }
codes() { grep 'status codes' <<<"$1"; }
r1=$(rps "$one"); r2=$(rps "$many")
echo "| mode | requests/s | signs/s | succeeded | status codes |"
echo "|---|---:|---:|---:|---|"
echo "| single sign (h2, ${clients}x${streams} streams) | $r1 | $r1 | $(ok "$one")/$requests | $(codes "$one") |"
echo "| batch of 100 (h2, ${clients}x${streams} streams) | $r2 | $(python3 -c "print(round($r2*100))") | $(ok "$many")/$batches | $(codes "$many") |"

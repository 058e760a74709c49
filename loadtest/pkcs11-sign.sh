#!/usr/bin/env bash
# loadtest/pkcs11-sign.sh: signatures per second and latency per call through Keyward's
# PKCS#11 module (issue 17; BENCHMARKS.md), with SoftHSM2 (in-process, no network) as the
# reference. ECDSA P-256 over a SHA-256 digest (CKM_ECDSA), one session per process, 1, 4
# and 16 processes (PROCS), SECONDS_EACH (5) seconds each; every process loads and
# initializes the module after fork(), as nginx workers do.
# Keyward: one `keyward hsm serve` node (SQLite store) on 127.0.0.1, pinned to CPU 1; the
# clients on CPU 0. Everything in a mktemp -d folder; processes stopped by PID.
# Env: KEYWARD_BIN (target/release/keyward), MODULE (target/release/libkeyward_pkcs11.so),
#      PYTHON (target/pkcs11-venv/bin/python: python-pkcs11, as scripts/test installs it).
# Prints JSON lines, then a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-5}; procs=${PROCS:-"1 4 16"}
bin=${KEYWARD_BIN:-target/release/keyward}
module=${MODULE:-target/release/libkeyward_pkcs11.so}
py=${PYTHON:-target/pkcs11-venv/bin/python}
if [[ -z ${KEYWARD_BIN:-} || -z ${MODULE:-} ]]; then
  cargo build --release --locked -p keyward -p keyward-pkcs11 >&2
fi
if ! "$py" -c 'import pkcs11' 2>/dev/null; then
  python3 -m venv target/pkcs11-venv && target/pkcs11-venv/bin/pip install -q --only-binary :all: python-pkcs11
  py=target/pkcs11-venv/bin/python
fi
tmp=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; read -rt 0.1 <> <(:) || true; done
  echo "port $1 did not open" >&2; return 1
}
printf 'admin-password\n' > "$tmp/admin.pw"; printf 'app-password\n' > "$tmp/app.pw"; chmod 600 "$tmp"/*.pw
"$bin" init --data-dir "$tmp/node" --admin-password-file "$tmp/admin.pw" >/dev/null
port=$(free_port)
KEYWARD_LOG=warn taskset -c 1 "$bin" hsm serve --data-dir "$tmp/node" --listen "127.0.0.1:$port" 2>"$tmp/node.log" &
pids+=("$!"); wait_port "$port"
api=(--server "https://localhost:$port" --ca-cert "$tmp/node/api-ca.pem")
"$bin" user create --name app --role crypto-user --password-file "$tmp/app.pw" "${api[@]}" --user admin --password admin-password >/dev/null
"$bin" key generate-asymmetric-pair ec --curve p256 --label bench --private-attr sign=true --public-attr verify=true "${api[@]}" --user app --password app-password >/dev/null
printf '[[token]]\nlabel = "keyward"\nservers = ["https://localhost:%s"]\nca_file = "%s"\n' "$port" "$tmp/node/api-ca.pem" > "$tmp/pkcs11.toml"

# SoftHSM2: a token in the folder with the same key type.
mkdir -p "$tmp/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$tmp" > "$tmp/softhsm2.conf"
export SOFTHSM2_CONF=$tmp/softhsm2.conf
softhsm2-util --init-token --free --label soft --pin 1234 --so-pin 1234 >/dev/null
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label soft --login --pin 1234 \
  --keypairgen --key-type EC:prime256v1 --label bench >/dev/null

out=$tmp/results.jsonl
# shellcheck disable=SC2086
KEYWARD_PKCS11_CONF=$tmp/pkcs11.toml taskset -c 0 "$py" loadtest/pkcs11_sign.py "$module" keyward app:app-password bench "$secs" $procs | tee -a "$out"
# shellcheck disable=SC2086
taskset -c 0 "$py" loadtest/pkcs11_sign.py /usr/lib/softhsm/libsofthsm2.so soft 1234 bench "$secs" $procs | tee -a "$out"
echo
echo "| module | processes | signs/s | p50 ms | p99 ms | errors |"
echo "| --- | --- | --- | --- | --- | --- |"
python3 -c '
import json, sys
keys = ("module", "processes", "signs_per_s", "p50_ms", "p99_ms", "errors")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("| " + " | ".join(str(r[k]) for k in keys) + " |")
' "$out"

#!/usr/bin/env bash
# loadtest/ca-issue.sh: certificates issued per second by Keyward's issuing CA through the REST
# API (POST /v1/ca/NAME/issue from an OpenSSL P-256 CSR, profile tls-server; each issuance
# checks the CSR's signature, signs in the HSM and commits the register record with its audit
# entry), for a P-256 and an RSA-3072 CA key; then OCSP responses per second (POST
# /v1/ca/NAME/ocsp: with a nonce, signed by the CA key each time; without, the reused response,
# over POST and over the GET binding) and CRL fetches per second.
# The API node runs on CPU 0 (TOKIO_WORKER_THREADS=1), h2load (Debian nghttp2-client) on CPU 1.
# Env: REQUESTS (default 2000), CLIENTS (4), STREAMS (8), KEYWARD_BIN (target/release/keyward).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v h2load >/dev/null || { echo "install h2load: apt-get install nghttp2-client" >&2; exit 1; }
bin=${KEYWARD_BIN:-target/release/keyward}
[[ -x $bin ]] || cargo build --release --bin keyward
requests=${REQUESTS:-2000}; clients=${CLIENTS:-4}; streams=${STREAMS:-8}
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
api() { curl -sS --fail-with-body --cacert "$tmp/hsm/api-ca.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port$1" \
  -H 'content-type: application/json' "${@:2}"; }
token() { api /v1/auth/login -d "{\"username\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
admin=$(token admin admin-password)
api /v1/users -H "authorization: Bearer $admin" -d '{"username":"bench","role":"crypto-user","password":"bench-password"}' >/dev/null
tok=$(token bench bench-password)
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$tmp/leaf.key" \
  -subj /CN=www.example.test -addext subjectAltName=DNS:www.example.test -out "$tmp/leaf.csr" 2>/dev/null
python3 - "$tmp/leaf.csr" >"$tmp/issue.json" <<'PY'
import json, sys
print(json.dumps({"profile": "tls-server", "csr_pem": open(sys.argv[1]).read(), "validity_days": 30}))
PY
run() { # $1 body file (or -), $2 path, $3 requests, $4 content type
  local data=(); [[ $1 != - ]] && data=(-d "$1")
  taskset -c 1 h2load -n "$3" -c "$clients" -m "$streams" "${data[@]}" \
    -H "authorization: Bearer $tok" -H "content-type: $4" "https://127.0.0.1:$port$2" 2>&1
}
rps() { grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$1" | grep -o '[0-9.]* req/s' | cut -d' ' -f1; }
ok() { grep -o '[0-9]* succeeded' <<<"$1" | head -1 | cut -d' ' -f1; }
codes() { grep 'status codes' <<<"$1" | sed 's/^ *//'; }
echo "| operation | CA key | requests | per second | succeeded | status codes |"
echo "|---|---|---:|---:|---:|---|"
for spec in ec-p256 rsa-3072; do
  ca="bench-${spec}"
  api /v1/ca -H "authorization: Bearer $tok" -d "{\"name\":\"$ca\",\"common_name\":\"Bench $spec\",\"key_type\":\"$spec\",\"allowed_dns\":[\".example.test\"]}" >/dev/null
  out=$(run "$tmp/issue.json" "/v1/ca/$ca/issue" "$requests" application/json)
  echo "| issue (CSR → certificate + register record) | $spec | $requests | $(rps "$out") | $(ok "$out") | $(codes "$out") |"
  api "/v1/ca/$ca/certificate" >"$tmp/ca.pem"
  serial=$(api "/v1/ca/$ca/certificates" -H "authorization: Bearer $tok" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["serial"])')
  openssl ocsp -issuer "$tmp/ca.pem" -serial "0x$serial" -reqout "$tmp/ocsp.der" 2>/dev/null
  out=$(run "$tmp/ocsp.der" "/v1/ca/$ca/ocsp" "$requests" application/ocsp-request)
  echo "| OCSP response (signed) | $spec | $requests | $(rps "$out") | $(ok "$out") | $(codes "$out") |"
  # Without a nonce (RFC 5019): the response signed first is served again for 300 s.
  openssl ocsp -issuer "$tmp/ca.pem" -serial "0x$serial" -no_nonce -reqout "$tmp/ocsp-plain.der" 2>/dev/null
  out=$(run "$tmp/ocsp-plain.der" "/v1/ca/$ca/ocsp" "$requests" application/ocsp-request)
  echo "| OCSP response, no nonce (reused) | $spec | $requests | $(rps "$out") | $(ok "$out") | $(codes "$out") |"
  get=$(python3 -c 'import base64,sys,urllib.parse; print(urllib.parse.quote(base64.b64encode(open(sys.argv[1],"rb").read()).decode(), safe=""))' "$tmp/ocsp-plain.der")
  out=$(run - "/v1/ca/$ca/ocsp/$get" "$requests" application/ocsp-request)
  echo "| OCSP response, no nonce, GET binding | $spec | $requests | $(rps "$out") | $(ok "$out") | $(codes "$out") |"
  out=$(run - "/v1/ca/$ca/crl" "$requests" application/pkix-crl)
  echo "| CRL fetch (cached) | $spec | $requests | $(rps "$out") | $(ok "$out") | $(codes "$out") |"
done

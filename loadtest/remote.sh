#!/usr/bin/env bash
# loadtest/remote.sh: what remote ("keyless") signing costs the proxy (issue 16; BENCHMARKS.md):
#   1. proxy CPU per full handshake, `[hsm] mode = "remote"` vs the embedded HSM (local mode),
#      closed loop (CONNECTIONS handshakes in flight), with handshakes/s;
#   2. handshake latency p50/p99 at the same fixed rate (RATE/s, open loop) in both modes: the
#      difference is what the network sign adds.
# Same P-256 key type, TLS 1.3 only, X25519, full handshakes only (keyward-loadtest without
# --resume offers no ticket), no HTTP request (the client closes after the handshake).
# Pinning: the proxy on CPU 0 (runtime.worker_threads = 1); the client and, in remote mode,
# the HSM node (`keyward hsm serve`, SQLite store, its own key) on CPU 1. CPU times from
# /proc/PID/stat (utime + stime) around each measured run, after a discarded warm-up.
# Everything runs on 127.0.0.1 in a mktemp -d folder; every process is stopped by PID.
# Env: SECONDS_EACH (10), CONNECTIONS (8), RATE (300), ROUNDS (3: the four runs, in turn; the
#      summary takes each figure's median), KEYWARD_BIN (target/release/keyward),
#      LOADTEST_BIN (target/release/keyward-loadtest); PERF_OUT=FILE records `perf record -g` of
#      the proxy during the closed-loop run of PERF_MODE (remote); PERF_STAT=1 prints the
#      proxy's context switches and CPU migrations of each run (perf stat). Prints JSON lines, then a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-10}; conns=${CONNECTIONS:-8}; rate=${RATE:-300}; rounds=${ROUNDS:-3}
bin=${KEYWARD_BIN:-target/release/keyward}
lt=${LOADTEST_BIN:-target/release/keyward-loadtest}
if [[ -z ${KEYWARD_BIN:-} || -z ${LOADTEST_BIN:-} ]]; then
  cargo build --release --locked -p keyward -p keyward-loadtest >&2
fi
tmp=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
tck=$(getconf CLK_TCK)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT: up to 20 s
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; read -rt 0.1 <> <(:) || true; done
  echo "port $1 did not open" >&2; return 1
}
cpu_ms() { awk -v t="$tck" '{print ($14 + $15) * 1000 / t}' "/proc/$1/stat"; }
printf 'admin-password\n' > "$tmp/admin.pw"; printf 'edge-password\n' > "$tmp/edge.pw"
chmod 600 "$tmp"/*.pw

# Local mode: the key in the proxy's own data directory.
"$bin" init --data-dir "$tmp/local" --admin-password-file "$tmp/admin.pw" >/dev/null
"$bin" key generate --type ec-p256 --label web --data-dir "$tmp/local" >/dev/null
"$bin" cert self-signed --key web --dns localhost --ip 127.0.0.1 --out "$tmp/local.pem" --data-dir "$tmp/local" >/dev/null

# Remote mode: an HSM node; the crypto-user `edge` owns the key; its certificate is issued by
# a throwaway CA (openssl) over the public key the node prints.
"$bin" init --data-dir "$tmp/node" --admin-password-file "$tmp/admin.pw" >/dev/null
node_port=$(free_port)
KEYWARD_LOG=warn taskset -c 1 "$bin" hsm serve --data-dir "$tmp/node" --listen "127.0.0.1:$node_port" 2>"$tmp/node.log" &
node_pid=$!; pids+=("$node_pid"); wait_port "$node_port"
api=(--server "https://localhost:$node_port" --ca-cert "$tmp/node/api-ca.pem")
"$bin" user create --name edge --role crypto-user --password-file "$tmp/edge.pw" "${api[@]}" --user admin --password admin-password >/dev/null
handle=$("$bin" key generate-asymmetric-pair ec --curve p256 --label web --private-attr sign=true --public-attr verify=true --json "${api[@]}" --user edge --password edge-password | python3 -c 'import json,sys; print(json.load(sys.stdin)["private"]["handle"])')
"$bin" key public --key "$handle" "${api[@]}" --user edge --password edge-password > "$tmp/web.pub.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" -subj /CN=bench-ca -days 2 -out "$tmp/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/dummy.key" -subj /CN=localhost -out "$tmp/dummy.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/dummy.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial 1 -days 2 \
  -force_pubkey "$tmp/web.pub.pem" -extfile "$tmp/ext.cnf" -out "$tmp/remote.pem" 2>/dev/null

# config MODE PORT: the proxy's keyward.toml.
config() {
  local mode=$1 port=$2
  {
    if [[ $mode == local ]]; then
      printf '[hsm]\ndata_dir = "%s"\n' "$tmp/local"
    else
      printf '[hsm]\nmode = "remote"\nservers = ["https://localhost:%s"]\nca_file = "%s"\nusername = "edge"\npassword_file = "%s"\n' \
        "$node_port" "$tmp/node/api-ca.pem" "$tmp/edge.pw"
    fi
    printf '\n[admin]\nenabled = false\n\n[runtime]\nworker_threads = 1\n\n'
    printf '[[listeners]]\naddress = "127.0.0.1:%s"\ntls_versions = ["1.3"]\n\n' "$port"
    printf '[[listeners.certificates]]\nkey_label = "web"\nchain_file = "%s"\n\n' "$tmp/$mode.pem"
    printf '[upstream]\nurl = "http://127.0.0.1:9/"\n'
  } > "$tmp/$mode.toml"
}

# run MODE SHAPE ARGS...: one warm-up (2 s) and one measured run; prints a JSON line.
results=()
measure() {
  local mode=$1 shape=$2; shift 2
  local port; port=$(free_port); config "$mode" "$port"
  KEYWARD_LOG=warn taskset -c 0 "$bin" serve --config "$tmp/$mode.toml" 2>"$tmp/$mode.log" &
  local pid=$!; pids+=("$pid"); wait_port "$port"
  local ca="$tmp/$mode.pem"; [[ $mode == remote ]] && ca="$tmp/ca.pem"
  local common=("127.0.0.1:$port" --ca "$ca" --tls 1.3 --group x25519 --threads 1 --json)
  taskset -c 1 "$lt" handshake "${common[@]}" --duration 2s "$@" >/dev/null
  local p0 n0; p0=$(cpu_ms "$pid"); n0=$(cpu_ms "$node_pid")
  local perf_pid=""
  if [[ -n ${PERF_OUT:-} && $mode == "${PERF_MODE:-remote}" && $shape == closed ]]; then
    perf record -q -g -p "$pid" -o "$PERF_OUT" 2>/dev/null & perf_pid=$!
  elif [[ -n ${PERF_STAT:-} ]]; then
    perf stat -e context-switches,cpu-migrations -p "$pid" -o "$tmp/stat.txt" 2>/dev/null & perf_pid=$!
  fi
  taskset -c 1 "$lt" handshake "${common[@]}" --duration "${secs}s" "$@" > "$tmp/out.json"
  [[ -n $perf_pid ]] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  if [[ -n ${PERF_STAT:-} && -f $tmp/stat.txt ]]; then
    echo "perf stat ($mode, $shape):" >&2; grep -E "context-switches|cpu-migrations" "$tmp/stat.txt" >&2; rm -f "$tmp/stat.txt"
  fi
  local p1 n1; p1=$(cpu_ms "$pid"); n1=$(cpu_ms "$node_pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local line
  line=$(python3 - "$tmp/out.json" "$mode" "$shape" "$p0" "$p1" "$n0" "$n1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
mode, shape = sys.argv[2], sys.argv[3]
p0, p1, n0, n1 = map(float, sys.argv[4:8])
hs = r["handshakes"]
print(json.dumps({
    "mode": mode, "shape": shape, "handshakes": hs, "errors": r["error_total"],
    "handshakes_per_s": round(r["handshakes_per_s"], 1),
    "proxy_cpu_ms_per_handshake": round((p1 - p0) / hs, 4) if hs else None,
    "node_cpu_ms_per_handshake": round((n1 - n0) / hs, 4) if hs and mode == "remote" else None,
    "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
}))
EOF
)
  echo "$line"; results+=("$line")
}

for _ in $(seq "$rounds"); do
  measure local closed --connections "$conns"
  measure remote closed --connections "$conns"
  measure local "rate $rate/s" --rate "$rate"
  measure remote "rate $rate/s" --rate "$rate"
done

printf '%s\n' "${results[@]}" | python3 -c "$(cat <<'PY'
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print()
print("| mode | load | handshakes/s | errors | proxy CPU ms/handshake | HSM node CPU ms/handshake | p50 ms | p99 ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    node = "" if r["node_cpu_ms_per_handshake"] is None else r["node_cpu_ms_per_handshake"]
    print("| {} | {} | {} | {} | {} | {} | {} | {} |".format(r["mode"], r["shape"], r["handshakes_per_s"], r["errors"], r["proxy_cpu_ms_per_handshake"], node, r["p50_ms"], r["p99_ms"]))
def median(mode, closed):
    runs = [r for r in rows if r["mode"] == mode and (r["shape"] == "closed") == closed]
    out = dict(runs[0])
    for k in ("handshakes_per_s", "proxy_cpu_ms_per_handshake", "node_cpu_ms_per_handshake", "p50_ms", "p99_ms", "errors"):
        vals = sorted(r[k] for r in runs if r[k] is not None)
        out[k] = vals[len(vals) // 2] if vals else None
    return out
c = {m: median(m, True) for m in ("local", "remote")}
o = {m: median(m, False) for m in ("local", "remote")}
print()
print("medians over the rounds:")
print()
print("| mode | load | handshakes/s | proxy CPU ms/handshake | HSM node CPU ms/handshake | p50 ms | p99 ms |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in (c["local"], c["remote"], o["local"], o["remote"]):
    node = "" if r["node_cpu_ms_per_handshake"] is None else r["node_cpu_ms_per_handshake"]
    print("| {} | {} | {} | {} | {} | {} | {} |".format(r["mode"], r["shape"], r["handshakes_per_s"], r["proxy_cpu_ms_per_handshake"], node, r["p50_ms"], r["p99_ms"]))
ratio = c["remote"]["proxy_cpu_ms_per_handshake"] / c["local"]["proxy_cpu_ms_per_handshake"]
print()
print("proxy CPU per full handshake, remote / local (closed loop): {:.2f}x (target <= 1.3x)".format(ratio))
print("latency added by the network sign at {}: p50 {:+.2f} ms, p99 {:+.2f} ms".format(
    o["local"]["shape"], o["remote"]["p50_ms"] - o["local"]["p50_ms"], o["remote"]["p99_ms"] - o["local"]["p99_ms"]))
PY
)"

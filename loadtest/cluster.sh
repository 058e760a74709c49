#!/usr/bin/env bash
# loadtest/cluster.sh: the HSM cluster on PostgreSQL, measured (issue 14; BENCHMARKS.md):
#   1. ECDSA P-256 signs/s of one node with the SQLite store vs the PostgreSQL store (the
#      signing path must not touch the store: equal within noise);
#   2. propagation: a key pair generated on node 1, the time until node 2 first signs with it
#      (p50/p99 over N pairs);
#   3. key-pair creations/s on 1 node vs spread over 3 nodes of one store.
# Starts its own PostgreSQL (initdb + pg_ctl into a temp folder, a free loopback port; as the
# `postgres` user when run as root) and the nodes; stops everything by PID at the end.
# Env: SECONDS_EACH (default 10), N (propagation samples, 200), CONCURRENCY (8),
#      KEYWARD_BIN (target/release/keyward). Prints JSON lines, then a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_EACH:-10}; n=${N:-200}; conc=${CONCURRENCY:-8}
bin=${KEYWARD_BIN:-target/release/keyward}
cargo build --release --locked -p keyward -p keyward-client --example cluster_bench >&2
bench=target/release/examples/cluster_bench
pgbin=$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
tmp=$(mktemp -d); pids=()
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 711 "$tmp"; mkdir -p "$tmp/pg"; [[ $(id -u) == 0 ]] && chown postgres "$tmp/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w -o "-p $port -k $tmp/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE keyward'
url="postgres://postgres@127.0.0.1:$port/keyward"

# start_node DATA_DIR [--store URL]: an API node on a free port; sets $node_url.
start_node() {
  local data=$1; shift
  local log="$data.log"
  KEYWARD_LOG=info "$bin" hsm serve --data-dir "$data" --listen 127.0.0.1:0 "$@" >/dev/null 2>"$log" &
  pids+=($!)
  local addr=
  for _ in $(seq 400); do
    addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)
    [[ -n $addr ]] && break
    sleep 0.05
  done
  [[ -n $addr ]] || { cat "$log" >&2; exit 1; }
  node_url="https://localhost:${addr##*:}"
}
kw() { "$bin" "$@" --ca-cert "$ca" --user admin --password admin-password; }
echo 'bench-password' >"$tmp/bench.pw"

# 1. SQLite vs PostgreSQL, one node each (the client on the same 2 cores).
KEYWARD_ADMIN_PASSWORD=admin-password "$bin" init --data-dir "$tmp/sqlite" >/dev/null
ca=$tmp/sqlite/api-ca.pem
start_node "$tmp/sqlite"; sqlite_node=$node_url
kw user create --name bench --role crypto-user --password-file "$tmp/bench.pw" --server "$sqlite_node" >/dev/null
KEYWARD_ADMIN_PASSWORD=admin-password "$bin" init --data-dir "$tmp/n1" --store "$url" >/dev/null
for i in 2 3; do cp -a "$tmp/n1" "$tmp/n$i"; done
start_node "$tmp/n1" --store "$url"; node1=$node_url
ca=$tmp/n1/api-ca.pem
kw user create --name bench --role crypto-user --password-file "$tmp/bench.pw" --server "$node1" >/dev/null
common=(--user bench --password bench-password --seconds "$secs" --concurrency "$conc")
sign_sqlite=$("$bench" sign --nodes "$sqlite_node" --ca "$tmp/sqlite/api-ca.pem" "${common[@]}")
echo "sqlite $sign_sqlite"
sign_pg=$("$bench" sign --nodes "$node1" --ca "$ca" "${common[@]}")
echo "postgres $sign_pg"
kill "${pids[0]}"; unset 'pids[0]'

# 2 and 3: three nodes on one store.
start_node "$tmp/n2" --store "$url"; node2=$node_url
start_node "$tmp/n3" --store "$url"; node3=$node_url
prop=$("$bench" propagation --nodes "$node1,$node2" --ca "$ca" --user bench --password bench-password --n "$n")
echo "$prop"
create1=$("$bench" create --nodes "$node1" --ca "$ca" "${common[@]}")
echo "$create1"
create3=$("$bench" create --nodes "$node1,$node2,$node3" --ca "$ca" "${common[@]}")
echo "$create3"

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
cat <<EOF

| measurement | value |
|---|---:|
| signs/s, one node, SQLite store ($conc callers) | $(field "$sign_sqlite" signs_per_s) |
| signs/s, one node, PostgreSQL store ($conc callers) | $(field "$sign_pg" signs_per_s) |
| create on node 1 → first sign on node 2, p50 (ms, $n pairs) | $(field "$prop" p50_ms) |
| create on node 1 → first sign on node 2, p99 (ms) | $(field "$prop" p99_ms) |
| create on node 1 → first sign on node 2, max (ms) | $(field "$prop" max_ms) |
| key pairs created/s, 1 node ($conc callers) | $(field "$create1" pairs_per_s) |
| key pairs created/s, spread over 3 nodes ($conc callers) | $(field "$create3" pairs_per_s) |
EOF

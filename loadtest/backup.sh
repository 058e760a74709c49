#!/usr/bin/env bash
# loadtest/backup.sh: backup and restore of a store of N key objects (default 10,000: 5,000
# EC P-256 pairs), measured (issue 15; BENCHMARKS.md): archive size; wall time of
# `backup create` (local data directory, to a directory), `backup verify`, `backup restore`
# into a new data directory, and the same create/restore through a moto S3 server started
# here (skipped when moto_server is missing). Release build. Prints JSON lines, then a table.
# Env: N (10000), KEYWARD_BIN (target/release/keyward).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-10000}
bin=${KEYWARD_BIN:-target/release/keyward}
cargo build --release --locked -p keyward --bin keyward >&2
cargo build --release --locked -p keyward-hsm --example fill_keys >&2
tmp=$(mktemp -d); moto_pid=
cleanup() { [[ -n $moto_pid ]] && kill "$moto_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
KEYWARD_ADMIN_PASSWORD=admin-password "$bin" init --data-dir "$tmp/d" >/dev/null
target/release/examples/fill_keys "$tmp/d" "$n" >&2
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); python3 -c "print(round($e-$s,3))"; }
store_bytes=$(stat -c %s "$tmp/d/keyward.sqlite3")
create_s=$(t "$bin" backup create --data-dir "$tmp/d" --destination "$tmp/b")
name=$("$bin" backup list --destination "$tmp/b" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
size=$(stat -c %s "$tmp/b/$name")
verify_s=$(t "$bin" backup verify "$name" --destination "$tmp/b" --data-dir "$tmp/d")
restore_s=$(t "$bin" backup restore "$name" --destination "$tmp/b" --data-dir "$tmp/r" --seal-key-file "$tmp/d/master.key")
echo "{\"n\":$n,\"store_bytes\":$store_bytes,\"archive_bytes\":$size,\"create_s\":$create_s,\"verify_s\":$verify_s,\"restore_s\":$restore_s}"
s3_create=-; s3_restore=-
moto=$(command -v moto_server || echo target/test-venv/bin/moto_server)
if [[ -x $moto ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$moto" -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 & moto_pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/"; do sleep 0.1; done
  curl -sSf --aws-sigv4 "aws:amz:us-east-1:s3" --user "testing:testing" -X PUT "http://127.0.0.1:$port/bench" >/dev/null
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
  s3_create=$(t "$bin" backup create --data-dir "$tmp/d" --destination s3://bench/k)
  s3name=$("$bin" backup list --destination s3://bench/k --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
  s3_restore=$(t "$bin" backup restore "$s3name" --destination s3://bench/k --data-dir "$tmp/r2" --seal-key-file "$tmp/d/master.key")
  echo "{\"s3_create_s\":$s3_create,\"s3_restore_s\":$s3_restore}"
fi
echo
echo "| key objects | store (SQLite) | archive | create (dir) | verify | restore (dir → SQLite) | create (S3) | restore (S3 → SQLite) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $n | $((store_bytes / 1024)) KiB | $((size / 1024)) KiB | ${create_s} s | ${verify_s} s | ${restore_s} s | ${s3_create} s | ${s3_restore} s |"

#!/usr/bin/env bash
# loadtest/envelope.sh: envelope encryption throughput and memory (issue 18, part 3;
# BENCHMARKS.md): `keyward crypto encrypt-file` and `decrypt-file` of one SIZE_MIB (1024) MiB
# file with an AES-256 KEK (aes-kwp) on one `keyward hsm serve` node on 127.0.0.1, each run
# under GNU time (wall seconds, peak RSS from wait4's rusage), next to `openssl enc
# -aes-256-ctr` of the same file (openssl enc takes no AEAD mode) and `openssl speed -evp
# aes-256-gcm` (in-memory GCM, 16 KiB blocks: the cipher's ceiling on this machine).
# Everything in a mktemp -d folder (TMPDIR picks the disk); processes stopped by PID.
# Env: KEYWARD_BIN (default: target/release/keyward, built here), SIZE_MIB.
# Prints one line per run: what, MiB/s, peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE_MIB:-1024}
bin=${KEYWARD_BIN:-target/release/keyward}
if [[ -z ${KEYWARD_BIN:-} ]]; then
  cargo build --release --locked -p keyward >&2
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
KEYWARD_LOG=warn "$bin" hsm serve --data-dir "$tmp/node" --listen "127.0.0.1:$port" 2>"$tmp/node.log" &
pids+=("$!"); wait_port "$port"
api=(--server "https://localhost:$port" --ca-cert "$tmp/node/api-ca.pem")
"$bin" user create --name app --role crypto-user --password-file "$tmp/app.pw" "${api[@]}" --user admin --password admin-password >/dev/null
"$bin" key generate-symmetric aes --bits 256 --label files --attr wrap=true --attr unwrap=true "${api[@]}" --user app --password app-password >/dev/null
as_app=("${api[@]}" --user app --password app-password)

head -c "$((size * 1024 * 1024))" /dev/urandom > "$tmp/plain.bin"
sync
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${size} MiB; $("$bin" --version); $(openssl version)"

# Runs "$@" under GNU time; prints NAME, MiB/s over SIZE_MIB and the peak RSS.
measure() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$tmp/time.txt" "$@" >/dev/null
  read -r secs rss_kib < "$tmp/time.txt"
  awk -v n="$name" -v s="$secs" -v r="$rss_kib" -v m="$size" \
    'BEGIN { printf "%-40s %8.1f MiB/s  %6.1f s  peak RSS %6.1f MiB\n", n, m / (s > 0 ? s : 0.01), s, r / 1024 }'
}

measure "keyward crypto encrypt-file" "$bin" crypto encrypt-file --key files --mechanism aes-kwp --in "$tmp/plain.bin" --out "$tmp/plain.kwenv" "${as_app[@]}"
measure "keyward crypto decrypt-file" "$bin" crypto decrypt-file --in "$tmp/plain.kwenv" --out "$tmp/back.bin" "${as_app[@]}"
cmp "$tmp/plain.bin" "$tmp/back.bin" && echo "# round trip: identical"
rm -f "$tmp/back.bin"
key=$(openssl rand -hex 32); iv=$(openssl rand -hex 16)
measure "openssl enc -aes-256-ctr (encrypt)" openssl enc -aes-256-ctr -K "$key" -iv "$iv" -in "$tmp/plain.bin" -out "$tmp/plain.ctr"
measure "openssl enc -d -aes-256-ctr (decrypt)" openssl enc -d -aes-256-ctr -K "$key" -iv "$iv" -in "$tmp/plain.ctr" -out "$tmp/back.bin"
echo "# openssl speed -evp aes-256-gcm (in memory, one core, bytes/s by block size):"
openssl speed -seconds 3 -evp aes-256-gcm 2>/dev/null | tail -2

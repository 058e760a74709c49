#!/usr/bin/env bash
# wrk scenario: a new TLS connection (full handshake) for every request.
#
#   loadtest/wrk/new-connection.sh [URL] [CONNECTIONS] [DURATION]
#   (defaults: https://localhost:8443/ 16 10s; wrk from Debian: apt-get install wrk)
#
# wrk (OpenSSL) resumes TLS sessions on reconnect when the server issues tickets, which would
# measure resumed handshakes instead of full ones. This script preloads a tiny shim that turns
# OpenSSL's client session reuse off (wrk/no-resume.c, built with cc on first use), so every
# handshake is full.
# RESUME=1 runs wrk without the shim: resumed handshakes.
# Pin cores yourself, e.g. `taskset -c 1 loadtest/wrk/new-connection.sh`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=${1:-https://localhost:8443/}
conns=${2:-16}
duration=${3:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
preload=()
if [[ ${RESUME:-0} != 1 ]]; then
  shim=${TMPDIR:-/tmp}/keyward-wrk-noresume.so
  if [[ ! -f $shim || $here/no-resume.c -nt $shim ]]; then
    cc -O2 -shared -fPIC -o "$shim" "$here/no-resume.c" -ldl
  fi
  preload=(env LD_PRELOAD="$shim")
fi
exec "${preload[@]}" wrk -t1 -c"$conns" -d"$duration" --latency -s "$here/close.lua" "$url"

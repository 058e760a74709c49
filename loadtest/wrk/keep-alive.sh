#!/usr/bin/env bash
# wrk scenario: keep-alive HTTP/1.1 requests over CONNECTIONS TLS connections.
#
#   loadtest/wrk/keep-alive.sh [URL] [CONNECTIONS] [DURATION]
#   (defaults: https://localhost:8443/ 16 10s; wrk from Debian: apt-get install wrk)
set -euo pipefail
url=${1:-https://localhost:8443/}
conns=${2:-16}
duration=${3:-10s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
exec wrk -t1 -c"$conns" -d"$duration" --latency "$url"

#!/usr/bin/env bash
# loadtest/handshakes.sh: full TLS 1.3 handshakes per second, and server CPU time per
# handshake, for keyward and for nginx, in one run and with the same client.
#
# WHAT IT MEASURES
#   (a) keyward, using a P-256 key that is generated as non-extractable in its HSM, with a
#       self-signed certificate that the HSM signs, and
#   (b) nginx (Debian package, worker_processes 1, master process on) with a P-256 key in
#       a PEM file (`openssl genpkey` and a self-signed `openssl req -x509` certificate).
#   The HSM key cannot be exported, so nginx cannot use the same key. Both keys are P-256
#   ECDSA keys, so each handshake costs the same number and kind of signatures on both.
#   Each request that wrk completes is one new TCP connection with one full TLS 1.3
#   handshake (ECDHE plus a P-256 CertificateVerify signature) and one HTTP/1.1 request
#   that carries "Connection: close".
#     handshakes/s            = wrk's Requests/sec
#     server CPU ms/handshake = change in utime+stime of the server under test (nginx:
#                               master + worker) / requests that completed
#
# HOW
#   - Both servers accept TLS 1.3 only (keyward: tls_versions = ["1.3"]; nginx:
#     ssl_protocols TLSv1.3). The negotiated cipher, group and signature algorithm
#     (from openssl s_client) are printed under the table.
#   - Both servers forward every request to the same plain-HTTP upstream. The upstream is
#     a separate nginx instance that returns "ok\n", and both servers reach it over
#     keep-alive HTTP/1.1 (keyward's pool; nginx has `keepalive` and proxy_http_version
#     1.1). So both do the same work per request. The upstream's CPU is reported on its
#     own and is not counted in the server's CPU time.
#   - Pinning (taskset): the server under test and the upstream run on CPU 0, and wrk
#     runs on CPU 1. keyward runs with TOKIO_WORKER_THREADS=1.
#   - Before measuring, each server must refuse TLS 1.2, return the upstream's "ok", and
#     close the connection after "Connection: close".
#   - Client: wrk -t1 -c$CONNECTIONS -d${DURATION}s -H 'Connection: close'. Each
#     measured run comes after a discarded warm-up run (WARMUP s, default 2). CPU time
#     is read from /proc/PID/stat (fields 14 and 15, in `getconf CLK_TCK` ticks) just
#     before and just after the measured run. The client's CPU time comes from bash's
#     `time`.
#   - Ports are free loopback ports; everything lives in a `mktemp -d` directory; a trap
#     stops every process the script started and removes that directory. Readiness is
#     polled with a deadline (no sleeps used as synchronisation).
#
# SESSION RESUMPTION (checked; it matters)
#   wrk 4.1.0 reuses each connection's SSL object: it calls SSL_clear(), which keeps the
#   last session, and on the next connect it offers that session as a TLS 1.3 PSK.
#   keyward always issues tickets (rustls sends 2 NewSessionTickets per handshake, and
#   there is no setting to turn them off). So with plain wrk, every keyward handshake
#   after the first one on each wrk connection slot is a resumption that signs nothing
#   (in the probe: 3750 of 3766 in 1 s with -c16).
#   Against nginx, with tickets and cache off, every handshake is full.
#   To get full handshakes, the script runs wrk with a small LD_PRELOAD shim (C, built
#   with cc in the temp directory) that calls SSL_set_session(ssl, NULL) after each
#   SSL_clear(). It verifies this on every run with probe instances: a fresh one per
#   probe, stopped before its log is counted, and not the measured instances, because
#   probe logging costs CPU. Each probe is a 1 s wrk run, with and without the shim:
#     keyward: rustls trace logging. Every handshake logs "sending server hello", and only
#              full handshakes log "sending certificate-verify".
#     nginx:   an access log with $ssl_session_reused.
#   The script aborts if any handshake made with the shim was resumed.
#
# LIMITS
#   - 2 cores: the client has only one core, and a TLS 1.3 client does at least as much
#     public-key work per handshake as the server (X25519, plus ECDSA verification, which
#     costs more than signing). So handshakes/s can be limited by wrk rather than by the
#     server. The "server core" and "client core" columns show which side was saturated.
#     CPU ms/handshake is the figure that compares the servers, whichever side limits.
#   - The upstream shares CPU 0 with the server under test. That costs both servers the
#     same; subtract it, or compare CPU ms/handshake.
#   - The TLS stacks differ (keyward: rustls + aws-lc, with signing done through its HSM
#     layer; nginx: OpenSSL 3.0). That difference is part of what is being compared.
#   - keyward sends 2 session tickets per handshake, and nginx (tickets off) sends none.
#     That is a little extra work for keyward that it cannot switch off.
#   - wrk sends "127.0.0.1" as SNI. rustls ignores it and logs a warning each time; the
#     script silences that target (rustls::msgs::handshake=error) so keyward does not
#     pay for a log line per handshake.
#   - Other load on the machine distorts handshakes/s and, less so, CPU ms/handshake. The
#     "other load" column shows busy time on each CPU that was not the benchmark's
#     (includes loopback softirq, a few %); the script warns above 10%.
#   - One sample per server per round (ROUNDS=1 by default). Rounds alternate
#     keyward/nginx. Results are for this machine only. All traffic is on 127.0.0.1.
#
# Usage: loadtest/handshakes.sh        (see loadtest/README.md)
# Env:   DURATION=10  CONNECTIONS=16  ROUNDS=1  WARMUP=2
#        KEYWARD_BIN=target/release/keyward (built with cargo if missing)
#        OUT=loadtest/results (handshakes.json is written there)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2}
PROBE_SECONDS=1
SERVER_CPU=0
CLIENT_CPU=1
DEFAULT_KEYWARD_BIN=$REPO/target/release/keyward
KEYWARD_BIN=${KEYWARD_BIN:-$DEFAULT_KEYWARD_BIN}
OUT=${OUT:-$REPO/loadtest/results}
READY_DEADLINE=30 # seconds a server may take to start listening
PATH=$PATH:/usr/sbin:/sbin

die() {
    echo "handshakes.sh: error: $*" >&2
    exit 1
}
note() { echo "handshakes.sh: $*" >&2; }

# ---------------------------------------------------------------- preconditions

for v in DURATION CONNECTIONS ROUNDS WARMUP; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for cmd in nginx wrk openssl taskset cc ss getconf awk pgrep timeout; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found"
done
(($(nproc --all) >= 2)) || die "needs at least 2 CPUs (server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU)"
CLK_TCK=$(getconf CLK_TCK)

if [[ ! -x $KEYWARD_BIN ]]; then
    [[ $KEYWARD_BIN == "$DEFAULT_KEYWARD_BIN" ]] || die "KEYWARD_BIN=$KEYWARD_BIN is not executable"
    note "building $KEYWARD_BIN"
    (cd "$REPO" && cargo build --release --bin keyward) >&2
fi

# ---------------------------------------------------------------- process bookkeeping

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keyward-handshakes.XXXXXX")
PIDS=() # every background process this script started

# Stops the given processes (and their children, i.e. nginx workers): TERM, then KILL
# after a 10 s deadline.
stop_pids() {
    local all=() pid child deadline=$((SECONDS + 10))
    for pid in "$@"; do
        all+=("$pid")
        for child in $(pgrep -P "$pid" || true); do all+=("$child"); done
    done
    ((${#all[@]})) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for pid in "${all[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    done
    for pid in "${all[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    wait "$@" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pids "${PIDS[@]}"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget_pid PID: it has been stopped already.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# free_port VAR: a loopback TCP port below the ephemeral range that nothing uses and
# that this script has not handed out yet.
TAKEN=" "
free_port() {
    local low used p
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    used=" $(ss -Htan | awk '{n = split($4, a, ":"); printf "%s ", a[n]}')"
    for _ in {1..500}; do
        p=$((10000 + RANDOM % (low - 10000)))
        if [[ $used != *" $p "* && $TAKEN != *" $p "* ]]; then
            TAKEN+="$p "
            printf -v "$1" '%s' "$p"
            return
        fi
    done
    die "found no free port"
}

port_open() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready NAME PID LOG CHECK...: polls CHECK until it succeeds, the process dies, or
# READY_DEADLINE passes.
wait_ready() {
    local name=$1 pid=$2 log=$3 deadline=$((SECONDS + READY_DEADLINE))
    shift 3
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited during startup (log above)"
        fi
        ((SECONDS < deadline)) || die "$name not ready after ${READY_DEADLINE}s"
        sleep 0.05
    done
}

# ---------------------------------------------------------------- keys, certificates, shim

note "work dir $WORK"
KW_DATA=$WORK/keyward-data
"$KEYWARD_BIN" key generate --type ec-p256 --label bench --data-dir "$KW_DATA" >"$WORK/keygen.log" 2>&1 ||
    { cat "$WORK/keygen.log" >&2; die "keyward key generate failed"; }
"$KEYWARD_BIN" cert self-signed --key bench --dns localhost --ip 127.0.0.1 \
    --out "$WORK/keyward-cert.pem" --data-dir "$KW_DATA" >"$WORK/cert.log" 2>&1 ||
    { cat "$WORK/cert.log" >&2; die "keyward cert self-signed failed"; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/nginx-key.pem" 2>/dev/null
openssl req -x509 -new -key "$WORK/nginx-key.pem" -sha256 -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$WORK/nginx-cert.pem" 2>/dev/null

# Makes wrk forget the session it would otherwise resume (see the header and wrk/no-resume.c).
SHIM=$WORK/no-resume.so
cc -O2 -shared -fPIC -Wall -Wextra -o "$SHIM" "$REPO/loadtest/wrk/no-resume.c" -ldl

# ---------------------------------------------------------------- servers

# nginx_conf DIR: the parts every nginx instance here shares (runs in the foreground;
# all files under DIR).
nginx_conf() {
    local dir=$1
    mkdir -p "$dir/tmp"
    cat <<EOF
worker_processes 1;
master_process on;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    access_log off;
EOF
}

# nginx_tls_conf DIR PORT ACCESS_LOG_DIRECTIVE: the nginx under test.
nginx_tls_conf() {
    nginx_conf "$1"
    cat <<EOF
    log_format reuse '\$ssl_session_reused \$ssl_protocol';
    upstream plain {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$2 ssl;
        ssl_certificate $WORK/nginx-cert.pem;
        ssl_certificate_key $WORK/nginx-key.pem;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        $3
        location / {
            proxy_pass http://plain;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

# keyward's log filter: keyward=info makes it log "listening for HTTPS" (its readiness
# signal). wrk sends the IP address 127.0.0.1 as SNI, which rustls ignores with a warning
# on every handshake; that warning is silenced so that keyward does not spend CPU time
# writing a log line per handshake (nginx ignores it silently).
KEYWARD_LOG_FILTER="warn,keyward=info,rustls::msgs::handshake=error"

# keyward_conf PORT: the keyward under test.
keyward_conf() {
    cat <<EOF
[hsm]
data_dir = "$KW_DATA"
[log]
level = "$KEYWARD_LOG_FILTER"
# nginx runs with access_log off; so does keyward (set ACCESS_LOG=true to measure its cost).
access_log = ${ACCESS_LOG:-false}
[admin]
address = "127.0.0.1:0"
[[listeners]]
address = "127.0.0.1:$1"
tls_versions = ["1.3"]
[[listeners.certificates]]
key_label = "bench"
chain_file = "$WORK/keyward-cert.pem"
[upstream]
url = "http://127.0.0.1:$UPSTREAM_PORT"
EOF
}

# start_nginx NAME PORT: runs $WORK/NAME.conf with prefix $WORK/NAME; sets STARTED_PID.
start_nginx() {
    local dir=$WORK/$1
    taskset -c "$SERVER_CPU" nginx -p "$dir" -e "$dir/error.log" -c "$WORK/$1.conf" \
        >"$dir/stderr.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "nginx ($1)" "$STARTED_PID" "$dir/error.log" port_open "$2"
    # the worker must exist before its CPU time is read
    wait_ready "nginx ($1) worker" "$STARTED_PID" "$dir/error.log" pgrep -P "$STARTED_PID" >/dev/null
}

# start_keyward NAME PORT [ENV=VALUE...]: logs to $WORK/NAME.log; sets STARTED_PID.
start_keyward() {
    local name=$1 port=$2 log=$WORK/$1.log
    shift 2
    keyward_conf "$port" >"$WORK/$name.toml"
    env TOKIO_WORKER_THREADS=1 "$@" taskset -c "$SERVER_CPU" \
        "$KEYWARD_BIN" serve --config "$WORK/$name.toml" >"$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "keyward ($name)" "$STARTED_PID" "$log" grep -qs "listening for HTTPS" "$log"
}

# run_wrk PORT SECONDS SHIM(yes|no) OUTFILE
run_wrk() {
    local preload=()
    [[ $3 == yes ]] && preload=(env "LD_PRELOAD=$SHIM")
    taskset -c "$CLIENT_CPU" "${preload[@]}" wrk -t1 -c"$CONNECTIONS" -d"$2s" \
        -H 'Connection: close' "https://127.0.0.1:$1/" >"$4" 2>&1 ||
        { cat "$4" >&2; die "wrk failed"; }
}

wrk_requests() { awk '/ requests in /{print $1; exit}' "$1"; }

count() { grep -cF -- "$1" "$2" || true; } # count STRING FILE (0 when absent)

free_port UPSTREAM_PORT
mkdir -p "$WORK/upstream"
{
    nginx_conf "$WORK/upstream"
    cat <<EOF
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
} >"$WORK/upstream.conf"
start_nginx upstream "$UPSTREAM_PORT"
UPSTREAM_PID=$STARTED_PID

# ---------------------------------------------------------------- resumption probe

# probe TARGET SHIM(yes|no): a fresh instance that logs every handshake, one short wrk
# run, then the instance is stopped (so its log is complete) and the handshakes counted.
# Sets PROBE[TARGET-SHIM]="wrk_requests server_handshakes resumed".
declare -A PROBE
probe() {
    local target=$1 shim=$2 name=probe-$1-$2 port hs resumed
    free_port port
    if [[ $target == keyward ]]; then
        # rustls logs "sending server hello" on every handshake and "sending
        # certificate-verify" only on full ones
        start_keyward "$name" "$port" "KEYWARD_LOG=$KEYWARD_LOG_FILTER,rustls::server::tls13=trace"
    else
        nginx_tls_conf "$WORK/$name" "$port" "access_log $WORK/$name/reuse.log reuse;" >"$WORK/$name.conf"
        start_nginx "$name" "$port"
    fi
    run_wrk "$port" "$PROBE_SECONDS" "$shim" "$WORK/$name.txt"
    stop_pids "$STARTED_PID"
    forget_pid "$STARTED_PID"
    if [[ $target == keyward ]]; then
        hs=$(count "sending server hello" "$WORK/$name.log")
        resumed=$((hs - $(count "sending certificate-verify" "$WORK/$name.log")))
    else
        hs=$(wc -l <"$WORK/$name/reuse.log")
        resumed=$(awk '$1 == "r"' "$WORK/$name/reuse.log" | wc -l)
    fi
    ((hs > 0)) || die "probe $name: the server saw no handshakes"
    PROBE[$target-$shim]="$(wrk_requests "$WORK/$name.txt") $hs $resumed"
    note "probe $target, shim=$shim: ${PROBE[$target-$shim]} (wrk requests, server handshakes, resumed)"
}

note "resumption probe: ${PROBE_SECONDS}s wrk runs with and without the no-resume shim"
for target in keyward nginx; do
    for shim in no yes; do probe "$target" "$shim"; done
    read -r _ _ resumed <<<"${PROBE[$target-yes]}"
    ((resumed == 0)) || die "$target resumed $resumed handshakes although wrk ran with the shim"
done

# ---------------------------------------------------------------- servers under test

free_port KEYWARD_PORT
free_port NGINX_PORT
start_keyward keyward "$KEYWARD_PORT"
KEYWARD_PID=$STARTED_PID
nginx_tls_conf "$WORK/nginx" "$NGINX_PORT" "access_log off;" >"$WORK/nginx.conf"
start_nginx nginx "$NGINX_PORT"
NGINX_PID=$STARTED_PID

# tls_info PORT -> "PROTOCOL CIPHER GROUP SIGNATURE" as negotiated by openssl s_client
tls_info() {
    local out proto cipher group sig
    out=$(openssl s_client -connect "127.0.0.1:$1" -tls1_3 </dev/null 2>&1) ||
        die "TLS 1.3 handshake with 127.0.0.1:$1 failed: $out"
    read -r proto cipher < <(awk '/^New, /{gsub(",", ""); print $2, $5; exit}' <<<"$out")
    group=$(awk -F': ' '/^Server Temp Key/{split($2, a, ","); print a[1]; exit}' <<<"$out")
    sig=$(awk -F': ' '/^Peer signature type/{print $2; exit}' <<<"$out")
    echo "${proto:-?} ${cipher:-?} ${group:-?} ${sig:-?}"
}

# check_server NAME PORT: TLS 1.3 only, answers "ok" and honours Connection: close.
check_server() {
    local body
    if openssl s_client -connect "127.0.0.1:$2" -tls1_2 </dev/null >/dev/null 2>&1; then
        die "$1 accepted a TLS 1.2 handshake; it must be TLS 1.3 only"
    fi
    body=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$2" -quiet -ign_eof 2>/dev/null) ||
        die "$1: request failed, or the connection stayed open after Connection: close"
    [[ $body == *" 200 OK"* && $body == *ok* ]] || die "$1: unexpected response: $body"
}

declare -A TLS
for target in keyward nginx; do
    port_var=${target^^}_PORT
    check_server "$target" "${!port_var}"
    TLS[$target]=$(tls_info "${!port_var}")
    note "$target: ${TLS[$target]} (protocol cipher group signature)"
done

# ---------------------------------------------------------------- measurement

# tree_pids PID...: the processes and their children (nginx workers), one per line.
tree_pids() {
    local p
    for p in "$@"; do
        echo "$p"
        pgrep -P "$p" || true
    done
}

# ticks PID...: utime+stime, in clock ticks, of the processes and their children.
ticks() {
    local pid pids stat fields sum=0
    mapfile -t pids < <(tree_pids "$@")
    for pid in "${pids[@]}"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid vanished"
        read -r -a fields <<<"${stat##*) }" # fields[0] is field 3 (state)
        sum=$((sum + fields[11] + fields[12]))
    done
    echo "$sum"
}

now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }

# cpu_busy: "CPU0 CPU1" ticks not idle (user nice system irq softirq steal) per /proc/stat.
cpu_busy() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$CLIENT_CPU" \
        '$1 == a {x = $2 + $3 + $4 + $7 + $8 + $9} $1 == b {y = $2 + $3 + $4 + $7 + $8 + $9}
         END {print x, y}' /proc/stat
}

# One line per run: target round requests rps server_ms server_pct client_pct upstream_ms
# err_connect err_read err_write err_timeout non2xx other_server_cpu_pct other_client_cpu_pct
RESULTS=()

measure() { # TARGET ROUND
    local target=$1 round=$2 port pid tree0 t0 t1 u0 u1 w0 w1 b0 b1 cpu
    local out=$WORK/wrk-$1-$2.txt timefile=$WORK/time-$1-$2.txt TIMEFORMAT='%3U %3S'
    port=${target^^}_PORT
    port=${!port}
    pid=${target^^}_PID
    pid=${!pid}

    note "$target round $round: warm-up ${WARMUP}s, then ${DURATION}s"
    run_wrk "$port" "$WARMUP" yes "$WORK/warmup-$target-$round.txt"

    tree0=$(tree_pids "$pid")
    u0=$(ticks "$UPSTREAM_PID")
    b0=$(cpu_busy)
    w0=$(now)
    t0=$(ticks "$pid")
    # `time` reports wrk's user and system CPU time to the group's stderr (timefile);
    # run_wrk's own messages go to the real stderr (fd 3)
    { time run_wrk "$port" "$DURATION" yes "$out" 2>&3; } 3>&2 2>"$timefile"
    t1=$(ticks "$pid")
    w1=$(now)
    b1=$(cpu_busy)
    u1=$(ticks "$UPSTREAM_PID")
    [[ $(tree_pids "$pid") == "$tree0" ]] || die "$target's processes changed during the run"
    read -r cpu <"$timefile"

    local requests rps errs non2xx
    requests=$(wrk_requests "$out")
    rps=$(awk '/^Requests\/sec:/{print $2; exit}' "$out")
    errs=$(awk '/Socket errors:/{gsub(",", ""); print $4, $6, $8, $10; exit}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/{print $NF; exit}' "$out")
    [[ -n $requests && -n $rps ]] || { cat "$out" >&2; die "cannot parse wrk output"; }
    ((requests > 0)) || die "$target completed no requests"

    RESULTS+=("$(awk -v target="$target" -v round="$round" -v req="$requests" -v rps="$rps" \
        -v dt="$((t1 - t0))" -v du="$((u1 - u0))" -v hz="$CLK_TCK" -v w0="$w0" -v w1="$w1" \
        -v cpu="$cpu" -v dur="$DURATION" -v errs="${errs:-0 0 0 0}" -v non2xx="${non2xx:-0}" \
        -v b0="$b0" -v b1="$b1" 'BEGIN {
            split(cpu, c, " "); split(b0, x, " "); split(b1, y, " ")
            wall = w1 - w0
            # busy time on each CPU that was not ours: other processes, interrupts, steal
            other0 = ((y[1] - x[1]) - dt - du) / hz / wall * 100
            other1 = ((y[2] - x[2]) / hz - (c[1] + c[2])) / wall * 100
            printf "%s %s %d %.1f %.3f %.1f %.1f %.3f %s %d %.0f %.0f\n", target, round, req, rps,
                dt * 1000 / hz / req, dt / hz / wall * 100, (c[1] + c[2]) / dur * 100,
                du * 1000 / hz / req, errs, non2xx, other0 < 0 ? 0 : other0, other1 < 0 ? 0 : other1
        }')")
}

for ((round = 1; round <= ROUNDS; round++)); do
    measure keyward "$round"
    measure nginx "$round"
done

if grep -qv "listening for HTTPS" "$WORK/keyward.log"; then
    note "keyward logged $(grep -cv "listening for HTTPS" "$WORK/keyward.log") other lines; the first:"
    grep -v -m 5 "listening for HTTPS" "$WORK/keyward.log" >&2
fi
if [[ -s $WORK/nginx/error.log ]]; then
    note "nginx logged $(wc -l <"$WORK/nginx/error.log") lines; the first:"
    sed -n 1,5p "$WORK/nginx/error.log" >&2
fi

# ---------------------------------------------------------------- report

NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*nginx/||')
label() {
    case $1 in
        keyward) echo "keyward (P-256 in HSM)" ;;
        nginx) echo "nginx $NGINX_VERSION (P-256 PEM)" ;;
    esac
}

echo
echo "Full TLS 1.3 handshakes: wrk -t1 -c$CONNECTIONS -d${DURATION}s -H 'Connection: close';" \
    "server + upstream on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| server | round | handshakes/s | server CPU ms/handshake | server core % | client core % | upstream CPU ms/req | other load CPU$SERVER_CPU/CPU$CLIENT_CPU % | requests | socket errors c/r/w/t | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
for line in "${RESULTS[@]}"; do
    read -r target round req rps ms spct cpct ums ec er ew et non2xx o0 o1 <<<"$line"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s/%s/%s/%s | %s |\n' \
        "$(label "$target")" "$round" "$rps" "$ms" "$spct" "$cpct" "$ums" "$o0" "$o1" "$req" \
        "$ec" "$er" "$ew" "$et" "$non2xx"
    if ((o0 > 10 || o1 > 10)); then
        note "$target round $round: other load took ${o0}%/${o1}% of CPU$SERVER_CPU/CPU$CLIENT_CPU; handshakes/s is depressed, rerun on a quiet machine"
    fi
done
echo
for target in keyward nginx; do
    echo "- $target negotiated: ${TLS[$target]} (protocol, cipher, group, signature)"
done
for target in keyward nginx; do
    read -r _ hs_no res_no <<<"${PROBE[$target-no]}"
    read -r _ hs_yes res_yes <<<"${PROBE[$target-yes]}"
    echo "- resumption probe, $target: plain wrk resumed $res_no of $hs_no handshakes;" \
        "wrk with the no-resume shim (as measured) resumed $res_yes of $hs_yes"
done
printf '%s\n' "${RESULTS[@]}" | awk '
    { ms[$1] += $5; rps[$1] += $4; n[$1]++ }
    END {
        printf "- keyward/nginx: %.2fx the server CPU per handshake, %.2fx the handshakes/s\n",
            (ms["keyward"] / n["keyward"]) / (ms["nginx"] / n["nginx"]),
            (rps["keyward"] / n["keyward"]) / (rps["nginx"] / n["nginx"])
    }'

json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

mkdir -p "$OUT"
{
    printf '{\n'
    printf '  "generated_at": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "host": {"cpu": %s, "cpus": %d, "kernel": %s},\n' \
        "$(json_str "$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)")" \
        "$(nproc --all)" "$(json_str "$(uname -r)")"
    printf '  "versions": {"keyward": %s, "nginx": %s, "wrk": %s, "openssl": %s},\n' \
        "$(json_str "$("$KEYWARD_BIN" --version 2>&1 | awk 'NR == 1')")" \
        "$(json_str "$NGINX_VERSION")" \
        "$(json_str "$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')")" \
        "$(json_str "$(openssl version)")"
    printf '  "settings": {"duration_s": %d, "connections": %d, "rounds": %d, "warmup_s": %d, ' \
        "$DURATION" "$CONNECTIONS" "$ROUNDS" "$WARMUP"
    printf '"wrk_threads": 1, "server_cpu": %d, "upstream_cpu": %d, "client_cpu": %d, "clk_tck": %d, ' \
        "$SERVER_CPU" "$SERVER_CPU" "$CLIENT_CPU" "$CLK_TCK"
    printf '"wrk_session_resumption": "disabled by LD_PRELOAD shim"},\n'
    printf '  "tls": {'
    sep=""
    for target in keyward nginx; do
        read -r proto cipher group sig <<<"${TLS[$target]}"
        printf '%s"%s": {"protocol": %s, "cipher": %s, "group": %s, "signature": %s}' \
            "$sep" "$target" "$(json_str "$proto")" "$(json_str "$cipher")" \
            "$(json_str "$group")" "$(json_str "$sig")"
        sep=", "
    done
    printf '},\n'
    printf '  "resumption_probe": {"seconds": %d' "$PROBE_SECONDS"
    for target in keyward nginx; do
        for shim in no yes; do
            read -r req hs resumed <<<"${PROBE[$target-$shim]}"
            printf ', "%s_%s": {"wrk_requests": %d, "server_handshakes": %d, "resumed": %d}' \
                "$target" "$([[ $shim == yes ]] && echo with_shim || echo plain_wrk)" \
                "$req" "$hs" "$resumed"
        done
    done
    printf '},\n'
    printf '  "runs": [\n'
    sep=""
    for line in "${RESULTS[@]}"; do
        read -r target round req rps ms spct cpct ums ec er ew et non2xx o0 o1 <<<"$line"
        printf '%s    {"server": "%s", "round": %d, "handshakes_per_s": %s, "requests": %d, ' \
            "$sep" "$target" "$round" "$rps" "$req"
        printf '"server_cpu_ms_per_handshake": %s, "server_cpu_util_pct": %s, ' "$ms" "$spct"
        printf '"client_cpu_util_pct": %s, "upstream_cpu_ms_per_request": %s, ' "$cpct" "$ums"
        printf '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' \
            "$ec" "$er" "$ew" "$et"
        printf '"non_2xx": %d, "other_load_server_cpu_pct": %d, "other_load_client_cpu_pct": %d}' \
            "$non2xx" "$o0" "$o1"
        sep=$',\n'
    done
    printf '\n  ]\n}\n'
} >"$OUT/handshakes.json"
note "wrote $OUT/handshakes.json"

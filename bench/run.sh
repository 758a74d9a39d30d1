#!/usr/bin/env bash
# Side-by-side benchmark on loopback: direct (nginx) vs waypost vs squid vs tinyproxy, and
# the same chained through an authenticating (Basic) upstream squid.
#
#   bench/run.sh                       # needs scripts/install-deps.sh and a dist build
#   bench/run.sh --smoke               # one very short round of every section (CI: ~1-2 min);
#                                      # falls back to the debug build without a dist one
#   BENCH_QUICK=1 bench/run.sh         # 1 round of 3 s runs
#   BENCH_TARGETS="direct squid tinyproxy" bench/run.sh   # without waypost
#
# Starts nginx (origin: /1k, /1m, /100m over HTTP, and an HTTPS vhost), waypost
# ($WAYPOST_BIN, default $CARGO_TARGET_DIR/dist/waypost or target/dist/waypost: the shipped
# profile, `cargo build --profile dist`; with a
# config file: DIRECT, CONNECT to any port), squid (tests/peers/start-squid.sh --mode open)
# and tinyproxy, all on 127.0.0.1 and unprivileged, then measures, round by round (medians
# over rounds):
#   - keep-alive GET 1 KiB: req/s, p50, p99 (wrk, absolute-form request lines)
#   - Connection: close GET 1 KiB: req/s
#   - keep-alive GET 1 MiB: GETs/s (body streaming)
#   - CONNECT download of 100 MiB over TLS: MB/s (curl -p -k through the proxy), and the
#     proxy's CPU seconds per GiB relayed (utime + stime from /proc, its whole process tree)
#   - CONNECT + TLS handshake setups/s (bench/tls_setups.py)
#   - RSS of each proxy (process tree): idle (after start) and peak (VmHWM at the end)
#   - waypost with TOKIO_WORKER_THREADS=1 and =2: keep-alive GET 1 KiB req/s
#   - the chain through a Basic-authenticating squid (start-squid.sh --mode basic):
#     squid -> squid (cache_peer login=), waypost -> squid ([auth] scheme = "basic"),
#     waypost+pac -> squid (a PAC file naming the squid), px -> squid (px-proxy from PyPI, in
#     a venv under the test cache): keep-alive GET 1 KiB, CONNECT + TLS setups/s, RSS; for
#     waypost its metrics (upstream connections opened, auth handshakes) and memory per idle
#     pooled connection; requests the upstream squid logged with the user
#   - the floors (testsupport/examples/bench_floor.rs): keep-alive GET 1 KiB through a bare
#     TCP relay and through the least hyper proxy, req/s and CPU per request; and the relay
#     as the first hop of the chain (the client sends the credentials): what no proxy in
#     front of the squid can beat on this machine
# and then, on fresh instances, memory per idle tunnel and RSS after a burst of tunnels
# (bench/tunnels.py). Prints markdown tables with waypost's ratios (also saved to
# bench/results/latest.md, raw numbers beside it in latest.tsv; --smoke: smoke.md/.tsv).
#
# Knobs (environment): WAYPOST_BIN, WAYPOST_BASELINE_BIN, BENCH_TARGETS, BENCH_ROUNDS (3),
# BENCH_SECONDS (10), BENCH_CONNS (50), BENCH_CONNS_1M (16), BENCH_THREADS (2, wrk's),
# BENCH_TLS_SECONDS (5), BENCH_NGINX_WORKERS (1), BENCH_DOWNLOAD_MIB (100),
# BENCH_CHAIN ("squid waypost pac px floor", add baseline for WAYPOST_BASELINE_BIN; "" skips), BENCH_WORKER_THREADS ("1 2";
# "" skips), BENCH_FLOORS ("relay hyper"; "" skips), BENCH_FLOOR_BIN (default: the dist build of
# the example, built on first use), BENCH_TUNNELS (2000; 0 skips), BENCH_BURST_WAIT (10), BENCH_POOL_CONNS (32),
# BENCH_QUICK=1, BENCH_KEEP=1. bench/README.md says how each row is measured.
# --smoke: 1 round of 1 s runs, 10 MiB download, 100 tunnels, 2 s after the burst; fails
# unless every section produced a number (never judges the numbers).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

SMOKE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $1 (--smoke, --help)" >&2; exit 64 ;;
    esac
done

# waypost reads WAYPOST_* variables as configuration: keep ours out of its environment
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -n "${WAYPOST_BIN:-}" ]; then WAYPOST_BIN_PATH="$WAYPOST_BIN"
elif [ -n "$SMOKE" ] && [ ! -x "$TARGET_DIR/dist/waypost" ]; then WAYPOST_BIN_PATH="$TARGET_DIR/debug/waypost"
else WAYPOST_BIN_PATH="$TARGET_DIR/dist/waypost"; fi
# target `baseline`: another waypost build (e.g. main before a change) measured in the same run
BASELINE_BIN_PATH="${WAYPOST_BASELINE_BIN:-}"
unset WAYPOST_BIN WAYPOST_BASELINE_BIN
: "${BENCH_TARGETS:=direct waypost squid tinyproxy}"
: "${BENCH_ROUNDS:=3}" "${BENCH_SECONDS:=10}" "${BENCH_CONNS:=50}" "${BENCH_CONNS_1M:=16}"
: "${BENCH_THREADS:=2}" "${BENCH_TLS_SECONDS:=5}" "${BENCH_NGINX_WORKERS:=1}" "${BENCH_DOWNLOAD_MIB:=100}"
: "${BENCH_CHAIN=squid waypost pac px floor}" "${BENCH_WORKER_THREADS=1 2}" "${BENCH_FLOORS=relay hyper}"
: "${BENCH_TUNNELS:=2000}" "${BENCH_BURST_WAIT:=10}" "${BENCH_POOL_CONNS:=32}"
if [ "${BENCH_QUICK:-}" = 1 ]; then BENCH_ROUNDS=1 BENCH_SECONDS=3 BENCH_TLS_SECONDS=2; fi
if [ -n "$SMOKE" ]; then
    BENCH_ROUNDS=1 BENCH_SECONDS=1 BENCH_TLS_SECONDS=1 BENCH_DOWNLOAD_MIB=10 BENCH_TUNNELS=100 BENCH_BURST_WAIT=2
fi
export BENCH_DOWNLOAD_MIB BENCH_TUNNELS BENCH_BURST_WAIT   # for the report

. "$ROOT/tests/peers/lib.sh"
for p in nginx tinyproxy wrk curl python3 openssl "$WP_SQUID"; do
    command -v "$p" >/dev/null || [ -x "$p" ] || wp_die "missing $p: run scripts/install-deps.sh" 69
done
HAVE_WAYPOST=""
case " $BENCH_TARGETS " in *" waypost "*)
    HAVE_WAYPOST=1
    [ -x "$WAYPOST_BIN_PATH" ] || wp_die "no waypost binary at $WAYPOST_BIN_PATH: cargo build --profile dist (or set WAYPOST_BIN, or leave waypost out of BENCH_TARGETS)" ;;
esac
case " $BENCH_TARGETS " in *" baseline "*)
    [ -x "$BASELINE_BIN_PATH" ] || wp_die "target baseline needs WAYPOST_BASELINE_BIN (another waypost binary)" ;;
esac
for t in $BENCH_TARGETS; do
    case "$t" in direct | waypost | baseline | squid | tinyproxy) ;; *) wp_die "unknown target $t (direct waypost baseline squid tinyproxy)" ;; esac
done
for c in $BENCH_CHAIN; do
    case "$c" in squid | waypost | baseline | pac | px | cntlm | floor) ;; *) wp_die "unknown chain target $c (squid waypost baseline pac px floor)" ;; esac
done
for f in $BENCH_FLOORS; do
    case "$f" in relay | hyper) ;; *) wp_die "unknown floor $f (relay hyper)" ;; esac
done
# the floors' binary: one example of the testsupport crate, built here when it is missing
# (the smoke run takes the debug build `cargo test --workspace` made)
FLOOR_BIN_PATH=""
if [ -n "$BENCH_FLOORS" ] || [[ " $BENCH_CHAIN " == *" floor "* ]]; then
    if [ -n "$SMOKE" ]; then floor_profile=dev floor_dir=debug; else floor_profile=dist floor_dir=dist; fi
    FLOOR_BIN_PATH="${BENCH_FLOOR_BIN:-$TARGET_DIR/$floor_dir/examples/bench_floor}"
    if [ ! -x "$FLOOR_BIN_PATH" ]; then
        printf '[bench] building the floors: cargo build --profile %s -p waypost-testsupport --example bench_floor\n' "$floor_profile" >&2
        cargo build --profile "$floor_profile" -p waypost-testsupport --example bench_floor >&2 ||
            wp_die "the floors did not build (BENCH_FLOORS= and no floor in BENCH_CHAIN skip them)"
    fi
fi
unset BENCH_FLOOR_BIN
# tunnels hold two descriptors each in the proxy (client + origin) and one in nginx
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BENCH_DIR="$(mktemp -d /tmp/waypost-bench.XXXXXX)"
chmod 755 "$BENCH_DIR"
STATE="$BENCH_DIR/daemons" OWNER_PID="$$"   # lib.sh daemon bookkeeping (watchdog: this script)
mkdir -p "$STATE/pids" "$STATE/log" "$BENCH_DIR/www" "$BENCH_DIR/waypost"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
# private copies of the waypost builds: the daemons run as $WP_RUN_AS, which may not reach
# the build dir (waypost re-executes itself for its PAC workers), and a rebuild during the run
# cannot swap the binary under us
mkdir -p "$BENCH_DIR/bin"
WAYPOST_BIN_SHOWN="$WAYPOST_BIN_PATH" BASELINE_BIN_SHOWN="$BASELINE_BIN_PATH"
if [ -n "$HAVE_WAYPOST" ]; then cp "$WAYPOST_BIN_PATH" "$BENCH_DIR/bin/waypost"; WAYPOST_BIN_PATH="$BENCH_DIR/bin/waypost"; fi
if [ -n "$BASELINE_BIN_PATH" ]; then cp "$BASELINE_BIN_PATH" "$BENCH_DIR/bin/baseline"; BASELINE_BIN_PATH="$BENCH_DIR/bin/baseline"; fi
if [ -n "$FLOOR_BIN_PATH" ]; then cp "$FLOOR_BIN_PATH" "$BENCH_DIR/bin/bench_floor"; FLOOR_BIN_PATH="$BENCH_DIR/bin/bench_floor"; fi
cleanup() {
    local pf d
    # a run that dies midway keeps what it measured (bench/report.py can still render it)
    if [ -s "$RESULTS" ] && [ ! -e "$BENCH_DIR/.reported" ]; then
        mkdir -p "$ROOT/bench/results" && cp "$RESULTS" "$ROOT/bench/results/partial.tsv"
    fi
    for pf in "$STATE"/pids/*.pid; do [ -e "$pf" ] && wp_stop "$(basename "$pf" .pid)"; done
    for d in "$BENCH_DIR"/*/pids; do
        [ "$d" = "$STATE/pids" ] || "$ROOT/tests/peers/stop.sh" --state "${d%/pids}" || true
    done
    [ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
log() { printf '[bench] %s\n' "$*" >&2; }
started="$(date +%s)"

free_ports() { python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"; }
# a port is picked when it is needed (one picked long before can be in use by then: the run
# makes hundreds of thousands of loopback connections), and never twice in a run
declare -A PORT_USED=()
next_port() { # sets PORT_NEXT (no subshell: PORT_USED must remember)
    local p
    for _ in 1 2 3 4 5 6 7 8; do
        p="$(free_ports 1)"
        [ -n "${PORT_USED[$p]:-}" ] || break
    done
    PORT_USED[$p]=1; PORT_NEXT="$p"
}
next_port; P_HTTP="$PORT_NEXT"; next_port; P_HTTPS="$PORT_NEXT"

# ---- origin: nginx ---------------------------------------------------------------
head -c 1024 /dev/urandom >"$BENCH_DIR/www/1k"
head -c 4096 /dev/urandom >"$BENCH_DIR/www/4k"
head -c $((1024 * 1024)) /dev/urandom >"$BENCH_DIR/www/1m"
head -c $((BENCH_DOWNLOAD_MIB * 1024 * 1024)) /dev/urandom >"$BENCH_DIR/www/download"
wp_ensure_tls "$BENCH_DIR/tls"
mkdir -p "$BENCH_DIR/nginx"
cat >"$BENCH_DIR/nginx/nginx.conf" <<EOF
worker_processes $BENCH_NGINX_WORKERS;
worker_rlimit_nofile $(( BENCH_TUNNELS + 4096 ));
daemon off;
pid $BENCH_DIR/nginx/nginx.pid;
error_log $BENCH_DIR/nginx/error.log warn;
events { worker_connections $(( BENCH_TUNNELS + 4096 )); }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    client_body_temp_path $BENCH_DIR/nginx/body;
    proxy_temp_path $BENCH_DIR/nginx/proxy;
    fastcgi_temp_path $BENCH_DIR/nginx/fastcgi;
    uwsgi_temp_path $BENCH_DIR/nginx/uwsgi;
    scgi_temp_path $BENCH_DIR/nginx/scgi;
    server {
        listen 127.0.0.1:$P_HTTP;
        root $BENCH_DIR/www;
        # ~2 s per answer: holds upstream connections busy at once (the pool probe)
        location /slow/ { alias $BENCH_DIR/www/; limit_rate 2k; }
    }
    server {
        listen 127.0.0.1:$P_HTTPS ssl;
        ssl_certificate $BENCH_DIR/tls/server.pem;
        ssl_certificate_key $BENCH_DIR/tls/server.key;
        root $BENCH_DIR/www;
    }
}
EOF
chmod -R a+rX "$BENCH_DIR"
if wp_drops_privileges; then chown -R "$WP_RUN_AS" "$BENCH_DIR/nginx" "$BENCH_DIR/waypost"; fi
wp_daemon nginx "$(command -v nginx)" -p "$BENCH_DIR/nginx" -e "$BENCH_DIR/nginx/error.log" -c "$BENCH_DIR/nginx/nginx.conf"
wp_wait_tcp nginx "$P_HTTP" 20 && wp_wait_tcp nginx "$P_HTTPS" 20 ||
    wp_fail nginx "nginx did not start" "$BENCH_DIR/nginx/error.log"

# ---- proxies ---------------------------------------------------------------------
declare -A PORT_OF=([direct]="$P_HTTP")
declare -A PID_OF=()    # target -> pid of its main process, for RSS and CPU (process tree)
declare -A ADMIN_OF=()  # waypost targets -> admin listener port (/metrics)
declare -A STARTED=()   # every target started, for the smoke check

# waypost_conf NAME PORT ADMIN_PORT MAX_CONNS [TOML tables...] : writes waypost/NAME.toml
waypost_conf() {
    local name="$1" port="$2" admin="$3" max="$4"; shift 4
    {
        printf 'listen = ["127.0.0.1:%s"]\nadmin_listen = ["127.0.0.1:%s"]\n' "$port" "$admin"
        printf 'max_client_connections = %s\n' "$max"
        # the origin listens on random loopback ports (default: 443 and 8443 only)
        printf '[tls]\nconnect_ports = []\n'
        printf '[timeouts]\ntunnel_idle = "30m"\n'
        printf '%s\n' "$@"
    } >"$BENCH_DIR/waypost/$name.toml"
}

# start_waypost NAME BIN [TOML tables...] : a waypost with its own config and admin port
# (ports picked at the start can be taken meanwhile by a client's ephemeral port: a port in
# use means another pair of ports, a few times)
start_waypost() {
    local name="$1" bin="$2" port admin attempt; shift 2
    for attempt in 1 2 3 4 5; do
        next_port; port="$PORT_NEXT"; next_port; admin="$PORT_NEXT"
        waypost_conf "$name" "$port" "$admin" "$(( BENCH_TUNNELS + 1024 ))" "$@"
        chmod a+r "$BENCH_DIR/waypost/$name.toml"
        wp_daemon "$name" "$bin" run --config "$BENCH_DIR/waypost/$name.toml"
        wp_wait_tcp "$name" "$port" 30 && break
        if [ "$attempt" -lt 5 ] && grep -q 'Address already in use' "$STATE/log/$name.out" 2>/dev/null; then
            log "$name: a port was taken meanwhile; trying others"
            wp_stop "$name"; mv "$STATE/log/$name.out" "$STATE/log/$name.out.$attempt"
            continue
        fi
        wp_fail "$name" "waypost ($name) did not start"
    done
    PORT_OF[$name]="$port" ADMIN_OF[$name]="$admin" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$(wp_pidfile "$name")")"
}

# start_squid NAME [start-squid.sh args...] : state in $BENCH_DIR/NAME
start_squid() {
    local name="$1" port; shift
    next_port; port="$PORT_NEXT"
    "$ROOT/tests/peers/start-squid.sh" --state "$BENCH_DIR/$name" --port "$port" --owner-pid $$ "$@" >/dev/null
    PORT_OF[$name]="$port" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$BENCH_DIR/$name/pids/squid.pid")"
}

# start_tinyproxy NAME MAX_CLIENTS
start_tinyproxy() {
    local name="$1" max="$2" port d="$BENCH_DIR/$1"
    next_port; port="$PORT_NEXT"
    mkdir -p "$d"
    printf '%s\n' "Port $port" "Listen 127.0.0.1" "Timeout 600" "MaxClients $max" \
        "LogLevel Error" "LogFile \"$d/tinyproxy.log\"" \
        "PidFile \"$d/tinyproxy.pid\"" "Allow 127.0.0.1" "DisableViaHeader Yes" >"$d/tinyproxy.conf"
    if wp_drops_privileges; then chown -R "$WP_RUN_AS" "$d"; fi
    wp_daemon "$name" "$(command -v tinyproxy)" -d -c "$d/tinyproxy.conf"
    wp_wait_tcp "$name" "$port" 20 || wp_fail "$name" "tinyproxy did not start" "$d/tinyproxy.log"
    PORT_OF[$name]="$port" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$(wp_pidfile "$name")")"
}

# start_floor NAME MODE UPSTREAM : bench_floor relay|hyper in front of UPSTREAM (host:port)
start_floor() {
    local name="$1" mode="$2" upstream="$3" port
    next_port; port="$PORT_NEXT"
    wp_daemon "$name" "$FLOOR_BIN_PATH" "$mode" "127.0.0.1:$port" "$upstream"
    wp_wait_tcp "$name" "$port" 20 || wp_fail "$name" "bench_floor $mode did not start"
    PORT_OF[$name]="$port" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$(wp_pidfile "$name")")"
}

stop_target() {
    if [ -d "$BENCH_DIR/$1/pids" ]; then "$ROOT/tests/peers/stop.sh" --state "$BENCH_DIR/$1"; else wp_stop "$1"; fi
    unset "PID_OF[$1]"
}

for t in $BENCH_TARGETS; do
    case "$t" in
        direct) STARTED[direct]=1 ;;
        waypost) start_waypost waypost "$WAYPOST_BIN_PATH" ;;
        baseline) start_waypost baseline "$BASELINE_BIN_PATH" ;;
        squid) start_squid squid --mode open ;;
        tinyproxy) start_tinyproxy tinyproxy 1024 ;;
    esac
done

# waypost with 1 and 2 tokio worker threads (default: one per core)
THREAD_TARGETS=""
if [ -n "$HAVE_WAYPOST" ]; then
    for n in $BENCH_WORKER_THREADS; do
        export TOKIO_WORKER_THREADS="$n"
        start_waypost "waypost_t$n" "$WAYPOST_BIN_PATH"
        unset TOKIO_WORKER_THREADS
        THREAD_TARGETS+=" waypost_t$n"
    done
fi

# the floors in front of the origin (keep-alive GET 1 KiB only: neither speaks CONNECT)
FLOOR_TARGETS=""
for f in $BENCH_FLOORS; do
    start_floor "floor_$f" "$f" "127.0.0.1:$P_HTTP"
    FLOOR_TARGETS+=" floor_$f"
done

# ---- the chain through an authenticating (Basic) squid --------------------------
CHAIN_TARGETS=""
# targets whose clients send the squid's credentials themselves (Proxy-Authorization value)
declare -A CLIENT_AUTH=()
if [ -n "$BENCH_CHAIN" ]; then
    start_squid squid_basic --mode basic
    P_SQB="${PORT_OF[squid_basic]}"
    ACCESS_BASIC="$BENCH_DIR/squid_basic/log/access.log"
    printf '%s\n' "$WP_PASS" >"$BENCH_DIR/waypost/password"
    chmod 600 "$BENCH_DIR/waypost/password"
    if wp_drops_privileges; then chown "$WP_RUN_AS" "$BENCH_DIR/waypost/password"; fi
    printf 'function FindProxyForURL(url, host) {\n    return "PROXY 127.0.0.1:%s; DIRECT";\n}\n' "$P_SQB" >"$BENCH_DIR/waypost/chain.pac"
    chmod a+r "$BENCH_DIR/waypost/chain.pac"
    # IP-literal proxies get credentials under auth.policy = "medium" only when allow-listed
    chain_auth="$(printf '[auth]\nscheme = "basic"\nuser = "%s"\npassword_file = "%s"\nallow_proxies = ["127.0.0.1"]' \
        "$WP_USER" "$BENCH_DIR/waypost/password")"
fi

# start_front_squid NAME : an open squid whose only way out is the Basic squid (login=)
start_front_squid() {
    local name="$1" port
    next_port; port="$PORT_NEXT"
    (
        STATE="$BENCH_DIR/$name" PORT="$port" WP_SQUID_AUTH_DEBUG=1
        mkdir -p "$STATE/pids" "$STATE/log"
        C="$WP_PEERS_DIR/conf"
        {
            printf '# rendered by bench/run.sh: open, every request through the Basic squid\n'
            printf 'http_port 127.0.0.1:%s\n' "$PORT"
            cat "$C/squid-access-open.conf.in"
            printf 'cache_peer 127.0.0.1 parent %s 0 no-query no-digest no-netdb-exchange default login=%s:%s name=authparent\n' \
                "$P_SQB" "$WP_USER" "$WP_PASS"
            printf 'never_direct allow all\n'
            wp_render "$C/squid-common.conf.in"
        } >"$STATE/squid.conf"
        wp_render "$C/hosts.in" "$STATE/hosts"
        wp_give_state
        wp_daemon squid "$WP_SQUID" -N -n "wp$PORT" -f "$STATE/squid.conf"
        wp_wait_tcp squid "$PORT" 30 || wp_fail squid "the front squid did not come up on 127.0.0.1:$PORT" "$STATE/log/cache.log"
    )
    PORT_OF[$name]="$port" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$BENCH_DIR/$name/pids/squid.pid")"
}

# px-proxy (PyPI) in a venv under the test cache, installed on first use
PX_VENV="$(wp_cache_dir)/bench/px-venv"
ensure_px() {
    [ -x "$PX_VENV/bin/px" ] && return 0
    log "installing px-proxy into $PX_VENV"
    mkdir -p "$(dirname "$PX_VENV")"
    timeout 300 "$WP_PYTHON" -m venv "$PX_VENV" >&2 &&
        timeout 300 "$PX_VENV/bin/pip" install -q --disable-pip-version-check px-proxy >&2 &&
        [ -x "$PX_VENV/bin/px" ]
}

start_px() {
    local name="$1" port
    next_port; port="$PORT_NEXT"
    mkdir -p "$BENCH_DIR/$name"
    if wp_drops_privileges; then chown "$WP_RUN_AS" "$BENCH_DIR/$name"; fi
    export PX_PASSWORD="$WP_PASS" HOME="$BENCH_DIR/$name"
    wp_daemon "$name" "$PX_VENV/bin/px" "--proxy=127.0.0.1:$P_SQB" "--username=$WP_USER" --auth=BASIC \
        "--port=$port" --listen=127.0.0.1 --foreground
    unset PX_PASSWORD; export HOME="$REAL_HOME"
    wp_wait_tcp "$name" "$port" 30 || { log "px did not start: skipped"; tail -n 5 "$STATE/log/$name.out" >&2; wp_stop "$name"; return 1; }
    PORT_OF[$name]="$port" STARTED[$name]=1
    PID_OF[$name]="$(head -n1 "$(wp_pidfile "$name")")"
}
REAL_HOME="${HOME:-/root}"

for c in $BENCH_CHAIN; do
    case "$c" in
        squid) start_front_squid chain_squid ;;
        waypost | pac)
            if [ -z "$HAVE_WAYPOST" ]; then log "chain $c: skipped (waypost is not in BENCH_TARGETS)"; continue; fi
            if [ "$c" = waypost ]; then
                start_waypost chain_waypost "$WAYPOST_BIN_PATH" \
                    "$(printf '[route]\nupstream = "http://127.0.0.1:%s"\nbypass_loopback = false' "$P_SQB")" "$chain_auth"
            else
                start_waypost chain_pac "$WAYPOST_BIN_PATH" \
                    "$(printf '[route]\nbypass_loopback = false\n[pac]\nsource = "%s"\ncache_file = "none"' "$BENCH_DIR/waypost/chain.pac")" "$chain_auth"
            fi ;;
        baseline)
            if [ -z "$BASELINE_BIN_PATH" ]; then log "chain baseline: skipped (no WAYPOST_BASELINE_BIN)"; continue; fi
            start_waypost chain_baseline "$BASELINE_BIN_PATH" \
                "$(printf '[route]\nupstream = "http://127.0.0.1:%s"\nbypass_loopback = false' "$P_SQB")" "$chain_auth" ;;
        px)
            if ! ensure_px; then log "chain px: skipped (px-proxy did not install)"; continue; fi
            start_px chain_px || continue ;;
        floor)
            start_floor chain_floor relay "127.0.0.1:$P_SQB"
            CLIENT_AUTH[chain_floor]="Basic $(printf '%s:%s' "$WP_USER" "$WP_PASS" | base64 -w0)" ;;
        cntlm)
            log "chain cntlm: skipped (cntlm speaks only NTLM to its parent; the upstream squid here asks for Basic)"
            continue ;;
    esac
    CHAIN_TARGETS+=" chain_$c"
done

# idle = settled: waypost gives its startup-only pages back 2 s after it starts
sleep 3
tree_kib() { python3 "$ROOT/bench/proctree.py" "$1" "$2" 2>/dev/null || echo 0; }
for t in "${!PID_OF[@]}"; do printf '%s\tidle_rss_mib\t%s\n' "$t" "$(tree_kib rss "${PID_OF[$t]}")" >>"$RESULTS.rss"; done

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }
# requests the Basic squid logged with the user, and the 407 challenges it answered
squid_user_lines() { grep -c "user=$WP_USER\$" "$ACCESS_BASIC" 2>/dev/null || true; }
squid_407_lines() { grep -c ' 407 TCP_DENIED/' "$ACCESS_BASIC" 2>/dev/null || true; }

# sanity: every target serves the 1 KiB file, plain and through CONNECT, before we measure
# (px, an optional peer from PyPI, is dropped instead of failing the run)
serves() {
    local t="$1" px=() code
    [ "$t" = direct ] || px=(-x "http://127.0.0.1:${PORT_OF[$t]}")
    [ -z "${CLIENT_AUTH[$t]:-}" ] || px+=(--proxy-user "$WP_USER:$WP_PASS")
    code="$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "${px[@]}" "http://127.0.0.1:$P_HTTP/1k" || true)"
    [ "$code" = 200 ] || { log "$t does not serve http://127.0.0.1:$P_HTTP/1k (got $code)"; return 1; }
    case "$t" in floor_*) return 0 ;; esac   # the floors in front of the origin speak no CONNECT
    code="$(curl -sS --max-time 20 -k -o /dev/null -w '%{http_code}' "${px[@]}" ${px:+-p} "https://127.0.0.1:$P_HTTPS/1k" || true)"
    [ "$code" = 200 ] || { log "$t does not tunnel to https://127.0.0.1:$P_HTTPS/1k (got $code)"; return 1; }
}
for t in $BENCH_TARGETS $THREAD_TARGETS $FLOOR_TARGETS $CHAIN_TARGETS; do
    case "$t" in chain_*) challenges="$(squid_407_lines)" ;; esac
    if serves "$t"; then
        # the first request of a chain meets the 407: counted with the target's other challenges
        case "$t" in chain_*) record "$t" squid_407_count "$(( $(squid_407_lines) - challenges ))" ;; esac
        continue
    fi
    [ "$t" = chain_px ] || wp_die "$t failed the sanity check (logs: BENCH_KEEP=1 keeps $BENCH_DIR)"
    log "chain px: skipped"; stop_target chain_px; CHAIN_TARGETS="${CHAIN_TARGETS/ chain_px/}"
done

# ---- measurements ----------------------------------------------------------------

# metric TARGET NAME [LABEL_TEXT] : sum of a waypost metric's samples (label text filters)
metric() {
    curl -sS --max-time 5 "http://127.0.0.1:${ADMIN_OF[$1]}/metrics" 2>/dev/null |
        awk -v n="$2" -v f="${3:-}" '
            $1 == n || index($1, n "{") == 1 { if (f == "" || index($1, f)) { s += $NF; seen = 1 } }
            END { if (seen) printf "%d\n", s; else print "" }'
}

# run_wrk TARGET NAME PATH CONNS [close]
run_wrk() {
    local t="$1" name="$2" path="$3" conns="$4" close="${5:-}" url out cpu0="" pid="${PID_OF[$1]:-}"
    if [ "$t" = direct ]; then url="http://127.0.0.1:$P_HTTP"; export BENCH_PATH="$path"
    else url="http://127.0.0.1:${PORT_OF[$t]}"; export BENCH_PATH="http://127.0.0.1:$P_HTTP$path"; fi
    export BENCH_HOST="127.0.0.1:$P_HTTP" BENCH_CLOSE="${close:+1}" BENCH_PROXY_AUTH="${CLIENT_AUTH[$t]:-}"
    [ -z "$pid" ] || [ "$name" != ka_1k ] || cpu0="$(proxy_cpu "$pid")"
    out="$(wrk -t"$BENCH_THREADS" -c"$conns" -d"${BENCH_SECONDS}s" --timeout 10s -s "$ROOT/bench/wrk.lua" "$url" 2>&1 | grep '^WRK ' || true)"
    [ -n "$out" ] || { log "$t $name: wrk gave no result"; return 0; }
    local rps p50 p99 errors non2xx requests
    rps="$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$out")"; p50="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$out")"
    p99="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")"; errors="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out")"
    non2xx="$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$out")"; requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
    log "$(printf '%-13s %-9s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s  non-2xx %s' "$t" "$name" "$rps" "$p50" "$p99" "$errors" "$non2xx")"
    record "$t" "${name}_rps" "$rps"
    if [ "$name" = ka_1k ]; then record "$t" ka_1k_p50_ms "$p50"; record "$t" ka_1k_p99_ms "$p99"; fi
    record "$t" "${name}_errors" "$((errors + non2xx))"
    [ -z "$cpu0" ] || record "$t" ka_1k_cpu_us_per_req "$(per_unit_us "$cpu0" "$(proxy_cpu "$pid")" "$requests")"
    record "$t" sent_count "$requests"
}

# proxy_cpu PID: CPU seconds of the process tree; per_unit_us BEFORE AFTER N: µs per unit
proxy_cpu() { python3 "$ROOT/bench/proctree.py" cpu "$1"; }
per_unit_us() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / n; else print 0 }'; }

run_connect_download() {
    local t="$1" px=() out speed size cpu0="" cpu1 pid="${PID_OF[$1]:-}" client_cpu="$BENCH_DIR/client.cpu"
    [ "$t" = direct ] || px=(-p -x "http://127.0.0.1:${PORT_OF[$t]}")
    [ -z "$pid" ] || cpu0="$(python3 "$ROOT/bench/proctree.py" cpu "$pid")"
    if ! out="$(python3 "$ROOT/bench/cputime.py" --out "$client_cpu" -- curl -sS -k -o /dev/null -w '%{speed_download} %{size_download}' "${px[@]}" "https://127.0.0.1:$P_HTTPS/download")"; then
        log "$t connect: the download failed"; return 0
    fi
    read -r speed size <<<"$out"
    [ "$size" = $((BENCH_DOWNLOAD_MIB * 1048576)) ] || { log "$t connect: got $size bytes"; return 0; }
    speed="$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')"
    # the client's (curl's) CPU for the same download, per 100 MiB: what the tunnel costs the application
    record "$t" client_cpu_s_per_100m "$(awk -v c="$(cat "$client_cpu")" -v m="$BENCH_DOWNLOAD_MIB" 'BEGIN { printf "%.3f", c * 100 / m }')"
    if [ -n "$pid" ]; then
        cpu1="$(python3 "$ROOT/bench/proctree.py" cpu "$pid")"
        record "$t" cpu_s_per_gib "$(awk -v a="$cpu0" -v b="$cpu1" -v m="$BENCH_DOWNLOAD_MIB" 'BEGIN { printf "%.3f", (b - a) / (m / 1024) }')"
    fi
    log "$(printf '%-13s %-9s %10s MiB/s  proxy CPU %s s  client CPU %s s' "$t" connect "$speed" "${cpu1:+$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')}" "$(cat "$client_cpu")")"
    record "$t" connect_100m_mibps "$speed"
}

run_tls_setups() {
    local t="$1" px=() out ok cpu0="" pid="${PID_OF[$1]:-}"
    [ "$t" = direct ] || px=(--proxy "127.0.0.1:${PORT_OF[$t]}")
    [ -z "${CLIENT_AUTH[$t]:-}" ] || px+=(--proxy-authorization "${CLIENT_AUTH[$t]}")
    [ -z "$pid" ] || cpu0="$(proxy_cpu "$pid")"
    out="$(python3 "$ROOT/bench/tls_setups.py" --target "127.0.0.1:$P_HTTPS" "${px[@]}" --seconds "$BENCH_TLS_SECONDS" --procs 2)"
    log "$(printf '%-13s %-9s %s' "$t" tls "$out")"
    ok="$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$out")"
    [ "$ok" -gt 0 ] || { log "$t tls: no handshake completed"; return 0; }
    record "$t" tls_setups_per_s "$(sed -E 's/.*setups_per_s=([0-9.]+).*/\1/' <<<"$out")"
    [ -z "$cpu0" ] || record "$t" tls_cpu_us_per_tunnel "$(per_unit_us "$cpu0" "$(proxy_cpu "$pid")" "$ok")"
    record "$t" sent_count "$ok"
}


# wait_idle_clients TARGET : until waypost has no client connection (wrk has closed its own)
wait_idle_clients() {
    local i n
    for ((i = 0; i < 100; i++)); do
        n="$(metric "$1" waypost_client_connections_active)"
        [ "${n:-1}" = 0 ] && return 0
        sleep 0.1
    done
    log "$1: client connections still open after 10 s"
}

# pool_probe TARGET : memory per idle pooled connection. BENCH_POOL_CONNS concurrent slow
# GETs (nginx answers at 2 KiB/s) make waypost open that many upstream connections; the
# clients read their answers to the end and leave, so the connections go back to the pool
# idle. (RSS after - RSS before) / (idle after - idle before), RSS of the process tree.
pool_probe() {
    local t="$1" rss0 rss1 idle0 idle1 args=() i
    idle0="$(metric "$t" waypost_pool_connections 'state="idle"')"
    rss0="$(tree_kib rss "${PID_OF[$t]}")"
    for ((i = 0; i < BENCH_POOL_CONNS; i++)); do args+=(-o /dev/null "http://127.0.0.1:$P_HTTP/slow/4k?$i"); done
    curl -sS --no-progress-meter --max-time 60 -Z --parallel-immediate --parallel-max "$BENCH_POOL_CONNS" \
        -x "http://127.0.0.1:${PORT_OF[$t]}" "${args[@]}" 2>"$BENCH_DIR/pool-probe.err" ||
        { log "$t pool probe: some requests failed"; head -n 3 "$BENCH_DIR/pool-probe.err" >&2; }
    wait_idle_clients "$t"
    sleep 1
    idle1="$(metric "$t" waypost_pool_connections 'state="idle"')"
    rss1="$(tree_kib rss "${PID_OF[$t]}")"
    log "$(printf '%-13s %-9s idle pooled connections %s -> %s, RSS %s -> %s KiB' "$t" pool "${idle0:-?}" "${idle1:-?}" "$rss0" "$rss1")"
    [ -n "$idle0" ] && [ -n "$idle1" ] && [ "$idle1" -gt "$idle0" ] || return 0
    record "$t" pool_idle_conns "$idle1"
    record "$t" pool_idle_kib "$(awk -v a="$rss0" -v b="$rss1" -v n="$((idle1 - idle0))" 'BEGIN { printf "%.1f", (b - a) / n }')"
}

# run_chain TARGET ROUND : keep-alive 1 KiB and CONNECT + TLS through the authenticating squid
run_chain() {
    local t="$1" round="$2" users challenges
    challenges="$(squid_407_lines)"
    [ "$t$round" = chain_waypost1 ] && pool_probe "$t"
    users="$(squid_user_lines)"
    run_wrk "$t" ka_1k /1k "$BENCH_CONNS"
    run_tls_setups "$t"
    record "$t" squid_user_count "$(( $(squid_user_lines) - users ))"
    record "$t" squid_407_count "$(( $(squid_407_lines) - challenges ))"
}

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    log "round $round/$BENCH_ROUNDS (${BENCH_SECONDS}s per wrk run, $BENCH_CONNS connections, $BENCH_THREADS threads)"
    for t in $BENCH_TARGETS; do
        run_wrk "$t" ka_1k /1k "$BENCH_CONNS"
        run_wrk "$t" close_1k /1k "$BENCH_CONNS" close
        run_wrk "$t" ka_1m /1m "$BENCH_CONNS_1M"
        run_connect_download "$t"
        run_tls_setups "$t"
    done
    for t in $THREAD_TARGETS $FLOOR_TARGETS; do run_wrk "$t" ka_1k /1k "$BENCH_CONNS"; done
    for t in $CHAIN_TARGETS; do run_chain "$t" "$round"; done
done
for t in "${!PID_OF[@]}"; do printf '%s\tpeak_rss_mib\t%s\n' "$t" "$(tree_kib hwm "${PID_OF[$t]}")" >>"$RESULTS.rss"; done
awk -F'\t' -v OFS='\t' '{ printf "%s\t%s\t%.1f\n", $1, $2, $3 / 1024 }' "$RESULTS.rss" >>"$RESULTS"
# one handshake per pooled connection, not per request: waypost's own counters
for t in $CHAIN_TARGETS; do
    case "$t" in chain_waypost | chain_baseline | chain_pac) ;; *) continue ;; esac
    opened="$(metric "$t" waypost_pool_opened_total)"
    handshakes="$(metric "$t" waypost_auth_handshakes_total 'outcome="authenticated"')"
    reused="$(metric "$t" waypost_auth_connections_reused_total)"
    log "$t: upstream connections opened ${opened:-?}, Basic handshakes ${handshakes:-?}, requests on an authenticated connection ${reused:-?}"
    [ -z "$opened" ] || record "$t" pool_opened "$opened"
    [ -z "$handshakes" ] || record "$t" auth_handshakes "$handshakes"
    [ -z "$reused" ] || record "$t" auth_reused "$reused"
done

# ---- memory per idle tunnel, RSS after the burst (fresh instances) ---------------
if [ "$BENCH_TUNNELS" -gt 0 ]; then
    for t in $THREAD_TARGETS $FLOOR_TARGETS $CHAIN_TARGETS squid_basic; do stop_target "$t"; done
    for t in $BENCH_TARGETS; do
        [ "$t" = direct ] && continue
        stop_target "$t"   # one proxy at a time: the others' memory is not in the way
        case "$t" in
            waypost) start_waypost tun_waypost "$WAYPOST_BIN_PATH" ;;
            baseline) start_waypost tun_baseline "$BASELINE_BIN_PATH" ;;
            squid) start_squid tun_squid --mode open ;;
            tinyproxy) start_tinyproxy tun_tinyproxy "$(( BENCH_TUNNELS + 64 ))" ;;
        esac
        sleep 3   # settled, as for the idle RSS above
        out="$(python3 "$ROOT/bench/tunnels.py" --proxy "127.0.0.1:${PORT_OF[tun_$t]}" --target "127.0.0.1:$P_HTTPS" \
            --pid "${PID_OF[tun_$t]}" --count "$BENCH_TUNNELS" --wait "$BENCH_BURST_WAIT" | grep '^TUNNELS ' || true)"
        log "$(printf '%-13s %-9s %s' "$t" tunnels "${out:-no result}")"
        stop_target "tun_$t"
        [ -n "$out" ] || continue
        field() { sed -E "s/.*[ ]$1=([0-9.]+).*/\\1/" <<<"$out"; }
        [ "$(field opened)" -gt 0 ] || continue
        record "$t" tunnels_opened "$(field opened)"
        record "$t" tunnels_failed "$(field failed)"
        record "$t" tunnel_kib "$(field per_tunnel_kib)"
        record "$t" tunnel_rest_mib "$(awk -v k="$(field rest_kib)" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "$t" tunnel_held_mib "$(awk -v k="$(field held_kib)" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "$t" tunnel_after_mib "$(awk -v k="$(field after_kib)" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "$t" tunnel_after_ratio "$(field after_ratio)"
    done
fi

# ---- report ----------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
out="$ROOT/bench/results/$([ -n "$SMOKE" ] && echo smoke || echo latest)"   # a smoke run keeps latest.*
report="$out.md"
python3 "$ROOT/bench/report.py" "$RESULTS" "$BENCH_TARGETS" "$THREAD_TARGETS" "$CHAIN_TARGETS" "$FLOOR_TARGETS" >"$report"
cp "$RESULTS" "$out.tsv"
: >"$BENCH_DIR/.reported"
{
    echo
    [ -z "$HAVE_WAYPOST" ] || echo "waypost: $WAYPOST_BIN_SHOWN$([ -z "$BASELINE_BIN_SHOWN" ] || echo "; baseline: $BASELINE_BIN_SHOWN")."
    echo
    echo "$(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -r); nginx $(nginx -v 2>&1 | sed 's|.*/||'), squid $("$WP_SQUID" -v | head -n1 | awk '{print $4}'), tinyproxy $(tinyproxy -v | awk '{print $2}')$([ -z "${STARTED[chain_px]:-}" ] || echo ", px $("$PX_VENV/bin/pip" show px-proxy 2>/dev/null | awk '/^Version:/ { print $2 }')"), wrk $BENCH_THREADS threads; medians of $BENCH_ROUNDS rounds of ${BENCH_SECONDS}s, $BENCH_CONNS connections ($BENCH_CONNS_1M for 1 MiB)$([ -z "$SMOKE" ] || echo "; --smoke: numbers not meaningful")."
} >>"$report"
cat "$report"

# ---- smoke: every section must have produced a number ------------------------------
if [ -n "$SMOKE" ]; then
    missing=()
    expect() { local t="$1" m; shift; for m in "$@"; do grep -q "^$t	$m	" "$RESULTS" || missing+=("$t/$m"); done; }
    for t in $BENCH_TARGETS; do
        expect "$t" ka_1k_rps ka_1k_p50_ms ka_1k_p99_ms close_1k_rps ka_1m_rps connect_100m_mibps client_cpu_s_per_100m tls_setups_per_s
        [ "$t" = direct ] && continue
        expect "$t" idle_rss_mib peak_rss_mib cpu_s_per_gib ka_1k_cpu_us_per_req tls_cpu_us_per_tunnel
        [ "$BENCH_TUNNELS" -gt 0 ] && expect "$t" tunnel_kib tunnel_after_mib
    done
    for t in $THREAD_TARGETS; do expect "$t" ka_1k_rps; done
    for t in $FLOOR_TARGETS; do expect "$t" ka_1k_rps ka_1k_cpu_us_per_req; done
    for t in $CHAIN_TARGETS; do
        [ "$t" = chain_px ] && continue   # px is an optional peer from PyPI: reported, not required
        expect "$t" ka_1k_rps ka_1k_p99_ms tls_setups_per_s ka_1k_cpu_us_per_req tls_cpu_us_per_tunnel peak_rss_mib
        case "$t" in chain_waypost | chain_pac) expect "$t" pool_opened auth_handshakes ;; esac
        [ "$t" = chain_waypost ] && expect "$t" pool_idle_kib
    done
    [ ${#missing[@]} -eq 0 ] || wp_die "--smoke: no number for: ${missing[*]}"
    log "--smoke: every section produced a number ($(( $(date +%s) - started )) s)"
fi

#!/usr/bin/env bash
# Side-by-side benchmark on loopback: direct (nginx) vs waypost vs squid vs tinyproxy.
#
#   bench/run.sh                       # needs scripts/install-deps.sh and a release build
#   BENCH_QUICK=1 bench/run.sh         # 1 round of 3 s runs (a smoke test of the script)
#   BENCH_TARGETS="direct squid tinyproxy" bench/run.sh   # without waypost
#
# Starts nginx (origin: /1k, /1m, /100m over HTTP, and an HTTPS vhost), waypost
# ($WAYPOST_BIN, default $CARGO_TARGET_DIR/release/waypost or target/release/waypost, "run --listen 127.0.0.1:PORT": DIRECT,
# no config), squid (tests/peers/start-squid.sh --mode open) and tinyproxy, all on
# 127.0.0.1 and unprivileged, then measures, round by round (medians over rounds):
#   - keep-alive GET 1 KiB: req/s, p50, p99 (wrk, absolute-form request lines)
#   - Connection: close GET 1 KiB: req/s
#   - keep-alive GET 1 MiB: GETs/s (body streaming)
#   - CONNECT download of 100 MiB over TLS: MB/s (curl -p -k through the proxy)
#   - CONNECT + TLS handshake setups/s (bench/tls_setups.py)
#   - RSS of each proxy: idle (after start) and peak (VmHWM at the end)
# and prints a markdown table with waypost's ratios to direct and to squid (also saved
# to bench/results/latest.md, raw numbers beside it).
#
# Knobs (environment): WAYPOST_BIN, BENCH_TARGETS, BENCH_ROUNDS (3), BENCH_SECONDS (10),
# BENCH_CONNS (50), BENCH_CONNS_1M (16), BENCH_THREADS (2), BENCH_TLS_SECONDS (5),
# BENCH_NGINX_WORKERS (1), BENCH_QUICK=1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# waypost reads WAYPOST_* variables as configuration: keep ours out of its environment
WAYPOST_BIN_PATH="${WAYPOST_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/waypost}"
# target `baseline`: another waypost build (e.g. main before a change) measured in the same run
BASELINE_BIN_PATH="${WAYPOST_BASELINE_BIN:-}"
unset WAYPOST_BIN WAYPOST_BASELINE_BIN
: "${BENCH_TARGETS:=direct waypost squid tinyproxy}"
: "${BENCH_ROUNDS:=3}" "${BENCH_SECONDS:=10}" "${BENCH_CONNS:=50}" "${BENCH_CONNS_1M:=16}"
: "${BENCH_THREADS:=2}" "${BENCH_TLS_SECONDS:=5}" "${BENCH_NGINX_WORKERS:=1}"
if [ "${BENCH_QUICK:-}" = 1 ]; then BENCH_ROUNDS=1 BENCH_SECONDS=3 BENCH_TLS_SECONDS=2; fi

. "$ROOT/tests/peers/lib.sh"
for p in nginx tinyproxy wrk curl python3 openssl "$WP_SQUID"; do
    command -v "$p" >/dev/null || [ -x "$p" ] || wp_die "missing $p: run scripts/install-deps.sh" 69
done
case " $BENCH_TARGETS " in *" waypost "*)
    [ -x "$WAYPOST_BIN_PATH" ] || wp_die "no waypost binary at $WAYPOST_BIN_PATH: cargo build --release (or set WAYPOST_BIN, or leave waypost out of BENCH_TARGETS)" ;;
esac
case " $BENCH_TARGETS " in *" baseline "*)
    [ -x "$BASELINE_BIN_PATH" ] || wp_die "target baseline needs WAYPOST_BASELINE_BIN (another waypost binary)" ;;
esac

BENCH_DIR="$(mktemp -d /tmp/waypost-bench.XXXXXX)"
chmod 755 "$BENCH_DIR"
STATE="$BENCH_DIR/daemons" OWNER_PID="$$"   # lib.sh daemon bookkeeping (watchdog: this script)
mkdir -p "$STATE/pids" "$STATE/log" "$BENCH_DIR/www"
RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"
cleanup() {
    local pf
    for pf in "$STATE"/pids/*.pid; do [ -e "$pf" ] && wp_stop "$(basename "$pf" .pid)"; done
    [ -d "$BENCH_DIR/squid" ] && "$ROOT/tests/peers/stop.sh" --state "$BENCH_DIR/squid"
    [ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
log() { printf '[bench] %s\n' "$*" >&2; }

free_ports() { python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"; }
read -r P_HTTP P_HTTPS P_WAYPOST P_SQUID P_TINY P_BASELINE <<<"$(free_ports 6)"

# ---- origin: nginx ---------------------------------------------------------------
head -c 1024 /dev/urandom >"$BENCH_DIR/www/1k"
head -c $((1024 * 1024)) /dev/urandom >"$BENCH_DIR/www/1m"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$BENCH_DIR/www/100m"
wp_ensure_tls "$BENCH_DIR/tls"
mkdir -p "$BENCH_DIR/nginx"
cat >"$BENCH_DIR/nginx/nginx.conf" <<EOF
worker_processes $BENCH_NGINX_WORKERS;
daemon off;
pid $BENCH_DIR/nginx/nginx.pid;
error_log $BENCH_DIR/nginx/error.log warn;
events { worker_connections 4096; }
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
    server { listen 127.0.0.1:$P_HTTP; root $BENCH_DIR/www; }
    server {
        listen 127.0.0.1:$P_HTTPS ssl;
        ssl_certificate $BENCH_DIR/tls/server.pem;
        ssl_certificate_key $BENCH_DIR/tls/server.key;
        root $BENCH_DIR/www;
    }
}
EOF
chmod -R a+rX "$BENCH_DIR"
if wp_drops_privileges; then chown -R "$WP_RUN_AS" "$BENCH_DIR/nginx"; fi
wp_daemon nginx "$(command -v nginx)" -p "$BENCH_DIR/nginx" -e "$BENCH_DIR/nginx/error.log" -c "$BENCH_DIR/nginx/nginx.conf"
wp_wait_tcp nginx "$P_HTTP" 20 && wp_wait_tcp nginx "$P_HTTPS" 20 ||
    wp_fail nginx "nginx did not start" "$BENCH_DIR/nginx/error.log"

# ---- proxies ---------------------------------------------------------------------
declare -A PORT_OF=([direct]="$P_HTTP" [waypost]="$P_WAYPOST" [squid]="$P_SQUID" [tinyproxy]="$P_TINY" [baseline]="$P_BASELINE")
declare -A PID_OF=()   # target -> pid, for RSS
for t in $BENCH_TARGETS; do
    case "$t" in
        direct) ;;
        waypost)
            wp_daemon waypost "$WAYPOST_BIN_PATH" run --listen "127.0.0.1:$P_WAYPOST"
            wp_wait_tcp waypost "$P_WAYPOST" 20 || wp_fail waypost "waypost did not start"
            PID_OF[waypost]="$(head -n1 "$(wp_pidfile waypost)")" ;;
        baseline)
            wp_daemon baseline "$BASELINE_BIN_PATH" run --listen "127.0.0.1:$P_BASELINE"
            wp_wait_tcp baseline "$P_BASELINE" 20 || wp_fail baseline "the baseline waypost did not start"
            PID_OF[baseline]="$(head -n1 "$(wp_pidfile baseline)")" ;;
        squid)
            "$ROOT/tests/peers/start-squid.sh" --state "$BENCH_DIR/squid" --port "$P_SQUID" --mode open --owner-pid $$ >/dev/null
            PID_OF[squid]="$(head -n1 "$BENCH_DIR/squid/pids/squid.pid")" ;;
        tinyproxy)
            mkdir -p "$BENCH_DIR/tinyproxy"
            printf '%s\n' "Port $P_TINY" "Listen 127.0.0.1" "Timeout 600" "MaxClients 1024" \
                "LogLevel Error" "LogFile \"$BENCH_DIR/tinyproxy/tinyproxy.log\"" \
                "PidFile \"$BENCH_DIR/tinyproxy/tinyproxy.pid\"" "Allow 127.0.0.1" "DisableViaHeader Yes" \
                >"$BENCH_DIR/tinyproxy/tinyproxy.conf"
            if wp_drops_privileges; then chown -R "$WP_RUN_AS" "$BENCH_DIR/tinyproxy"; fi
            wp_daemon tinyproxy "$(command -v tinyproxy)" -d -c "$BENCH_DIR/tinyproxy/tinyproxy.conf"
            wp_wait_tcp tinyproxy "$P_TINY" 20 || wp_fail tinyproxy "tinyproxy did not start" "$BENCH_DIR/tinyproxy/tinyproxy.log"
            PID_OF[tinyproxy]="$(head -n1 "$(wp_pidfile tinyproxy)")" ;;
        *) wp_die "unknown target $t (direct waypost baseline squid tinyproxy)" ;;
    esac
done
sleep 1
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
for t in "${!PID_OF[@]}"; do printf '%s\tidle_rss_mib\t%s\n' "$t" "$(rss_kib "${PID_OF[$t]}" VmRSS)" >>"$RESULTS.rss"; done

# sanity: every target serves the 1 KiB file before we measure
for t in $BENCH_TARGETS; do
    px=(); [ "$t" = direct ] || px=(-x "http://127.0.0.1:${PORT_OF[$t]}")
    code="$(curl -sS -o /dev/null -w '%{http_code}' "${px[@]}" "http://127.0.0.1:$P_HTTP/1k" || true)"
    [ "$code" = 200 ] || wp_die "$t does not serve http://127.0.0.1:$P_HTTP/1k (got $code)"
done

# ---- measurements ----------------------------------------------------------------
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

# run_wrk TARGET NAME PATH CONNS [close]
run_wrk() {
    local t="$1" name="$2" path="$3" conns="$4" close="${5:-}" url out
    if [ "$t" = direct ]; then url="http://127.0.0.1:$P_HTTP"; export BENCH_PATH="$path"
    else url="http://127.0.0.1:${PORT_OF[$t]}"; export BENCH_PATH="http://127.0.0.1:$P_HTTP$path"; fi
    export BENCH_HOST="127.0.0.1:$P_HTTP" BENCH_CLOSE="${close:+1}"
    out="$(wrk -t"$BENCH_THREADS" -c"$conns" -d"${BENCH_SECONDS}s" --timeout 10s -s "$ROOT/bench/wrk.lua" "$url" 2>&1 | grep '^WRK ' || true)"
    [ -n "$out" ] || { log "$t $name: wrk gave no result"; return 0; }
    local rps p50 p99 errors non2xx
    rps="$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$out")"; p50="$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$out")"
    p99="$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")"; errors="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out")"
    non2xx="$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$out")"
    log "$(printf '%-9s %-9s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s  non-2xx %s' "$t" "$name" "$rps" "$p50" "$p99" "$errors" "$non2xx")"
    record "$t" "${name}_rps" "$rps"
    if [ "$name" = ka_1k ]; then record "$t" ka_1k_p50_ms "$p50"; record "$t" ka_1k_p99_ms "$p99"; fi
    record "$t" "${name}_errors" "$((errors + non2xx))"
}

run_connect_download() {
    local t="$1" px=() speed
    [ "$t" = direct ] || px=(-p -x "http://127.0.0.1:${PORT_OF[$t]}")
    speed="$(curl -sS -k -o /dev/null -w '%{speed_download}' "${px[@]}" "https://127.0.0.1:$P_HTTPS/100m" || echo 0)"
    speed="$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1048576 }')"
    log "$(printf '%-9s %-9s %10s MiB/s' "$t" connect "$speed")"
    record "$t" connect_100m_mibps "$speed"
}

run_tls_setups() {
    local t="$1" px=() out
    [ "$t" = direct ] || px=(--proxy "127.0.0.1:${PORT_OF[$t]}")
    out="$(python3 "$ROOT/bench/tls_setups.py" --target "127.0.0.1:$P_HTTPS" "${px[@]}" --seconds "$BENCH_TLS_SECONDS" --procs 2)"
    log "$(printf '%-9s %-9s %s' "$t" tls "$out")"
    record "$t" tls_setups_per_s "$(sed -E 's/.*setups_per_s=([0-9.]+).*/\1/' <<<"$out")"
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
done
for t in "${!PID_OF[@]}"; do printf '%s\tpeak_rss_mib\t%s\n' "$t" "$(rss_kib "${PID_OF[$t]}" VmHWM)" >>"$RESULTS.rss"; done
awk -F'\t' -v OFS='\t' '{ printf "%s\t%s\t%.1f\n", $1, $2, $3 / 1024 }' "$RESULTS.rss" >>"$RESULTS"

# ---- report ----------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
report="$ROOT/bench/results/latest.md"
python3 - "$RESULTS" "$BENCH_TARGETS" >"$report" <<'EOF'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    target, metric, value = line.rstrip("\n").split("\t")
    rows[(target, metric)].append(float(value))
targets = sys.argv[2].split()
med = {k: statistics.median(v) for k, v in rows.items()}
metrics = [  # key, label, format, higher is better
    ("ka_1k_rps", "keep-alive GET 1 KiB, req/s", "{:,.0f}", True),
    ("ka_1k_p50_ms", "keep-alive GET 1 KiB, p50 ms", "{:.2f}", False),
    ("ka_1k_p99_ms", "keep-alive GET 1 KiB, p99 ms", "{:.2f}", False),
    ("close_1k_rps", "Connection: close GET 1 KiB, req/s", "{:,.0f}", True),
    ("ka_1m_rps", "keep-alive GET 1 MiB, GETs/s", "{:,.0f}", True),
    ("connect_100m_mibps", "CONNECT 100 MiB over TLS, MiB/s", "{:,.0f}", True),
    ("tls_setups_per_s", "CONNECT + TLS setups/s", "{:,.0f}", True),
    ("idle_rss_mib", "idle RSS, MiB", "{:.1f}", False),
    ("peak_rss_mib", "peak RSS (VmHWM), MiB", "{:.1f}", False),
]
def ratio(a, b):
    if a is None or b in (None, 0):
        return "n/a"
    return "{:.0%}".format(a / b) if a / b < 10 else "{:.1f}x".format(a / b)
head = ["metric"] + targets
show_ratios = "waypost" in targets
if show_ratios:
    head += ["waypost / direct", "waypost / squid"]
if "baseline" in targets:
    head += ["waypost / baseline"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for key, label, fmt, _ in metrics:
    vals = {t: med.get((t, key)) for t in targets}
    if all(v is None for v in vals.values()):
        continue
    cells = [label] + [fmt.format(vals[t]) if vals[t] is not None else "-" for t in targets]
    if show_ratios:
        cells += [ratio(vals.get("waypost"), vals.get("direct")), ratio(vals.get("waypost"), vals.get("squid"))]
    if "baseline" in targets:
        cells += [ratio(vals.get("waypost"), vals.get("baseline"))]
    print("| " + " | ".join(cells) + " |")
errs = {t: sum(v for (tt, m), vs in rows.items() if tt == t and m.endswith("_errors") for v in vs) for t in targets}
print()
print("Socket errors + non-2xx answers during the wrk runs: " + ", ".join("%s %d" % (t, errs[t]) for t in targets) + ".")
EOF
cp "$RESULTS" "$ROOT/bench/results/latest.tsv"
{
    echo
    echo "$(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -r); nginx $(nginx -v 2>&1 | sed 's|.*/||'), squid $("$WP_SQUID" -v | head -n1 | awk '{print $4}'), tinyproxy $(tinyproxy -v | awk '{print $2}'), wrk $BENCH_THREADS threads; medians of $BENCH_ROUNDS rounds of ${BENCH_SECONDS}s, $BENCH_CONNS connections ($BENCH_CONNS_1M for 1 MiB)."
} >>"$report"
cat "$report"

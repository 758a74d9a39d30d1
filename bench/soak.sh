#!/usr/bin/env bash
# Soak: 10,000 CONNECT tunnels held at once, then a mixed HTTP + CONNECT load through an
# authenticating squid for --minutes (default 10). Bounded, not a CI test; figures go into
# bench/README.md by hand. Needs root for the echo origin on 127.0.0.1:443 (waypost's
# default CONNECT port list allows 443 only), python3, and squid (scripts/install-deps.sh).
#
#   bench/soak.sh [--minutes M] [--tunnels N]
#
# 1. Tunnels: waypost (release build, $WAYPOST_BIN, default
#    /root/.cache/waypost-release/dist/waypost; built there once if missing) listens on
#    loopback with max_client_connections = 25000; bench/soak.py opens N CONNECT tunnels to an
#    echo origin (200 handshakes at a time), checks each echoes, holds them all and reads the
#    proxy's RSS and open fds from /proc; closes them and waits for the fds to return to the
#    baseline; then the same with N idle client connections (no request yet).
# 2. Mixed: a fresh waypost whose upstream is tests/peers/start-squid.sh --mode basic
#    (scheme = "basic", user / Secret-Pass-1); 32 keep-alive GET workers (1 KiB) and 8 CONNECT
#    workers (tunnel, 10 x 1 KiB echoes, close) for M minutes; every 10 s a row of RSS, fds,
#    requests, errors, p50 and p99 latency (bench/results/soak-mixed.tsv).
# The fd limit is raised for everything the script starts (ulimit -n to the hard limit; the
# hard limit too when the script may: each tunnel costs waypost two descriptors).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
MINUTES=10 TUNNELS=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --tunnels) TUNNELS="$2"; shift 2 ;;
        *) echo "usage: $0 [--minutes M] [--tunnels N]" >&2; exit 1 ;;
    esac
done

# each tunnel costs waypost two descriptors (client + upstream): raise the hard limit too (root)
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
echo "[soak] fd limit $(ulimit -n)" >&2
BIN="${WAYPOST_BIN:-/root/.cache/waypost-release/dist/waypost}"
if [ ! -x "$BIN" ]; then
    echo "[soak] building the release binary into /root/.cache/waypost-release" >&2
    CARGO_TARGET_DIR=/root/.cache/waypost-release cargo build --profile dist --bin waypost
    BIN=/root/.cache/waypost-release/dist/waypost
fi
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
TMP="$(mktemp -d /tmp/waypost-soak.XXXXXX)"
chmod 755 "$TMP" # squid runs as nobody
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    [ -d "$TMP/squid" ] && tests/peers/stop.sh --state "$TMP/squid" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "[soak] nothing listens on $1" >&2
    return 1
}

ECHO_PORT="${SOAK_ECHO_PORT:-443}"
ORIGIN_PORT="$(free_port)"
python3 bench/soak.py echo --port "$ECHO_PORT" & PIDS+=($!)
python3 bench/soak.py origin --port "$ORIGIN_PORT" & PIDS+=($!)
wait_port "$ECHO_PORT"
wait_port "$ORIGIN_PORT"

start_waypost() { # config-file -> sets WP_PID
    WAYPOST_LOG=warn "$BIN" run --config "$1" >"$1.log" 2>&1 &
    WP_PID=$!
    PIDS+=("$WP_PID")
}

echo "[soak] 1/2: $TUNNELS tunnels through $BIN" >&2
P1="$(free_port)"
cat >"$TMP/tunnels.toml" <<EOF
listen = ["127.0.0.1:$P1"]
max_client_connections = 25000
[timeouts]
tunnel_idle = "30m"
client_header = "10m"
EOF
start_waypost "$TMP/tunnels.toml"
wait_port "$P1"
python3 bench/soak.py tunnels --proxy "127.0.0.1:$P1" --target "127.0.0.1:$ECHO_PORT" \
    --count "$TUNNELS" --idle "$TUNNELS" --pid "$WP_PID" | tee "$RESULTS/soak-tunnels.txt"
echo "WAYPOST_LOG_LINES=$(wc -l <"$TMP/tunnels.toml.log")" | tee -a "$RESULTS/soak-tunnels.txt"
cp "$TMP/tunnels.toml.log" "$RESULTS/soak-tunnels-waypost.log"
kill "$WP_PID"

echo "[soak] 2/2: mixed load through squid (basic) for $MINUTES min" >&2
SQUID_PORT="$(free_port)"
tests/peers/start-squid.sh --state "$TMP/squid" --port "$SQUID_PORT" --mode basic >/dev/null
P2="$(free_port)"
cat >"$TMP/mixed.toml" <<EOF
listen = ["127.0.0.1:$P2"]
max_client_connections = 25000
[route]
upstream = "http://localhost:$SQUID_PORT"
bypass_loopback = false
[auth]
scheme = "basic"
user = "user"
password = "Secret-Pass-1"
EOF
start_waypost "$TMP/mixed.toml"
wait_port "$P2"
python3 bench/soak.py mixed --proxy "127.0.0.1:$P2" --origin "127.0.0.1:$ORIGIN_PORT" \
    --target "127.0.0.1:$ECHO_PORT" --pid "$WP_PID" --minutes "$MINUTES" \
    --out "$RESULTS/soak-mixed.tsv" | tee "$RESULTS/soak-mixed.txt"
echo "WAYPOST_LOG_LINES=$(wc -l <"$TMP/mixed.toml.log")" | tee -a "$RESULTS/soak-mixed.txt"
cp "$TMP/mixed.toml.log" "$RESULTS/soak-mixed-waypost.log"
grep -v "^$" "$TMP/mixed.toml.log" | head -5 >&2 || true
echo "[soak] results in $RESULTS/soak-*" >&2

#!/usr/bin/env bash
# Start a small HTTP/1.1 origin server (python, no venv needed) on 127.0.0.1:PORT.
#
#   tests/peers/start-origin.sh --state DIR --port PORT [--tls] [--tls-dir DIR] [--owner-pid PID]
#
# Answers every method with text/plain "origin=<http|https> method=M path=P" and the
# request headers it received ("> Name: value"), then the request body; /status/N
# answers status N; /bytes/N answers N bytes of 'x'; /slow/MS waits MS ms first.
# POST /sha256 answers "bytes=N sha256=HEX" of the body; /sse?events=N&gap=S streams
# server-sent events S seconds apart; /ws is a WebSocket echo (see origin.py).
# --tls serves HTTPS with a certificate for localhost, 127.0.0.1, origin.example.test
# signed by a test CA (TLS_DIR/ca.pem; default DIR/tls, made with openssl).
# Stdout: URL=http(s)://127.0.0.1:PORT and, with --tls, CA=... Stop: stop.sh --state DIR.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wp_parse_common "$@"
TLS="" TLS_DIR="$STATE/tls"
set -- "${WP_ARGS[@]+"${WP_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --tls) TLS=1; shift ;;
        --tls-dir) TLS_DIR="$2"; TLS=1; shift 2 ;;
        *) wp_usage "usage: $0 --state DIR --port PORT [--tls] [--tls-dir DIR] [--owner-pid PID]" ;;
    esac
done
wp_require "$WP_PYTHON" setpriv setsid ps
cp "$WP_PEERS_DIR/origin.py" "$STATE/origin.py"
args=("$WP_PYTHON" "$STATE/origin.py" --port "$PORT")
if [ -n "$TLS" ]; then
    wp_ensure_tls "$TLS_DIR"
    args+=(--cert "$TLS_DIR/server.pem" --key "$TLS_DIR/server.key")
fi
wp_give_state
wp_port_free "$PORT"
wp_daemon origin "${args[@]}"
wp_wait_tcp origin "$PORT" 20 || wp_fail origin "the origin did not come up on 127.0.0.1:$PORT"
printf 'URL=%s://127.0.0.1:%s\n' "$([ -n "$TLS" ] && echo https || echo http)" "$PORT"
[ -n "$TLS" ] && printf 'CA=%s\n' "$TLS_DIR/ca.pem"
exit 0

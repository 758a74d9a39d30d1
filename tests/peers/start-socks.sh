#!/usr/bin/env bash
# Start a SOCKS5 server on 127.0.0.1:PORT, unprivileged.
#
#   tests/peers/start-socks.sh --state DIR --port PORT [--auth] [--owner-pid PID]
#
# without --auth: Dante (danted, package dante-server), method "none", CONNECT to
#                 loopback destinations only (others are blocked and logged).
# with --auth:    microsocks, RFC 1929 username/password user / Secret-Pass-1; its
#                 outgoing sockets are bound to 127.0.0.1 (-b), so only loopback is reachable.
# (danted's "username" method checks /etc/shadow, which an unprivileged test daemon
# cannot read; microsocks takes the credentials on its command line.)
# Stdout: URL=socks5://127.0.0.1:PORT (and USER=, PASSWORD= with --auth). Stop: stop.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wp_parse_common "$@"
AUTH=""
for a in "${WP_ARGS[@]+"${WP_ARGS[@]}"}"; do
    case "$a" in --auth) AUTH=1 ;; *) wp_usage "usage: $0 --state DIR --port PORT [--auth] [--owner-pid PID]" ;; esac
done
wp_require setpriv setsid ps

if [ -z "$AUTH" ]; then
    wp_require /usr/sbin/danted
    SOCKS_USER="$WP_RUN_AS"
    wp_render "$WP_PEERS_DIR/conf/danted.conf.in" "$STATE/danted.conf"
    wp_give_state
    wp_as_user /usr/sbin/danted -V -f "$STATE/danted.conf" >"$STATE/log/danted-check.out" 2>&1 ||
        wp_fail socks "danted rejects $STATE/danted.conf" "$STATE/log/danted-check.out"
    wp_port_free "$PORT"
    # no -D: danted stays in the foreground; its children share the session
    wp_daemon socks /usr/sbin/danted -f "$STATE/danted.conf" -p "$STATE/danted.pid"
    wp_wait_tcp socks "$PORT" 20 || wp_fail socks "danted did not come up on 127.0.0.1:$PORT" "$STATE/log/danted.log"
else
    wp_require microsocks
    wp_give_state
    wp_port_free "$PORT"
    wp_daemon socks "$(command -v microsocks)" -i 127.0.0.1 -p "$PORT" -b 127.0.0.1 -u "$WP_USER" -P "$WP_PASS"
    wp_wait_tcp socks "$PORT" 20 || wp_fail socks "microsocks did not come up on 127.0.0.1:$PORT"
fi
printf 'URL=socks5://127.0.0.1:%s\n' "$PORT"
[ -n "$AUTH" ] && printf 'USER=%s\nPASSWORD=%s\n' "$WP_USER" "$WP_PASS"
exit 0

#!/usr/bin/env bash
# Start one squid "corporate proxy" on 127.0.0.1:PORT, unprivileged, in the foreground
# mode (-N) with its own pid file, config and logs in DIR.
#
#   tests/peers/start-squid.sh --state DIR --port PORT --mode MODE
#       [--kdc-state KDC_DIR] [--parent [HOST:]PORT] [--tls-dir DIR] [--owner-pid PID]
#       [--user NAME --password PW]
#
# MODE       Proxy-Authenticate           verified by
# open       (none)                       -
# https      (none), https_port: TLS to the proxy itself, cert signed by a test CA
# basic      Basic realm="waypost test proxy"   basic_ncsa_auth + bcrypt htpasswd
# ntlm       NTLM                         ntlm_verifier.py (pyspnego, NTLMv2 only)
# ntlm-mic   NTLM                         as ntlm, and AUTHENTICATE must carry a valid MIC
# negotiate  Negotiate                    negotiate_kerberos_auth with KDC_DIR/http.keytab
# all        Negotiate, NTLM, Basic       Negotiate: Kerberos or raw NTLMSSP (negotiate_wrapper_auth)
# all-close  as all, but keep_alive off: the 407 to a request without credentials
#            carries Connection: close
#
# negotiate, all and all-close need --kdc-state (a dir started by start-kdc.sh).
# --parent sends everything through another proxy (cache_peer ... parent, never_direct).
# --tls-dir reuses a CA dir (ca.pem, server.pem, server.key); default DIR/tls.
# Credentials: user / Secret-Pass-1 (NTLM also EXAMPLE\user), or --user / --password for
# the basic and NTLM modes (two squids that accept different users). Names: squid resolves
# origin.example.test and proxy.example.test to 127.0.0.1 from DIR/hosts.
# Every mode relays WebSocket upgrades and refuses CONNECT to port 25 with 403 (DENIED_CONNECT_PORT).
# Stdout: KEY=VALUE lines (URL, ACCESS_LOG, CACHE_LOG, NTLM_LOG, DENIED_CONNECT_PORT, CA).
# Stop: stop.sh --state DIR.
# WP_SQUID_AUTH_DEBUG=9 makes the auth section of log/cache.log verbose.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wp_parse_common "$@"
MODE="" KDC_STATE="" PARENT="" TLS_DIR="$STATE/tls"
set -- "${WP_ARGS[@]+"${WP_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE="$2"; shift 2 ;;
        --kdc-state) KDC_STATE="$(cd "$2" && pwd)"; shift 2 ;;
        --parent) PARENT="$2"; shift 2 ;;
        --tls-dir) TLS_DIR="$2"; shift 2 ;;
        --user) WP_USER="$2"; shift 2 ;;
        --password) WP_PASS="$2"; shift 2 ;;
        *) wp_usage "unknown argument $1; see the header of $0" ;;
    esac
done
: "${WP_SQUID_AUTH_DEBUG:=1}"
wp_require "$WP_SQUID" setpriv setsid ps
C="$WP_PEERS_DIR/conf"

# mode -> listen line, auth fragments, access fragment
LISTEN="http_port 127.0.0.1:$PORT" KEEP_ALIVE=on AUTH=() NTLM_VERIFIER_ARGS="--user-file $STATE/ntlm-users --log $STATE/log/ntlm-verifier.log"
case "$MODE" in
    open) ;;
    https) wp_ensure_tls "$TLS_DIR"
        LISTEN="https_port 127.0.0.1:$PORT tls-cert=$TLS_DIR/server.pem tls-key=$TLS_DIR/server.key" ;;
    basic) AUTH=(basic) ;;
    ntlm) AUTH=(ntlm) ;;
    ntlm-mic) AUTH=(ntlm); NTLM_VERIFIER_ARGS+=" --require-mic" ;;
    negotiate) AUTH=(negotiate) ;;
    all) AUTH=(negotiate-wrapper ntlm basic) ;;
    all-close) AUTH=(negotiate-wrapper ntlm basic); KEEP_ALIVE=off ;;
    *) wp_usage "--mode must be one of: open https basic ntlm ntlm-mic negotiate all all-close" ;;
esac

# per-scheme material
for a in "${AUTH[@]+"${AUTH[@]}"}"; do
    case "$a" in
        basic) wp_require htpasswd
            htpasswd -c -b -B "$STATE/htpasswd" "$WP_USER" "$WP_PASS" 2>/dev/null ;;
        ntlm | negotiate-wrapper) wp_require_venv
            # an empty-domain line matches clients that send no domain (curl -U user:pass)
            printf '%s:%s:%s\n:%s:%s\n' "$WP_NTLM_DOMAIN" "$WP_USER" "$WP_PASS" "$WP_USER" "$WP_PASS" >"$STATE/ntlm-users"
            cp "$WP_PEERS_DIR/ntlm_verifier.py" "$STATE/ntlm_verifier.py"
            wp_render "$C/ntlm-verifier.in" "$STATE/ntlm-verifier"
            chmod 755 "$STATE/ntlm-verifier" ;;&
        negotiate | negotiate-wrapper)
            [ -n "$KDC_STATE" ] || wp_usage "--mode $MODE needs --kdc-state KDC_DIR (started by start-kdc.sh)"
            KEYTAB="$KDC_STATE/http.keytab"
            [ -s "$KEYTAB" ] || wp_die "no keytab $KEYTAB: is $KDC_STATE a start-kdc.sh state dir?"
            mkdir -p "$STATE/rcache"
            # the helpers read the realm settings and keep their replay cache here
            wp_krb5_env "$KDC_STATE"; export KRB5RCACHEDIR="$STATE/rcache" ;;
    esac
done

conf="$STATE/squid.conf"
{
    printf '# rendered by tests/peers/start-squid.sh: mode %s\n%s\n' "$MODE" "$LISTEN"
    for a in "${AUTH[@]+"${AUTH[@]}"}"; do wp_render "$C/squid-auth-$a.conf.in"; done
    if [ ${#AUTH[@]} -gt 0 ]; then cat "$C/squid-access-auth.conf.in"; else cat "$C/squid-access-open.conf.in"; fi
    if [ -n "$PARENT" ]; then
        case "$PARENT" in *:*) phost="${PARENT%:*}" pport="${PARENT##*:}" ;; *) phost=127.0.0.1 pport="$PARENT" ;; esac
        printf 'cache_peer %s parent %s 0 no-query no-digest no-netdb-exchange default name=parent\nnever_direct allow all\n' "$phost" "$pport"
    fi
    wp_render "$C/squid-common.conf.in"
} >"$conf"
wp_render "$C/hosts.in" "$STATE/hosts"
wp_give_state
# KDC dirs belong to the daemon user too, so the keytab is readable (start-kdc.sh did it)

wp_port_free "$PORT"
# -N: no daemon, no kid processes: the pid we record is the squid that serves;
# -n: a service name of its own, so concurrent instances never share names.
wp_daemon squid "$WP_SQUID" -N -n "wp$PORT" -f "$conf"
wp_wait_tcp squid "$PORT" 30 || wp_fail squid "squid ($MODE) did not come up on 127.0.0.1:$PORT" "$STATE/log/cache.log"

printf 'URL=%s://127.0.0.1:%s\nACCESS_LOG=%s\nCACHE_LOG=%s\n' "$([ "$MODE" = https ] && echo https || echo http)" \
    "$PORT" "$STATE/log/access.log" "$STATE/log/cache.log"
printf 'NTLM_LOG=%s\nDENIED_CONNECT_PORT=25\n' "$STATE/log/ntlm-verifier.log"
[ "$MODE" = https ] && printf 'CA=%s\n' "$TLS_DIR/ca.pem"
exit 0

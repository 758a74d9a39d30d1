#!/usr/bin/env bash
# Start an MIT Kerberos KDC for realm EXAMPLE.TEST on 127.0.0.1:PORT (udp + tcp).
#
#   tests/peers/start-kdc.sh --state DIR --port PORT [--owner-pid PID]
#       [--max-life DURATION] [--clockskew SECONDS]
#
# --max-life caps every ticket's life (kdc.conf max_life, e.g. "2m"; default 10h), for
# tests of ticket renewal; --clockskew sets the clients' and acceptors' allowed skew
# (krb5.conf; default 300, MIT's), which must be below a short ticket life.
#
# Creates in DIR: krb5.conf (clients: KRB5_CONFIG), kdc.conf, db/ (the database),
# http.keytab (keys for HTTP/localhost and HTTP/proxy.example.test, for squid's
# negotiate helper), and prints nothing on stdout but KEY=VALUE lines:
#   KRB5_CONFIG=...  KRB5CCNAME=FILE:DIR/ccache  KEYTAB=...
# Principals: user@EXAMPLE.TEST (password Secret-Pass-1, pre-auth required),
# HTTP/localhost, HTTP/proxy.example.test, and HTTP/nokey.example.test (a service
# whose key no proxy has: tickets for it must be refused). Get a TGT with kinit.sh.
# Stop with stop.sh --state DIR.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
wp_parse_common "$@"
MAX_LIFE="10h 0m 0s" CLOCKSKEW=300
set -- "${WP_ARGS[@]+"${WP_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --max-life) MAX_LIFE="$2"; shift 2 ;;
        --clockskew) CLOCKSKEW="$2"; shift 2 ;;
        *) wp_usage "usage: $0 --state DIR --port PORT [--owner-pid PID] [--max-life DURATION] [--clockskew SECONDS]" ;;
    esac
done
wp_require /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local kinit setpriv setsid

wp_krb5_env "$STATE"
mkdir -p "$STATE/db"
wp_render "$WP_PEERS_DIR/conf/krb5.conf.in" "$KRB5_CONFIG"
wp_render "$WP_PEERS_DIR/conf/kdc.conf.in" "$KRB5_KDC_PROFILE"
printf '*/admin@%s *\n' "$WP_REALM" >"$STATE/db/kadm5.acl"
wp_give_state

if [ ! -e "$STATE/db/principal" ]; then
    wp_as_user /usr/sbin/kdb5_util create -s -r "$WP_REALM" -P "$(openssl rand -hex 16 2>/dev/null || echo "$RANDOM$RANDOM$RANDOM")" \
        >"$STATE/log/kdb5_util.out" 2>&1 || wp_fail kdc "kdb5_util create failed" "$STATE/log/kdb5_util.out"
    {
        printf 'addprinc +requires_preauth -pw %s %s@%s\n' "$WP_PASS" "$WP_USER" "$WP_REALM"
        printf 'addprinc -randkey HTTP/%s@%s\n' "$WP_PROXY_HOST" "$WP_REALM"
        printf 'addprinc -randkey HTTP/localhost@%s\n' "$WP_REALM"
        printf 'addprinc -randkey HTTP/nokey.example.test@%s\n' "$WP_REALM"
        printf 'ktadd -k %s HTTP/%s@%s HTTP/localhost@%s\n' "$STATE/http.keytab" "$WP_PROXY_HOST" "$WP_REALM" "$WP_REALM"
    } | wp_as_user /usr/sbin/kadmin.local -r "$WP_REALM" >"$STATE/log/kadmin.out" 2>&1 ||
        wp_fail kdc "kadmin.local failed to create the principals" "$STATE/log/kadmin.out"
    [ -s "$STATE/http.keytab" ] || wp_fail kdc "no keytab was written" "$STATE/log/kadmin.out"
fi

wp_port_free "$PORT"
wp_daemon kdc /usr/sbin/krb5kdc -n -r "$WP_REALM"
wp_wait_tcp kdc "$PORT" 20 || wp_fail kdc "the KDC did not come up on 127.0.0.1:$PORT" "$STATE/log/krb5kdc.log"
printf 'KRB5_CONFIG=%s\nKRB5CCNAME=%s\nKEYTAB=%s\n' "$KRB5_CONFIG" "$KRB5CCNAME" "$STATE/http.keytab"

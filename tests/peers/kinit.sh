#!/usr/bin/env bash
# Get a TGT for user@EXAMPLE.TEST from the KDC of a state dir into a credential cache.
#
#   tests/peers/kinit.sh --state KDC_DIR [--ccache FILE] [--password PW]
#
# Default cache: KDC_DIR/ccache (what start-kdc.sh printed as KRB5CCNAME). Exit status is
# kinit's: a wrong --password fails (the KDC requires pre-authentication).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
WP_NO_PORT=1 wp_parse_common "$@"
wp_require kinit
ccache="" pw="$WP_PASS"
set -- "${WP_ARGS[@]+"${WP_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --ccache) ccache="$2"; shift 2 ;;
        --password) pw="$2"; shift 2 ;;
        *) wp_usage "usage: $0 --state KDC_DIR [--ccache FILE] [--password PW]" ;;
    esac
done
wp_krb5_env "$STATE"
[ -n "$ccache" ] && export KRB5CCNAME="FILE:$ccache"
printf '%s\n' "$pw" | kinit "$WP_USER@$WP_REALM" >"$STATE/log/kinit.out" 2>&1 ||
    { cat "$STATE/log/kinit.out" >&2; exit 1; }
printf 'KRB5CCNAME=%s\n' "$KRB5CCNAME"

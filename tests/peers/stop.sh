#!/usr/bin/env bash
# Stop every daemon recorded in STATE/pids (and only those), with their helpers.
#
#   tests/peers/stop.sh --state DIR [NAME...]      (names: kdc squid socks origin ...)
# A WPAD lab's dir (it has a "created" list) is taken down entirely: daemons, namespaces.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
WP_NO_PORT=1 WP_NO_CREATE=1 wp_parse_common "$@"
shopt -s nullglob
if [ ${#WP_ARGS[@]} -gt 0 ]; then
    for n in "${WP_ARGS[@]}"; do wp_stop "$n"; done
else
    for pf in "$STATE"/pids/*.pid; do wp_stop "$(basename "$pf" .pid)"; done
fi
if [ ${#WP_ARGS[@]} -eq 0 ] && [ -s "$STATE/created" ]; then
    exec "$WP_PEERS_DIR/wpad-lab.sh" down --state "$STATE"
fi

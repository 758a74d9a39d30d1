#!/usr/bin/env bash
# A WPAD network in two network namespaces (root only): DHCP (option 252) and DNS
# (wpad.DOMAIN) from dnsmasq, wpad.dat from busybox httpd.
#
#   tests/peers/wpad-lab.sh up   --state DIR --id N [--pac FILE] [--domain D] [--no-option-252] [--owner-pid PID]
#   tests/peers/wpad-lab.sh down --state DIR
#
#   netns wpl-N (lab)                              netns wpc-N (client)
#   wpl-N 10.213.N.1/24   <======= veth =======>   wpc-N 10.213.N.2/24
#     dnsmasq: DHCP (range .100-.150; option 252 http://10.213.N.1/wpad.dat,
#              option 15 DOMAIN, option 6 .1, no router), DNS (wpad.DOMAIN -> .1;
#              nothing forwarded)
#     busybox httpd 10.213.N.1:80: /wpad.dat and /proxy.pac (the --pac file, or DIRECT)
#
# --no-option-252 leaves option 252 out of DHCP (discovery then has to use DNS; WPAD_URL
# is then http://wpad.DOMAIN/wpad.dat).
# N (1-250) keeps concurrent labs apart (names, subnet). The client namespace gets
# /etc/netns/wpc-N/resolv.conf (nameserver .1, search DOMAIN), which `ip netns exec`
# mounts over /etc/resolv.conf: a program run there finds wpad.DOMAIN by DNS and gets
# option 252 by DHCPINFORM on wpc-N. Its 127.0.0.1 is the namespace's own loopback.
# Change the PAC at any time by rewriting DIR/www/wpad.dat (roaming tests).
# dnsmasq and httpd drop to the unprivileged user themselves. Everything created is
# listed in DIR/created and removed by `down` (deleting a namespace deletes its veth end).
# Stdout of up: KEY=VALUE lines (CLIENT_NS, LAB_NS, CLIENT_IFACE, CLIENT_IP, SERVER_IP,
# DOMAIN, WPAD_URL, PAC_FILE, UDHCPC_SCRIPT). Check DHCP by hand from the client side:
#   ip netns exec wpc-N busybox udhcpc -i wpc-N -f -q -n -t 5 -T 1 -O wpad -s DIR/udhcpc-print.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cmd="${1:-}"; shift || true
WP_NO_PORT=1 wp_parse_common "$@"
ID="" PAC="" DOMAIN="corp.example.test" OPTION_252=1
set -- "${WP_ARGS[@]+"${WP_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --id) ID="$2"; shift 2 ;;
        --pac) PAC="$2"; shift 2 ;;
        --domain) DOMAIN="$2"; shift 2 ;;
        --no-option-252) OPTION_252=""; shift ;;
        *) wp_usage "unknown argument $1; see the header of $0" ;;
    esac
done
wp_is_root || wp_die "the WPAD lab needs root (network namespaces)" 69
wp_require ip dnsmasq busybox setsid ps

MARK="$STATE/created"
W="$STATE/www"

ns_daemon() { # NAME NS CMD... : like wp_daemon, inside NS, as root (the daemons drop privileges)
    local name="$1" ns="$2"; shift 2
    setsid ip netns exec "$ns" "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    printf '%s\n%s\n' "$!" "$1" >"$(wp_pidfile "$name")"
    [ -n "$OWNER_PID" ] && wp_watchdog
    return 0
}

down() {
    local kind what
    wp_stop httpd
    wp_stop dnsmasq
    [ -s "$MARK" ] || return 0
    tac "$MARK" | while read -r kind what; do
        case "$kind" in
            file) rm -f -- "$what" ;;
            dir)
                # a test may have given the client a hosts file (WpadLab::set_client_hosts)
                case "$what" in /etc/netns/?*) rm -f -- "$what/hosts" ;; esac
                rmdir -- "$what" 2>/dev/null || true ;;
            netns) ip netns del "$what" 2>/dev/null || true ;;
        esac
    done
    rm -f "$MARK"
}

up() {
    case "$ID" in '' | *[!0-9]*) wp_usage "--id N (1-250) is required" ;; esac
    [ "$ID" -ge 1 ] && [ "$ID" -le 250 ] || wp_usage "--id must be 1-250"
    [ ! -s "$MARK" ] || wp_die "a lab is already up in $STATE"
    local lab="wpl-$ID" cli="wpc-$ID" net="10.213.$ID" group
    local srv="$net.1" cip="$net.2" url="http://$net.1/wpad.dat" wpad252
    if [ -n "$OPTION_252" ]; then wpad252="dhcp-option=252,\"$url\""
    else wpad252="# no option 252: discovery has to use DNS"; url="http://wpad.$DOMAIN/wpad.dat"; fi
    group="$(id -gn "$WP_RUN_AS")"
    for ns in "$lab" "$cli"; do [ ! -e "/run/netns/$ns" ] || wp_die "namespace $ns exists already (another lab with --id $ID?)" 75; done
    [ ! -e "/etc/netns/$cli" ] || wp_die "/etc/netns/$cli exists already" 75
    trap 'down' ERR
    mkdir -p "$W"
    ip netns add "$lab"; echo "netns $lab" >>"$MARK"
    ip netns add "$cli"; echo "netns $cli" >>"$MARK"
    ip link add name "$lab" netns "$lab" type veth peer name "$cli" netns "$cli"
    for side in "$lab:$srv" "$cli:$cip"; do
        local ns="${side%%:*}" addr="${side#*:}"
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ns.disable_ipv6=1"
        ip netns exec "$ns" ip link set lo up
        ip netns exec "$ns" ip addr add "$addr/24" dev "$ns"
        ip netns exec "$ns" ip link set "$ns" up
    done
    # a fresh veth gets its carrier (operstate UP) up to a second after "link set up", and
    # DHCP discovery rightly skips interfaces without one: wait for both ends
    for ns in "$lab" "$cli"; do
        for ((i = 0; i < 100; i++)); do
            ip -n "$ns" link show dev "$ns" | grep -q 'state UP' && break
            sleep 0.05
        done
        ip -n "$ns" link show dev "$ns" | grep -q 'state UP' || wp_die "veth $ns did not come up within 5 s"
    done
    if mkdir /etc/netns 2>/dev/null; then echo "dir /etc/netns" >>"$MARK"; fi
    mkdir "/etc/netns/$cli"; echo "dir /etc/netns/$cli" >>"$MARK"
    printf 'nameserver %s\nsearch %s\noptions timeout:1 attempts:2\n' "$srv" "$DOMAIN" >"/etc/netns/$cli/resolv.conf"
    echo "file /etc/netns/$cli/resolv.conf" >>"$MARK"

    if [ -n "$PAC" ]; then cp "$PAC" "$W/wpad.dat"
    else printf 'function FindProxyForURL(url, host) { return "DIRECT"; }\n' >"$W/wpad.dat"; fi
    cp "$W/wpad.dat" "$W/proxy.pac"
    printf '.dat:application/x-ns-proxy-autoconfig\n.pac:application/x-ns-proxy-autoconfig\n' >"$STATE/httpd.conf"
    cat >"$STATE/dnsmasq.conf" <<EOF
# WPAD lab $ID: only on $lab ($srv), nothing forwarded, no /etc files read
interface=$lab
except-interface=lo
listen-address=$srv
bind-interfaces
no-resolv
no-hosts
no-poll
local=/$DOMAIN/
domain=$DOMAIN
host-record=wpad.$DOMAIN,$srv
dhcp-range=$net.100,$net.150,255.255.255.0,10m
dhcp-authoritative
dhcp-option=option:router
dhcp-option=option:dns-server,$srv
dhcp-option=option:domain-name,$DOMAIN
# sent only to clients that ask for it, as Windows does
$wpad252
dhcp-leasefile=$STATE/dnsmasq.leases
pid-file=$STATE/dnsmasq.pid
user=$WP_RUN_AS
group=$group
log-facility=$STATE/log/dnsmasq.log
log-queries
log-dhcp
EOF
    cat >"$STATE/udhcpc-print.sh" <<'SH'
#!/bin/sh
# busybox udhcpc script that only prints what it was offered (configures nothing)
case "$1" in bound|renew) echo "udhcpc $1: ip=$ip serverid=$serverid dns=$dns domain=$domain router=${router:-none} wpad=$wpad" ;; esac
exit 0
SH
    chmod 755 "$STATE/udhcpc-print.sh"
    chmod -R a+rX "$STATE"
    chown -R "$WP_RUN_AS:$group" "$STATE/log" "$W"
    touch "$STATE/dnsmasq.leases" && chown "$WP_RUN_AS:$group" "$STATE/dnsmasq.leases" "$STATE"
    ns_daemon dnsmasq "$lab" dnsmasq -k -C "$STATE/dnsmasq.conf"
    ns_daemon httpd "$lab" busybox httpd -f -p "$srv:80" -h "$W" -c "$STATE/httpd.conf" -u "$WP_RUN_AS:$group"
    local i
    for ((i = 0; i < 100; i++)); do
        ip netns exec "$cli" bash -c "exec 3<>/dev/tcp/$srv/53 && exec 4<>/dev/tcp/$srv/80" 2>/dev/null && break
        wp_alive dnsmasq && wp_alive httpd || break
        sleep 0.1
    done
    ip netns exec "$cli" bash -c "exec 3<>/dev/tcp/$srv/53 && exec 4<>/dev/tcp/$srv/80" 2>/dev/null ||
        { local logs="$STATE/log/dnsmasq.log $STATE/log/httpd.out"; down; wp_fail dnsmasq "the WPAD lab did not come up" $logs; }
    trap - ERR
    printf 'CLIENT_NS=%s\nLAB_NS=%s\nCLIENT_IFACE=%s\nCLIENT_IP=%s\nSERVER_IP=%s\nDOMAIN=%s\nWPAD_URL=%s\nPAC_FILE=%s\nUDHCPC_SCRIPT=%s\n' \
        "$cli" "$lab" "$cli" "$cip" "$srv" "$DOMAIN" "$url" "$W/wpad.dat" "$STATE/udhcpc-print.sh"
}

case "$cmd" in
    up) up ;;
    down) down ;;
    *) wp_usage "usage: $0 up|down --state DIR [--id N] [--pac FILE] [--domain D] [--no-option-252] [--owner-pid PID]" ;;
esac

#!/usr/bin/env bash
# Install what waypost's tests and benchmark need on Debian 12 (idempotent).
#
#   scripts/install-deps.sh            # as root (or with sudo available)
#
# 1. Debian packages (apt-get update + install) unless every one is already installed:
#    the real peers the integration tests start on loopback (squid, MIT Kerberos KDC,
#    dante and microsocks SOCKS5 servers, dnsmasq/busybox/iproute2 for the WPAD lab),
#    what the benchmark runs (nginx, tinyproxy, wrk), the build's system libraries
#    (libkrb5-dev + libclang-dev + pkg-config for GSSAPI bindings), and small tools.
#    Package scripts are kept from starting system services while installing.
# 2. A python venv with pyspnego (from PyPI) for the NTLM verifier squid uses, and
#    kubernetes-validate for the Kubernetes manifests' schema check, in
#    ${WP_TEST_CACHE:-/var/cache/waypost-test}/venv (~/.cache/waypost-test as non-root),
#    readable by the unprivileged user the test daemons run as.
set -euo pipefail

PACKAGES=(
    # real peers (tests/peers/)
    squid krb5-kdc krb5-admin-server krb5-user apache2-utils openssl ca-certificates curl
    python3 python3-venv dante-server microsocks libnss-wrapper
    # WPAD lab (network namespaces, DHCP option 252, DNS)
    dnsmasq-base busybox iproute2 bind9-dnsutils
    # PAC reference implementation for comparison tests
    python3-pacparser
    # the status page's browser test (tests/integration/status_page.rs drives headless chromium)
    chromium fonts-dejavu-core
    # socket activation without a running systemd (tests/integration/socket_activation.rs:
    # systemd-socket-activate); man renders `waypost man` (tests/integration/client_access.rs)
    systemd man-db
    # benchmark (bench/run.sh)
    nginx tinyproxy wrk
    # building: GSSAPI bindings (bindgen) and the usual toolchain pieces
    build-essential pkg-config libclang-dev libkrb5-dev libssl-dev
    # tools the scripts use: setpriv/setsid (util-linux), ps (procps)
    util-linux procps
    # deploy checks: the scratch container image (tests/integration/deploy_container.rs: podman build +
    # create + export; systemd-analyze verify on deploy/systemd (tests/integration/deploy_systemd.rs)
    podman systemd
    # real clients end to end (tests/integration/clients.rs): git http-backend, pip (node: below)
    git python3-pip
)
# node + npm for the client tests: Debian's, unless a node with its own npm is already
# installed (NodeSource's nodejs package conflicts with Debian's npm)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi
: "${PYSPNEGO_SPEC:=pyspnego>=0.11}"
# Kubernetes schema validation of deploy/kubernetes (tests/integration/deploy_kubernetes.rs); brings PyYAML
: "${KUBERNETES_VALIDATE_SPEC:=kubernetes-validate>=1.31}"

log() { printf '[install-deps] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ "$(id -u)" = 0 ]; then SUDO=(); CACHE="${WP_TEST_CACHE:-/var/cache/waypost-test}"
else SUDO=(sudo -n); CACHE="${WP_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/waypost-test}"; fi

missing=()
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found: install by hand: ${missing[*]}"
    if [ ${#SUDO[@]} -gt 0 ] && ! sudo -n true 2>/dev/null; then
        die "not root and no password-less sudo; run as root: apt-get install -y ${missing[*]}"
    fi
    log "installing: ${missing[*]}"
    # keep the packages' maintainer scripts from starting squid, nginx, krb5kdc, ... as
    # system services (they would take ports 80/3128/8888); Docker images ship this file.
    policy_created=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from waypost scripts/install-deps.sh\nexit 101\n' |
            "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
        trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null
    if [ -n "$policy_created" ]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
else
    log "all ${#PACKAGES[@]} Debian packages present"
fi

# python venv for tests/peers/ntlm_verifier.py (squid runs it as an unprivileged user:
# the venv must be built from the system interpreter and be world-readable)
venv="$CACHE/venv"
if "$venv/bin/python" -c 'import spnego, kubernetes_validate, yaml' 2>/dev/null; then
    log "venv with pyspnego and kubernetes-validate present: $venv"
elif "$venv/bin/python" -c 'import spnego' 2>/dev/null; then
    log "adding $KUBERNETES_VALIDATE_SPEC to $venv"
    (umask 022 && "$venv/bin/pip" install -q --disable-pip-version-check "$KUBERNETES_VALIDATE_SPEC" </dev/null) ||
        die "could not install $KUBERNETES_VALIDATE_SPEC into $venv (needs access to PyPI)"
else
    log "creating $venv with $PYSPNEGO_SPEC"
    mkdir -p "$CACHE"
    chmod 755 "$CACHE"
    rm -rf "$venv"
    (umask 022 && /usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "$PYSPNEGO_SPEC" "$KUBERNETES_VALIDATE_SPEC" </dev/null) ||
        die "could not create the venv $venv (needs python3-venv and access to PyPI)"
    "$venv/bin/python" -c 'import spnego' || die "pyspnego did not install into $venv"
fi
chmod -R a+rX "$CACHE"
log "done"

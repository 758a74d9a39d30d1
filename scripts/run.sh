#!/usr/bin/env bash
# Run waypost from this checkout with embedded defaults (127.0.0.1:3128, DIRECT), or with the
# arguments given (e.g. scripts/run.sh --upstream http://proxy.corp.example:3128).
#
# Kerberos single sign-on (the default `gssapi` feature) needs libkrb5-dev, libclang-dev and
# pkg-config to build. As root, this script installs them with apt-get when missing; otherwise it
# builds without that feature and says so (Kerberos then works from a password or keytab only).
set -euo pipefail
cd "$(dirname "$0")/.."

have_gssapi_build_deps() {
    command -v pkg-config >/dev/null && pkg-config --exists krb5-gssapi 2>/dev/null \
        && { ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; }
}

features=()
if ! have_gssapi_build_deps; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[run] installing build dependencies for Kerberos SSO: libkrb5-dev libclang-dev pkg-config" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libkrb5-dev libclang-dev pkg-config >/dev/null
    fi
fi
if ! have_gssapi_build_deps; then
    echo "[run] libkrb5-dev/libclang-dev not found: building without Kerberos ticket-cache SSO" >&2
    echo "[run] (install them, or run this script as root, to enable it)" >&2
    features=(--no-default-features)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/waypost-target}"
exec cargo run --release "${features[@]}" -- "$@"

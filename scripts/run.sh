#!/usr/bin/env bash
# Run waypost from this checkout with embedded defaults (127.0.0.1:3128, DIRECT), or with the
# arguments given (e.g. scripts/run.sh --upstream http://proxy.corp.example:3128).
#
# Which build (issue 21; figures in bench/README.md, "Release and dist profiles"):
# - once an optimised build exists (target/release/waypost), it is used (`cargo run --release`,
#   which rebuilds what changed);
# - on the first start there is none, and making one takes 5 to 7 minutes on two cores. So the
#   first start builds the `quick` profile (no optimisation, no debug info: about 2 minutes
#   from nothing), serves with it at once, and makes the optimised build in the background at
#   the lowest priority once the proxy answers (log: $CARGO_TARGET_DIR/release-build.log); the
#   next start uses it. The quick build proxies correctly, only slower: a PAC call costs about
#   0.8 ms instead of 0.08 ms.
# WAYPOST_RUN_PROFILE=release (or dist, or quick) builds and runs that profile, in the
# foreground; WAYPOST_RUN_PROFILE=quick also skips the background build.
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
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libkrb5-dev libclang-dev pkg-config >/dev/null
    fi
fi
if ! have_gssapi_build_deps; then
    echo "[run] libkrb5-dev/libclang-dev not found: building without Kerberos ticket-cache SSO" >&2
    echo "[run] (install them, or run this script as root, to enable it)" >&2
    features=(--no-default-features)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/waypost-target}"

profile="${WAYPOST_RUN_PROFILE:-}"
if [ -z "$profile" ]; then
    if [ -x "$CARGO_TARGET_DIR/release/waypost" ]; then
        profile=release
    else
        profile=first-start
    fi
fi
case "$profile" in
release | dist | quick)
    exec cargo run --profile "$profile" "${features[@]}" --bin waypost -- "$@"
    ;;
first-start) ;;
*)
    echo "[run] WAYPOST_RUN_PROFILE=$profile: expected release, dist or quick" >&2
    exit 2
    ;;
esac

echo "[run] first start: a quick build (unoptimised, about 2 minutes from nothing on 2 cores);" >&2
echo "[run] the optimised build follows in the background, for the next start" >&2
cargo build --profile quick "${features[@]}" --bin waypost
quick="$CARGO_TARGET_DIR/quick/waypost"
log="$CARGO_TARGET_DIR/release-build.log"
# once the proxy answers (or after a minute), at the lowest priority; Ctrl-C stops it with the
# proxy (same process group)
(
    "$quick" ready --wait 60s >/dev/null 2>&1 || true
    echo "[run] building the optimised waypost in the background (log: $log)" >&2
    nice -n 19 cargo build --release "${features[@]}" --bin waypost >"$log" 2>&1 \
        && echo "[run] optimised build done: the next scripts/run.sh uses it" >&2 \
        || echo "[run] the optimised build failed: see $log" >&2
) </dev/null &
exec "$quick" "$@"

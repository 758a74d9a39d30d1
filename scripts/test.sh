#!/usr/bin/env bash
# The test command: install the system packages the tests need, then run every test.
#
#   scripts/test.sh [extra cargo test args...]
#
# 1. scripts/install-deps.sh: Debian packages (squid, MIT Kerberos KDC, dante, microsocks,
#    nginx, ... ; apt-get as root, skipped when all are present) and the pyspnego venv.
# 2. cargo test --workspace, including the suites that start real peers on loopback
#    (tests/peers/). CARGO_TARGET_DIR defaults to a cache shared by every checkout
#    (~/.cache/waypost-target), so a fresh clone does not rebuild the dependencies.
# 3. scripts/fuzz.sh: every libFuzzer target of fuzz/ for WP_FUZZ_SECONDS each (default
#    10; 0 skips), after the tests passed. Installs nightly and cargo-fuzz when missing. Its
#    instrumented build has its own target dir (~/.cache/waypost-fuzz-target): the first one
#    takes ~15-25 min on 2 cores, later ones only rebuild what changed (1-5 min).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/waypost-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
command -v cargo >/dev/null || { [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"; }
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

echo "[test] cargo $(cargo --version | cut -d' ' -f2), target dir $CARGO_TARGET_DIR" >&2
cargo test --workspace "$@" </dev/null

# (not WAYPOST_*: that prefix is the proxy's own configuration, read by the tests' waypost)
fuzz_seconds="${WP_FUZZ_SECONDS:-10}"
if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds" </dev/null
fi

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
# 3. bench/run.sh --smoke: one ~1 s round of every benchmark section against the debug
#    build (a broken benchmark fails here, slow numbers never do); WP_BENCH_SMOKE=0 skips it.
# 4. scripts/fuzz.sh: every libFuzzer target of fuzz/ for WP_FUZZ_SECONDS each (default
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

# 3. the benchmark's smoke run (issue 15): every section of bench/run.sh once, ~1 s per run,
#    with the debug build the tests just used; it checks that each section produced a number,
#    never the numbers themselves. WP_BENCH_SMOKE=0 skips it.
if [ "${WP_BENCH_SMOKE:-1}" != 0 ]; then
    waypost_debug="$CARGO_TARGET_DIR/debug/waypost"
    cargo build --bin waypost </dev/null   # a no-op after the tests; fresh either way
    echo "[test] bench/run.sh --smoke with $waypost_debug" >&2
    WAYPOST_BIN="$waypost_debug" bench/run.sh --smoke </dev/null
fi

# (not WAYPOST_*: that prefix is the proxy's own configuration, read by the tests' waypost)
fuzz_seconds="${WP_FUZZ_SECONDS:-10}"
if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds" </dev/null
fi

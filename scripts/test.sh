#!/usr/bin/env bash
# The test command: install the system packages the tests need, then run every test.
#
#   scripts/test.sh [extra cargo test args...]
#
# 1. scripts/install-deps.sh: Debian packages (squid, MIT Kerberos KDC, dante, microsocks,
#    nginx, ... ; apt-get as root, skipped when all are present) and the pyspnego venv.
# 2. cargo test --workspace, including the suites that start real peers on loopback
#    (tests/peers/) and the replay of every fuzz target over its corpus and past crash inputs
#    (fuzz/src/replay.rs). CARGO_TARGET_DIR defaults to a cache shared by every checkout
#    (~/.cache/waypost-target), so a fresh clone does not rebuild the dependencies.
# 3. bench/run.sh --smoke: one ~1 s round of every benchmark section against the debug
#    binary the tests just built (no second build); a broken benchmark fails here, slow
#    numbers never do. WP_BENCH_SMOKE=0 skips it.
# The fuzzing campaign itself (nightly, cargo-fuzz) is not part of this command: see
# scripts/fuzz.sh and .ci/fuzz (a scheduled job).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/waypost-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
command -v cargo >/dev/null || { [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"; }
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

echo "[test] cargo $(cargo --version | cut -d' ' -f2), target dir $CARGO_TARGET_DIR" >&2
# Most tests wait on peers, timers and child processes rather than on the CPU: 4 threads per
# test binary (on 2 cores) halve the suite's wall time. RUST_TEST_THREADS overrides it.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo test --workspace --no-fail-fast "$@" </dev/null

# 3. the benchmark's smoke run (issue 15): every section of bench/run.sh once, ~1 s per run,
#    with the debug binary `cargo test` built for the integration tests (same features: a
#    `cargo build` here would resolve other features and compile the graph again); it checks
#    that each section produced a number, never the numbers themselves.
if [ "${WP_BENCH_SMOKE:-1}" != 0 ]; then
    waypost_debug="$CARGO_TARGET_DIR/debug/waypost"
    [ -x "$waypost_debug" ] || { echo "[test] $waypost_debug was not built by cargo test" >&2; exit 1; }
    echo "[test] bench/run.sh --smoke with $waypost_debug" >&2
    WAYPOST_BIN="$waypost_debug" bench/run.sh --smoke </dev/null
fi

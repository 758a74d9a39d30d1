#!/usr/bin/env bash
# The fuzzing campaign (opt-in; not part of scripts/test.sh): builds and runs every libFuzzer
# target of fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60 s, every target)
#
# The tests replay what fuzzing found without any of this: each target's body is a plain
# function of `waypost-fuzz` (fuzz/src/), and `cargo test` (fuzz/src/replay.rs) runs it over
# fuzz/corpus/<target>/ and every past crash input in fuzz/artifacts/<target>/. Run this script
# on a schedule (nightly CI, or a timer; the README's "Fuzzing" section) and commit what it finds.
#
# Needs the nightly toolchain (installed with rustup when missing) and cargo-fuzz (installed
# with `cargo install` when missing). The instrumented build has its own target directory
# (WP_FUZZ_TARGET_DIR, default ~/.cache/waypost-fuzz-target) so it never invalidates the
# stable one. Each target starts from its checked-in seeds (fuzz/corpus/<target>/, read only)
# plus the corpus earlier runs grew (kept in the target directory, not in git). A crash fails
# the script; the input is kept in fuzz/artifacts/<target>/ (reproduce it with `cargo test -p
# waypost-fuzz`, which replays that folder, or run the built binary on the file); fix the code,
# add a regression test in the crate that owns it, and commit the input.
#
# Sanitizer: none. The targets are safe Rust; what they look for is panics, overflow
# (debug assertions are on), hangs (-timeout) and runaway memory (-rss_limit_mb). Without ASan
# the build is smaller and each target runs several times faster in a short CI budget.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
HOME="${HOME:-/root}"
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
target_dir="${WP_FUZZ_TARGET_DIR:-$HOME/.cache/waypost-fuzz-target}"
rss_mb="${WP_FUZZ_RSS_MB:-2048}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "[fuzz] installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

fuzz=(cargo +nightly fuzz)
common=(--fuzz-dir fuzz --sanitizer none --target-dir "$target_dir" --features libfuzzer)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir fuzz)
    [ "${#targets[@]}" -gt 0 ] || { echo "[fuzz] no targets listed" >&2; exit 1; }
fi

start=$(date +%s)
"${fuzz[@]}" build "${common[@]}" >&2
echo "[fuzz] build took $(( $(date +%s) - start )) s" >&2
bin_dir="$target_dir/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

status=0
summary=()
for t in "${targets[@]}"; do
    grown="$target_dir/corpus/$t"
    mkdir -p "$grown" "fuzz/artifacts/$t"
    log="$target_dir/fuzz-$t.log"
    echo "[fuzz] $t: ${secs}s" >&2
    # the binary built above, run directly (`cargo fuzz run` would re-check the build per target)
    if "$bin_dir/$t" "$grown" "fuzz/corpus/$t" \
        -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" -rss_limit_mb="$rss_mb" \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        outcome=ok
    else
        outcome="FAILED (see $log and fuzz/artifacts/$t/)"
        status=1
        tail -n 40 "$log" >&2
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$(printf '%-20s %10s execs %6s corpus files  %s' "$t" "${execs:-?}" \
        "$(find "$grown" -type f | wc -l)" "$outcome")")
done

echo "[fuzz] $(( $(date +%s) - start )) s in all" >&2
printf '[fuzz] %s\n' "${summary[@]}" >&2
exit "$status"

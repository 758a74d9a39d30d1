#!/usr/bin/env bash
# Benchmarks waypost's PAC engine against pacparser on the corpus scripts named in issue 3.
# Builds the dist binary (PROFILE=release for the other profile), then for each script runs
# `waypost-pac bench` (`--in-process` threads, then the default: through a pac-worker child
# process, as the running proxy) and the pacparser
# timing script on the same URLs. URLs are chosen so that neither engine needs the network
# (IP-literal hosts or names the scripts decide without DNS).
# Usage: pac/bench.sh [ITERATIONS]   (needs python3-pacparser for the comparison: apt-get install python3-pacparser)
set -euo pipefail
cd "$(dirname "$0")/.."
ITER="${1:-3000}"
CORPUS="${WAYPOST_PAC_CORPUS:-../shared/pac-corpus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/waypost-target}"
# the shipped profile (fat LTO) unless PROFILE says otherwise (PROFILE=release: the faster build)
PROFILE="${PROFILE:-dist}"
cargo build --profile "$PROFILE" -q -p waypost-pac --bin waypost-pac
BIN="$CARGO_TARGET_DIR/$PROFILE/waypost-pac"

run() {
  local script="$1"; shift
  local args=()
  for u in "$@"; do args+=(--url "$u"); done
  echo "== $script"
  "$BIN" bench "$CORPUS/$script" "${args[@]}" --iterations "$ITER" --no-dns --my-ip 192.0.2.10 --in-process
  # the running proxy's path: the same calls through a pac-worker process (frames on a pipe)
  "$BIN" bench "$CORPUS/$script" "${args[@]}" --iterations "$ITER" --no-dns --my-ip 192.0.2.10
  if /usr/bin/python3 -c 'import pacparser' 2>/dev/null; then
    /usr/bin/python3 pac/bench/pacparser_bench.py "$ITER" "$CORPUS/$script" "$@"
  else
    echo "  (pacparser not installed: apt-get install python3-pacparser)"
  fi
}

run upstream/ph-web/brz-proxy.pac http://93.184.216.34/index.html http://elearning.bmf.gv.at/kurs http://www.bgbl.at/
run upstream/ph-web/example2.js http://93.184.216.34/index.html http://download.windowsupdate.com/x
run realworld/gfw_whitelist.pac http://www.baidu.com/ http://8.8.8.8/

#!/usr/bin/env bash
# Renders a page in headless chromium (Debian's `chromium`) the way a person's browser would:
#
#   tests/browser/render.sh URL OUTDIR
#
# writes OUTDIR/dom.html (the DOM after load), OUTDIR/screenshot.png (1280x1800) and
# OUTDIR/console.log (chromium's log, with every console message and CSP violation the page
# caused as a line containing `CONSOLE`). Runs as root with a fresh profile, no GPU, no
# network services of its own (sync, updates, background fetches). Exits with chromium's status.
set -euo pipefail
url="$1"
out="$2"
mkdir -p "$out"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
browser="$(command -v chromium || command -v chromium-browser)"
flags=(
    --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
    --disable-component-update --disable-sync --disable-default-apps --mute-audio
    --user-data-dir="$profile" --enable-logging=stderr --log-level=0 --v=0
    --window-size=1280,1800 --hide-scrollbars
)
# The DOM after load (console messages of this load go to the log).
timeout 60 "$browser" "${flags[@]}" --dump-dom "$url" >"$out/dom.html" 2>"$out/console.log"
# A screenshot of the same page.
timeout 60 "$browser" "${flags[@]}" --screenshot="$out/screenshot.png" "$url" \
    >/dev/null 2>>"$out/console.log"

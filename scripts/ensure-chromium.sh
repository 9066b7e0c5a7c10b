#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (the browser tests drive it headless through Playwright; no
# browser is downloaded by Playwright itself). Installs the `chromium` package with apt-get when it is
# missing (needs root, or sudo without a password). Prints the browser's path.
set -euo pipefail
browser="${TEST_CHROMIUM:-/usr/bin/chromium}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
if [ ! -x "$browser" ]; then
  echo "[chromium] installing Debian's chromium for the browser tests" >&2
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x "$browser" ] || { echo "[chromium] $browser is still missing" >&2; exit 1; }
echo "$browser"

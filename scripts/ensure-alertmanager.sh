#!/usr/bin/env bash
# Puts Debian's alertmanager and amtool binaries under .tools/alertmanager/ without installing the
# service: `apt-get download` plus `dpkg -x`. Prints the directory holding the binaries.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/alertmanager"
bin="$dest/usr/bin"
if [ -x "$bin/amtool" ]; then echo "$bin"; exit 0; fi
if command -v amtool >/dev/null 2>&1; then dirname "$(command -v amtool)"; exit 0; fi
mkdir -p "$dest/deb"
cd "$dest/deb"
if ! ls prometheus-alertmanager_*.deb >/dev/null 2>&1; then
  apt-get download prometheus-alertmanager >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get download prometheus-alertmanager >/dev/null; }
fi
dpkg -x prometheus-alertmanager_*.deb "$dest"
echo "$bin"

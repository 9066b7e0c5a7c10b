#!/usr/bin/env bash
# Puts Debian's prometheus and promtool binaries under .tools/prometheus/ without installing the service:
# `apt-get download` plus `dpkg -x`. Prints the directory holding the binaries.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/prometheus"
bin="$dest/usr/bin"
if [ -x "$bin/promtool" ] && [ -x "$bin/prometheus" ]; then echo "$bin"; exit 0; fi
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  dirname "$(command -v promtool)"; exit 0
fi
mkdir -p "$dest/deb"
cd "$dest/deb"
if ! ls prometheus_*.deb >/dev/null 2>&1; then
  apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; }
fi
dpkg -x prometheus_*.deb "$dest"
echo "$bin"

#!/usr/bin/env bash
# Creates the virtualenv (when missing) and installs the platform with an extra, saying what it does in a
# few lines: pip's full output goes to <venv>/install.log. On a terminal one line is updated every second;
# elsewhere (CI, a pipe) a line is printed every 15 s.
#   scripts/install-venv.sh PYTHON VENV [EXTRA]
set -euo pipefail
python="$1"
venv="$2"
extra="${3:-dev}"
log="$venv/install.log"
say() { echo "[install] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
fi
: >"$log"
say "installing cryptostock[$extra] and its dependencies into $venv (full log: $log)"
"$venv/bin/python" -m pip install --progress-bar off --upgrade pip >>"$log" 2>&1
"$venv/bin/python" -m pip install --progress-bar off -e ".[$extra]" >>"$log" 2>&1 &
pid=$!

status() {  # packages found so far and what pip is doing now
  local found doing
  found=$(grep -cE '^(Collecting|Processing) ' "$log" || true)
  doing=$(grep -E '^(Collecting|Processing|Building wheel|Installing collected)' "$log" | tail -n 1 || true)
  case "$doing" in
    "Installing collected packages: "*) doing="unpacking $(echo "$doing" | tr ',' '\n' | wc -l) packages" ;;
    *) doing=$(echo "$doing" | cut -d' ' -f1-2 | sed 's/^Collecting/fetching/; s/^Processing/fetching/') ;;
  esac
  echo "$((SECONDS - start)) s: $found packages found${doing:+, $doing}"
}

start=$SECONDS
last=0
while kill -0 "$pid" 2>/dev/null; do
  sleep 1
  if [ -t 1 ]; then
    printf '\r\033[2K[install] %s' "$(status)"
  elif [ $((SECONDS - last)) -ge 15 ]; then
    last=$SECONDS
    say "$(status)"
  fi
done
[ -t 1 ] && printf '\r\033[2K'
if ! wait "$pid"; then
  say "pip failed after $((SECONDS - start)) s; the end of $log:"
  tail -n 20 "$log"
  exit 1
fi
count=$(grep '^Successfully installed' "$log" | tr ' ' '\n' | grep -c -- '-[0-9]' || true)
say "done in $((SECONDS - start)) s: $count packages installed or upgraded"

#!/usr/bin/env bash
# Puts the Compose specification JSON schema at .tools/compose-spec/compose_spec.json and prints its path.
# There is no Docker engine or `docker compose` plugin on the test machines; the schema comes from PyPI:
# the legacy docker-compose 1.29.2 wheel (Apache-2.0) ships the compose-spec schema as
# compose/config/compose_spec.json. Only the JSON is extracted; nothing is installed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/compose-spec"
schema="$dest/compose_spec.json"
if [ -s "$schema" ]; then echo "$schema"; exit 0; fi
python="$root/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
mkdir -p "$dest/wheel"
if ! ls "$dest"/wheel/docker_compose-1.29.2-*.whl >/dev/null 2>&1; then
  "$python" -m pip download -q --no-deps --only-binary=:all: -d "$dest/wheel" docker-compose==1.29.2 >/dev/null 2>&1
fi
"$python" - "$dest" <<'PY'
import glob, sys, zipfile
dest = sys.argv[1]
wheel = glob.glob(f"{dest}/wheel/docker_compose-1.29.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("compose/config/compose_spec.json")
with open(f"{dest}/compose_spec.json.tmp", "wb") as f:
    f.write(data)
PY
mv "$dest/compose_spec.json.tmp" "$schema"
echo "$schema"

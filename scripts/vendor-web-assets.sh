#!/usr/bin/env bash
# Refreshes the third-party web assets the API serves from the installed package (api/static/vendor/), so
# that /docs, /redoc and the live page at / need no CDN. Each comes from the npm registry through the
# npm client at the version and integrity pinned below; to move to a new version, change VERSION and
# INTEGRITY (`npm view <package>@<version> dist.integrity`), run this script, look at the pages, commit.
#
#   swagger-ui-dist     Apache-2.0  Swagger UI for /docs            (LICENSE, NOTICE kept)
#   redoc               MIT         ReDoc's standalone bundle /redoc (LICENSE, bundled licences kept)
#   lightweight-charts  Apache-2.0  TradingView Lightweight Charts   (LICENSE kept; NOTICE from upstream)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/api/static/vendor"

declare -A VERSION=(
  [swagger-ui-dist]=5.35.0
  [redoc]=2.5.4
  [lightweight-charts]=5.2.1
)
declare -A INTEGRITY=(
  [swagger-ui-dist]=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
  [redoc]=sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==
  [lightweight-charts]=sha512-IVwoK1RLFiLPubaKIjNbtjWLnpPMqiABSrTay6whmNa8L1+19292VtHJ+BWyPUuLCwF0tcQlhEWd1CLB2a1nsQ==
)
# Files taken from each package (paths inside the npm tarball's package/ directory).
declare -A FILES=(
  [swagger-ui-dist]="swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE"
  [redoc]="bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE"
  [lightweight-charts]="dist/lightweight-charts.standalone.production.js LICENSE"
)
# The npm package of lightweight-charts does not carry the NOTICE file of its repository; this is its text.
LWC_NOTICE='TradingView Lightweight Charts
Copyright (с) 2023 TradingView, Inc. https://www.tradingview.com/'

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in swagger-ui-dist redoc lightweight-charts; do
  spec="$name@${VERSION[$name]}"
  echo "[vendor] $spec"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball="$work/$name-${VERSION[$name]}.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "${INTEGRITY[$name]}" ]; then
    echo "[vendor] $spec: integrity $got differs from the pinned ${INTEGRITY[$name]}" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar xzf "$tarball" -C "$work/$name"
  rm -rf "${vendor:?}/$name"
  mkdir -p "$vendor/$name"
  for file in ${FILES[$name]}; do cp "$work/$name/package/$file" "$vendor/$name/"; done
done
printf '%s\n' "$LWC_NOTICE" > "$vendor/lightweight-charts/NOTICE"
{
  echo "# Third-party web assets served by the API; refreshed by scripts/vendor-web-assets.sh"
  echo "# package version licence integrity"
  echo "swagger-ui-dist ${VERSION[swagger-ui-dist]} Apache-2.0 ${INTEGRITY[swagger-ui-dist]}"
  echo "redoc ${VERSION[redoc]} MIT ${INTEGRITY[redoc]}"
  echo "lightweight-charts ${VERSION[lightweight-charts]} Apache-2.0 ${INTEGRITY[lightweight-charts]}"
} > "$vendor/VERSIONS"
echo "[vendor] done: $(du -sh "$vendor" | cut -f1) in api/static/vendor"

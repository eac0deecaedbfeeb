#!/usr/bin/env bash
# Compression benchmarks: cache-hit throughput of stored compressed variants against identity
# hits (and against nginx proxy_cache + gzip, which compresses on every hit), then the CPU cost
# per MiB of each coding at the edge's levels (`edge-load codec`).
#
# The edge and nginx are pinned to CPU 0 with one worker; the generator and origin to CPU 1.
# Systems and codings alternate within each round; the table shows medians over the rounds.
# Usage: load-tests/compress-bench.sh [--rounds N] [--duration SECS] [--connections N]
#        [--sizes "16384 131072"] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=3 CONNS=64 SIZES="16384 131072" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "compress-bench.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
have() { command -v "$1" >/dev/null; }
have nginx || echo "compress-bench.sh: nginx not installed, skipping it (apt-get install -y nginx-light)" >&2

. load-tests/lib.sh compress-bench

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

cat > "$work/edge.toml" <<EOF
[node]
name = "bench-edge"
[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]
[tls]
cert = "cert.pem"
key = "key.pem"
[cache]
memory_bytes = "1GiB"
[pools.origin]
endpoints = ["$ORIGIN"]
[[sites]]
name = "bench"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
RUST_LOG=warn EDGE_ACCESS_LOG=${EDGE_ACCESS_LOG:-off} taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 > "$work/edge.out" 2> "$work/edge.err" & pids+=($!)
EDGE_HTTP=$(wait_addr "$work/edge.out" "^listening http ")
EDGE_HTTPS=$(wait_addr "$work/edge.out" "^listening https ")
EDGE_ADMIN=$(wait_addr "$work/edge.out" "^listening admin ")

NGX_HTTP="" NGX_HTTPS=""
if have nginx; then
  # gzip on every hit (level 6); the origin is asked for identity, as the edge does.
  start_nginx "$ORIGIN" "gzip on; gzip_comp_level 6; gzip_vary on;" 'proxy_set_header Accept-Encoding "";'
fi

load() { # proto addr path coding -> JSON line
  local proto=$1 addr=$2 path=$3 coding=$4
  local scheme=https; [ "$proto" = h1 ] && scheme=http
  taskset -c 1 "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "$path" --ca "$work/cert.pem" -d "$DURATION" --warmup 1 --json -c "$CONNS" \
    -H "accept-encoding: $coding" 2>>"$work/load.err" || echo '{}'
}

# Warm: identity and each coding once per object (the edge stores each variant once).
for s in $SIZES; do
  for c in identity br gzip zstd; do
    curl -s -o /dev/null -H "accept-encoding: $c" "http://$EDGE_HTTP/obj/t$s?size=$s&type=text"
    # The scheme is part of the cache key: HTTPS objects are warmed separately.
    curl -s -o /dev/null --cacert "$work/cert.pem" -H "accept-encoding: $c" "https://localhost:${EDGE_HTTPS##*:}/obj/t$s?size=$s&type=text"
    [ -n "$NGX_HTTP" ] && curl -s -o /dev/null -H "accept-encoding: $c" "http://127.0.0.1:$NGX_HTTP/obj/t$s?size=$s&type=text"
  done
done
curl -s "http://$EDGE_ADMIN/metrics" | grep '^edge_compress' > "$work/metrics-before.txt"

results=$work/results.jsonl
: > "$results"
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  for s in $SIZES; do
    path="/obj/t$s?size=$s&type=text"
    for proto in h1 h2; do
      if [ "$proto" = h1 ]; then e=$EDGE_HTTP n=127.0.0.1:$NGX_HTTP; else e=$EDGE_HTTPS n=127.0.0.1:$NGX_HTTPS; fi
      for c in identity br zstd gzip; do
        echo "{\"test\":\"$proto-$s\",\"coding\":\"$c\",\"system\":\"edge\",\"r\":$(load "$proto" "$e" "$path" "$c")}" >> "$results"
      done
      if [ -n "$NGX_HTTP" ]; then
        for c in identity gzip; do
          echo "{\"test\":\"$proto-$s\",\"coding\":\"$c\",\"system\":\"nginx\",\"r\":$(load "$proto" "$n" "$path" "$c")}" >> "$results"
        done
      fi
    done
  done
done
curl -s "http://$EDGE_ADMIN/metrics" | grep '^edge_compress' > "$work/metrics-after.txt"

{
python3 - "$results" "$ROUNDS" "$DURATION" "$CONNS" <<'PY'
import json, statistics, sys
from collections import defaultdict
results, rounds, duration, conns = sys.argv[1:5]
runs, lat, size = defaultdict(list), defaultdict(list), defaultdict(list)
for line in open(results):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    r = d.get("r") or {}
    if r.get("requests", 0) > 0:
        k = (d["test"], d["system"], d["coding"])
        runs[k].append(r["rps"])
        lat[k].append(r["latency_us"]["p50"])
        size[k].append(r["bytes_per_sec"] / max(r["rps"], 1e-9))
print(f"Cache hits of a text/html object; medians of {rounds} alternating rounds, {duration} s each, "
      f"{conns} connections; servers pinned to CPU 0 with one worker, the generator to CPU 1.\n")
print("| test | system | Accept-Encoding | bytes/response | req/s median | min–max | p50 µs | / edge identity |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for t in sorted({k[0] for k in runs}, key=lambda t: (t.split("-")[0], int(t.split("-")[1]))):
    base = runs.get((t, "edge", "identity"))
    b = statistics.median(base) if base else None
    for sysname in ["edge", "nginx"]:
        for c in ["identity", "zstd", "br", "gzip"]:
            v = runs.get((t, sysname, c))
            if not v:
                continue
            med = statistics.median(v)
            ratio = f"{med / b:.2f}" if b else ""
            print(f"| {t} | {sysname} | {c} | {statistics.median(size[(t, sysname, c)]):,.0f} | {med:,.0f} | "
                  f"{min(v):,.0f}–{max(v):,.0f} | {statistics.median(lat[(t, sysname, c)]):.0f} | {ratio} |")
PY
echo
echo "Edge compression counters during the measured runs (after minus before):"
echo
echo '```'
paste -d' ' "$work/metrics-before.txt" "$work/metrics-after.txt" | awk '{ if ($4 - $2 != 0) print $1, $4 - $2 }'
echo '```'
echo
taskset -c 1 "$LOAD" codec --size $((8 * 1024 * 1024)) --rounds 3
} > "$work/table.md"
cat "$work/table.md"
if [ -s "$work/load.err" ]; then echo "compress-bench.sh: load generator errors (last lines):" >&2; tail -5 "$work/load.err" >&2; fi
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

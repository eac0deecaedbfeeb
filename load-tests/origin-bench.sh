#!/usr/bin/env bash
# Origin-side benchmarks: what each balancing algorithm costs per request on cache misses,
# and how well origin connections are reused under load.
#
# Three benchmark origins share CPU 1 with the generator; one edge per algorithm (memory cache,
# every URL new, so every request is a miss that goes to the pool) is pinned to CPU 0 with one
# worker. Rounds alternate the algorithms; the table shows medians. "direct" is the generator
# against one origin, the baseline for added latency.
# Usage: load-tests/origin-bench.sh [--rounds N] [--duration SECS] [--connections N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=3 CONNS=64 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "origin-bench.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done

. load-tests/lib.sh origin-bench

"$LOAD" cert --dir "$work"
ORIGINS=()
for i in 1 2 3; do
  taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin$i.out" & pids+=($!)
  ORIGINS+=("$(wait_addr "$work/origin$i.out" "^listening")")
done
endpoints=$(printf '"%s", ' "${ORIGINS[@]}"); endpoints="[${endpoints%, }]"

ALGS="round-robin weighted-round-robin least-in-flight p2c-ewma consistent-hash client-ip-hash random"
declare -A HTTP ADMIN
for alg in $ALGS; do
  cat > "$work/edge-$alg.toml" <<EOF
[node]
name = "bench-$alg"
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
endpoints = $endpoints
algorithm = "$alg"
health = { path = "/obj/health?size=1", interval = "1s" }
[[sites]]
name = "bench"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
  RUST_LOG=warn EDGE_ACCESS_LOG=${EDGE_ACCESS_LOG:-off} taskset -c 0 "$EDGE" run --config "$work/edge-$alg.toml" --workers 1 > "$work/edge-$alg.out" 2> "$work/edge-$alg.err" & pids+=($!)
  HTTP[$alg]=$(wait_addr "$work/edge-$alg.out" "^listening http ")
  ADMIN[$alg]=$(wait_addr "$work/edge-$alg.out" "^listening admin ")
done

load() { # addr conns template -> JSON
  local addr=$1 conns=$2 tmpl=$3
  taskset -c 1 "$LOAD" run --url "http://localhost:${addr##*:}" --connect "$addr" --proto h1 \
    -d "$DURATION" --warmup 1 --json -c "$conns" --zipf 1 --template "$tmpl" --miss-ratio 1 \
    2>>"$work/load.err" || echo '{}'
}
opened() { curl -s "http://$1/metrics" | awk '/^edge_origin_connections_opened_total/ {print $2}'; }

results=$work/results.jsonl
: > "$results"
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  echo "{\"alg\":\"direct\",\"kind\":\"load\",\"r\":$(load "${ORIGINS[0]}" "$CONNS" "/obj/d$round-{}?size=1024")}" >> "$results"
  echo "{\"alg\":\"direct\",\"kind\":\"one\",\"r\":$(load "${ORIGINS[0]}" 1 "/obj/e$round-{}?size=1024")}" >> "$results"
  for alg in $ALGS; do
    before=$(opened "${ADMIN[$alg]}")
    r=$(load "${HTTP[$alg]}" "$CONNS" "/obj/l$round-{}?size=1024")
    after=$(opened "${ADMIN[$alg]}")
    echo "{\"alg\":\"$alg\",\"kind\":\"load\",\"opened\":$((after - before)),\"r\":$r}" >> "$results"
    echo "{\"alg\":\"$alg\",\"kind\":\"one\",\"r\":$(load "${HTTP[$alg]}" 1 "/obj/o$round-{}?size=1024")}" >> "$results"
  done
done

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNS" > "$work/table.md" <<'PY'
import json, statistics, sys
from collections import defaultdict
results, rounds, duration, conns = sys.argv[1:5]
rps, p50, p99, one, opened, reqs = (defaultdict(list) for _ in range(6))
for line in open(results):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    r = d.get("r") or {}
    if r.get("requests", 0) == 0:
        continue
    a = d["alg"]
    if d["kind"] == "load":
        rps[a].append(r["rps"]); p50[a].append(r["latency_us"]["p50"]); p99[a].append(r["latency_us"]["p99"])
        if "opened" in d:
            # Requests include the warm-up second, which the counter also saw.
            total = r["rps"] * (r["seconds"] + 1.0)
            opened[a].append(d["opened"] / total * 10000)
    else:
        one[a].append(r["latency_us"]["p50"])
m = statistics.median
print(f"Cache misses (every URL new, 1 KiB) through a pool of 3 origins; medians of {rounds} rounds, "
      f"{duration} s each; edge pinned to CPU 0 with one worker, generator and origins on CPU 1.\n")
print(f"| algorithm | req/s ({conns} conns) | p50 µs | p99 µs | p50 µs, 1 conn | added over direct µs | origin connections opened per 10k requests |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
base = m(one["direct"]) if one.get("direct") else None
for a in ["direct", "round-robin", "weighted-round-robin", "least-in-flight", "p2c-ewma", "consistent-hash", "client-ip-hash", "random"]:
    if not rps.get(a):
        continue
    added = f"{m(one[a]) - base:.0f}" if base is not None and a != "direct" and one.get(a) else ""
    op = f"{m(opened[a]):.1f}" if opened.get(a) else ""
    print(f"| {a} | {m(rps[a]):,.0f} | {m(p50[a]):.0f} | {m(p99[a]):.0f} | {m(one[a]):.0f} | {added} | {op} |")
PY
cat "$work/table.md"
if [ -s "$work/load.err" ]; then echo "origin-bench.sh: load generator errors (last lines):" >&2; tail -5 "$work/load.err" >&2; fi
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

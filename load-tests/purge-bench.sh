#!/usr/bin/env bash
# Purge benchmark (issue 13): one node, memory tier.
#  1. Warms N objects (default 100,000) tagged `bulk` through the edge, and a hot set of 1,000
#     untagged objects.
#  2. Drives open-loop hit load at the hot set (RATE req/s over HTTP/1.1) twice: once quiet,
#     once with `POST /purge {"tags": ["bulk"]}` in the middle. Reports the purge's time to
#     effect (the API's took_us, and the client's round trip), its time to reclaimed (the tag
#     index empty), and the hit load's p99 / p99.9 / max latency in both runs.
#  3. Index memory per tagged object: RSS of an edge holding N tagged objects minus one holding
#     the same N untagged objects, over N (tags, index entries and their strings).
#  4. URL purge latency: P purges of single URLs, one after another on one keep-alive
#     connection: p50 / p99 of took_us and of the client's round trip.
# The edge runs on CPU 0 with one worker, the generator and origin on CPU 1; loopback only,
# every run bounded in time.
#
# Usage: load-tests/purge-bench.sh [--objects N] [--rate R] [--url-purges P] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

OBJECTS=100000 RATE=5000 URL_PURGES=1000 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --objects) OBJECTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --url-purges) URL_PURGES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "purge-bench.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh purge

SECRET=bench-secret-$$
HASH=$(echo "$SECRET" | "$EDGE" token-hash)
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

start_edge() { # NAME -> sets HTTP ADMIN PID
  local name=$1
  cat > "$work/$name.toml" <<EOF
[node]
name = "bench-$name"
[listen]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]
[cache]
memory_bytes = "4GiB"
[admin]
purge_rate = 1000000.0
purge_burst = 1000000
[[admin.tokens]]
name = "bench"
sha256 = "$HASH"
[pools.origin]
endpoints = ["$ORIGIN"]
[[sites]]
name = "bench"
hosts = ["127.0.0.1", "localhost"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
  RUST_LOG=warn EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/$name.toml" --workers 1 \
    > "$work/$name.out" 2> "$work/$name.err" & PID=$!; pids+=($PID)
  HTTP=$(wait_addr "$work/$name.out" "^listening http ")
  ADMIN=$(wait_addr "$work/$name.out" "^listening admin ")
}

metric() { # ADMIN SERIES
  curl -fsS "http://$1/metrics" | awk -v s="$2" '$1 == s {print $2}'
}

warm() { # HTTP TEMPLATE N
  local want=$3 secs=$(( $3 / 10000 + 2 ))
  taskset -c 1 "$LOAD" run --url "http://$1" --zipf "$3" --sequential --template "$2" \
    -c 32 -d "$secs" --warmup 0 --quiet --json > "$work/warm.json"
}

echo "== warming $OBJECTS tagged objects" >&2
start_edge tagged
TAGGED_HTTP=$HTTP TAGGED_ADMIN=$ADMIN TAGGED_PID=$PID
warm "$TAGGED_HTTP" "/obj/t{}?size=512&tag=bulk" "$OBJECTS"
for _ in $(seq 10); do
  n=$(metric "$TAGGED_ADMIN" edge_cache_tag_index_objects)
  [ "${n:-0}" -ge "$OBJECTS" ] && break
  warm "$TAGGED_HTTP" "/obj/t{}?size=512&tag=bulk" "$OBJECTS"
done
echo "   tag index: $n objects" >&2
warm "$TAGGED_HTTP" "/obj/hot{}?size=1024" 1000
sleep 1
RSS_TAGGED=$(rss_kib "$TAGGED_PID")

echo "== the same objects untagged, for the index's memory" >&2
start_edge untagged
warm "$HTTP" "/obj/t{}?size=512" "$OBJECTS"
warm "$HTTP" "/obj/t{}?size=512" "$OBJECTS"
warm "$HTTP" "/obj/hot{}?size=1024" 1000
sleep 1
RSS_UNTAGGED=$(rss_kib "$PID")
kill "$PID" 2>/dev/null || true

hit_load() { # OUT
  taskset -c 1 "$LOAD" run --url "http://$TAGGED_HTTP" --zipf 1000 --zipf-s 1.0 \
    --template "/obj/hot{}?size=1024" --rate "$RATE" -c 32 -d 6 --warmup 0.5 --json --quiet > "$1"
}

echo "== hit load, quiet" >&2
hit_load "$work/quiet.json"

echo "== hit load, purging tag bulk ($OBJECTS objects) in the middle" >&2
hit_load "$work/purge.json" & LOAD_PID=$!
sleep 3
T0=$(date +%s%N)
curl -fsS -X POST "http://$TAGGED_ADMIN/purge" -H "authorization: Bearer $SECRET" \
  -H 'content-type: application/json' -d '{"tags": ["bulk"]}' -o "$work/purge-answer.json" \
  -w '%{time_total}\n' > "$work/purge-rtt.txt"
RECLAIMED_MS=""
for _ in $(seq 600); do
  n=$(metric "$TAGGED_ADMIN" edge_cache_tag_index_objects)
  if [ "${n:-1}" = 0 ]; then RECLAIMED_MS=$(( ($(date +%s%N) - T0) / 1000000 )); break; fi
  sleep 0.05
done
wait "$LOAD_PID"

echo "== $URL_PURGES URL purges, one at a time" >&2
python3 - "$TAGGED_ADMIN" "$SECRET" "$URL_PURGES" > "$work/url-purges.json" <<'PY'
import http.client, json, sys, time
admin, secret, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = admin.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
took, rtt = [], []
for i in range(n):
    body = json.dumps({"urls": [f"http://127.0.0.1/obj/hot{i % 1000 + 1}?size=1024"]})
    t = time.perf_counter()
    conn.request("POST", "/purge", body, {"authorization": f"Bearer {secret}", "content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    rtt.append((time.perf_counter() - t) * 1e6)
    assert r.status == 200, data
    took.append(json.loads(data)["took_us"])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))]
print(json.dumps({"took_p50": pct(took, .5), "took_p99": pct(took, .99),
                  "rtt_p50": round(pct(rtt, .5)), "rtt_p99": round(pct(rtt, .99))}))
PY

python3 - "$work" "$OBJECTS" "$RSS_TAGGED" "$RSS_UNTAGGED" "${RECLAIMED_MS:-timeout}" "$RATE" > "$work/table.md" <<'PY'
import json, sys
work, n, rss_t, rss_u, reclaimed, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
ans = json.load(open(f"{work}/purge-answer.json"))
rtt = float(open(f"{work}/purge-rtt.txt").read()) * 1000
q, p = json.load(open(f"{work}/quiet.json")), json.load(open(f"{work}/purge.json"))
u = json.load(open(f"{work}/url-purges.json"))
ms = lambda us: f"{us / 1000:.2f} ms"
print(f"| purge by one tag of {n:,} objects | |")
print("|---|---|")
print(f"| objects purged | {ans['purged']:,} |")
print(f"| time to in effect (API took_us) | {ms(ans['took_us'])} |")
print(f"| client round trip | {rtt:.2f} ms |")
print(f"| time to reclaimed (tag index empty) | {reclaimed} ms |")
print(f"| index memory per tagged object (RSS delta / N) | {(rss_t - rss_u) * 1024 / n:.0f} bytes |")
print()
print(f"| hit load, open loop {rate} req/s, HTTP/1.1 | quiet | with the purge |")
print("|---|---|---|")
for k in ["p50", "p99", "p999", "max"]:
    print(f"| latency {k} | {ms(q['latency_us'][k])} | {ms(p['latency_us'][k])} |")
print(f"| requests | {q['requests']:,} | {p['requests']:,} |")
print(f"| errors | {sum(q['errors'].values())} | {sum(p['errors'].values())} |")
print()
print(f"| URL purge, one at a time | p50 | p99 |")
print("|---|---|---|")
print(f"| time to in effect (took_us) | {u['took_p50']} µs | {u['took_p99']} µs |")
print(f"| client round trip | {u['rtt_p50']} µs | {u['rtt_p99']} µs |")
PY
cat "$work/table.md"
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

#!/usr/bin/env bash
# Soak (issue 12): DURATION seconds (default 600) of mixed traffic against one edge with a memory
# and a disk tier, while its config is reloaded every 30 s and its RSS sampled every 10 s:
#   - HTTP/1.1: Zipf hits over 20,000 objects of 4 KiB, 5 % unique misses
#   - HTTP/2: compressible text with `Accept-Encoding: br` (stored brotli variants)
#   - HTTP/3: ranges of 1 MiB objects (fetched whole once, ranges cut from them)
#   - POSTs of 64 KiB over HTTP/1.1 and HTTP/2 (curl), which pass and invalidate their URL
# Pass: after the warm-up (the first quarter), RSS stays within 5 % of its mean, and no request
# fails (no errors, no 4xx/5xx; every POST answered 200). Loopback only; every load is bounded.
#
# Usage: load-tests/soak.sh [--duration SECS] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=600 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "soak.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh soak

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

write_config() { # GENERATION
  cat > "$work/edge.toml" <<EOF
# generation $1
[node]
name = "soak"
[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]
[tls]
cert = "cert.pem"
key = "key.pem"
[cache]
# Small tiers, so that both are full (evicting) within the warm-up: the soak then watches a
# steady state, not a cache still filling up (the disk index grows with every object stored).
memory_bytes = "64MiB"
disk_dir = "$work/cache"
disk_bytes = "128MiB"
[pools.origin]
endpoints = ["$ORIGIN"]
[[sites]]
name = "soak"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
}
write_config 0
RUST_LOG=info EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 \
  > "$work/edge.out" 2> "$work/edge.err" & EDGE_PID=$!; pids+=($EDGE_PID)
HTTP=$(wait_addr "$work/edge.out" "^listening http ")
HTTPS=$(wait_addr "$work/edge.out" "^listening https ")
PORT=${HTTPS##*:}

gen() { # NAME ARGS...
  local name=$1; shift
  taskset -c 1 "$LOAD" run -d "$DURATION" --warmup 0 --json --quiet "$@" > "$work/$name.json" 2> "$work/$name.err" &
  pids+=($!); GENS+=($!)
}
GENS=()
echo "== soak: $DURATION s; edge pid $EDGE_PID" >&2
gen h1 --url "http://$HTTP" --zipf 20000 --template '/obj/{}?size=4096' --miss-ratio 0.05 -c 16 --rate 1500
gen h2 --url "https://localhost:$PORT" --proto h2 --ca "$work/cert.pem" -H 'accept-encoding: br' \
  --zipf 2000 --template '/obj/t{}?size=16384&type=text' -c 2 -m 8 --rate 600
gen h3 --url "https://localhost:$PORT" --proto h3 --ca "$work/cert.pem" -H 'range: bytes=1000-66535' \
  --zipf 300 --template '/obj/r{}?size=1048576' -c 2 -m 4 --rate 200

# POSTs: every 100 ms, alternating HTTP/1.1 and HTTP/2; the status of each is kept.
head -c 65536 /dev/urandom > "$work/post.bin"
(
  end=$(( $(date +%s) + DURATION ))
  i=0
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ $((i % 2)) = 0 ]; then v=--http1.1; else v=--http2; fi
    curl -s -o /dev/null -w '%{http_code}\n' $v --cacert "$work/cert.pem" -m 10 \
      -X POST --data-binary @"$work/post.bin" "https://localhost:$PORT/obj/p$((i % 50))?size=512" || echo "000"
    i=$((i + 1))
    sleep 0.1
  done > "$work/posts.txt"
) & pids+=($!); GENS+=($!)

# Reload every 30 s (a new generation of the file, then SIGHUP); RSS every 10 s.
(
  start=$(date +%s) g=1
  while [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
    sleep 10
    t=$(( $(date +%s) - start ))
    echo "$t $(rss_kib "$EDGE_PID")" >> "$work/rss.txt"
    if [ $((t % 30)) -lt 10 ]; then
      write_config "$g"; kill -HUP "$EDGE_PID"; g=$((g + 1))
    fi
  done
) & pids+=($!); SAMPLER=$!

for p in "${GENS[@]}"; do wait "$p"; done
wait "$SAMPLER" 2>/dev/null || true
RELOADS=$(grep -c "config reloaded" "$work/edge.err" || true)
kill -0 "$EDGE_PID" 2>/dev/null || { echo "soak.sh: the edge died; its log:" >&2; tail -50 "$work/edge.err" >&2; exit 1; }

status=0
python3 - "$work" "$DURATION" "$RELOADS" > "$work/table.md" <<'PY' || status=$?
import json, sys
work, duration, reloads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows, failed = [], 0
for name, what in [("h1", "HTTP/1.1 Zipf 20k x 4 KiB, 5 % misses"), ("h2", "HTTP/2 text, br variants"),
                   ("h3", "HTTP/3 ranges of 1 MiB objects")]:
    r = json.load(open(f"{work}/{name}.json"))
    errors = sum(r["errors"].values())
    failed += errors
    rows.append(f"| {what} | {r['requests']:,} | {r['rps']:.0f} | {r['latency_us']['p99'] / 1000:.2f} ms | {errors} {dict(r['errors']) or ''} |")
posts = [l.strip() for l in open(f"{work}/posts.txt") if l.strip()]
bad = [p for p in posts if p != "200"]
failed += len(bad)
rows.append(f"| POST 64 KiB, HTTP/1.1 and HTTP/2 (curl) | {len(posts):,} | {len(posts) / duration:.0f} | | {len(bad)} |")
rss = [tuple(map(int, l.split())) for l in open(f"{work}/rss.txt") if l.strip()]
after = [k for t, k in rss if t >= duration / 4]
mean = sum(after) / len(after)
spread = max(abs(k - mean) / mean for k in after)
print(f"Soak, {duration} s, config reloads: {reloads}")
print()
print("| traffic | requests | req/s | p99 | failed |")
print("|---|---:|---:|---:|---:|")
print("\n".join(rows))
print()
print(f"RSS after warm-up ({len(after)} samples, t >= {duration // 4} s): mean {mean / 1024:.1f} MiB, "
      f"min {min(after) / 1024:.1f}, max {max(after) / 1024:.1f}, largest deviation {spread * 100:.1f} %")
print("RSS every 10 s (MiB): " + " ".join(f"{k / 1024:.0f}" for _, k in rss))
ok = spread <= 0.05 and failed == 0
print()
print("PASS" if ok else "FAIL", "(RSS within 5 % after warm-up, no failed request)")
sys.exit(0 if ok else 1)
PY
cat "$work/table.md"
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit $status

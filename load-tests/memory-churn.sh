#!/usr/bin/env bash
# Memory under churn: unique URLs (every request a new object) through an edge with a given
# memory budget, printing the edge's RSS as the count grows. The cache must stay within its
# budget plus a bounded overhead however many URLs pass through.
#
# Usage: load-tests/memory-churn.sh [--budget 64MiB] [--urls 1000000] [--size 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=64MiB URLS=1000000 SIZE=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET=$2; shift 2 ;;
    --urls) URLS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --locked -q -p edge -p load-tests
EDGE=$PWD/target/release/edge LOAD=$PWD/target/release/edge-load
work=$(mktemp -d "${TMPDIR:-/tmp}/edge-churn.XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
taskset -c 1 "$LOAD" origin > "$work/origin.out" & pids+=($!)
for _ in $(seq 50); do [ -s "$work/origin.out" ] && break; sleep 0.1; done
ORIGIN=$(awk '{print $2}' "$work/origin.out")
printf '[listen]\nhttp = ["127.0.0.1:0"]\n[cache]\nmemory_bytes = "%s"\n[pools.origin]\nendpoints = ["%s"]\n[[sites]]\nname = "churn"\nhosts = ["localhost"]\nplain_http = "proxy"\nroutes = [{ pool = "origin" }]\n' \
  "$BUDGET" "$ORIGIN" > "$work/edge.toml"
RUST_LOG=warn EDGE_ACCESS_LOG=${EDGE_ACCESS_LOG:-off} taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 > "$work/edge.out" 2>&1 & EP=$!; pids+=($EP)
for _ in $(seq 50); do grep -q '^ready' "$work/edge.out" && break; sleep 0.1; done
HTTP=$(awk '/^listening http / {print $3; exit}' "$work/edge.out")
rss_mib() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$EP/status"; }
echo "budget $BUDGET, objects of $SIZE bytes; edge RSS at start: $(rss_mib) MiB"
echo "| unique URLs | edge RSS (MiB) |"
echo "| ---: | ---: |"
done_urls=0
while [ "$done_urls" -lt "$URLS" ]; do
  n=$(taskset -c 1 "$LOAD" run --url "http://localhost:${HTTP##*:}" --connect "$HTTP" --zipf 1 \
      --template "/obj/c{}?size=$SIZE" --miss-ratio 1 -c 32 -d 5 --warmup 0 --json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  [ "$n" -gt 0 ] || { echo "memory-churn.sh: no requests succeeded" >&2; exit 1; }
  done_urls=$((done_urls + n))
  echo "| $done_urls | $(rss_mib) |"
done

#!/usr/bin/env bash
# What each attack costs the clients that are not attacking: a well-behaved HTTP/2 client (one
# connection, 8 streams, 1 KiB hits) measured alone, then while `edge-load attack …` runs
# against the same edge. Reports the bystander's p50/p99 and req/s for each, and the ratio of
# its p99 to the baseline (the protection issue's target: within 2x). Edge on CPU 0 with one
# worker, bystander and attacker on CPU 1. Loopback only; every run bounded in time.
#
# Usage: load-tests/attack-bench.sh [--duration SECS]    (PREBUILT=DIR to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=5
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. load-tests/lib.sh attack

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")
cat > "$work/edge.toml" <<EOF
[node]
name = "attack-bench"
[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[tls]
cert = "cert.pem"
key = "key.pem"
[limits]
quic_retry_above = 16
new_connections_per_client = 20
new_connections_burst = 20
[cache]
memory_bytes = "256MiB"
[pools.origin]
endpoints = ["$ORIGIN"]
[[sites]]
name = "bench"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOF
RUST_LOG=error EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 \
  > "$work/edge.out" 2> "$work/edge.err" & pids+=($!)
HS=$(wait_addr "$work/edge.out" "^listening https ")
H1=$(wait_addr "$work/edge.out" "^listening http ")
URL="https://localhost:${HS##*:}"
curl -sk -o /dev/null "$URL/obj/b?size=1024" --connect-to "localhost:${HS##*:}:$HS"

bystander() { # label -> one JSON line
  taskset -c 1 "$LOAD" run --url "$URL" --connect "$HS" --proto h2 --path "/obj/b?size=1024" \
    --ca "$work/cert.pem" -c 1 -m 8 -d "$DURATION" --warmup 0 --json 2>>"$work/load.err" || echo '{}'
}
attack() { # kind -> runs in the background for the duration
  local common=(--url "$URL" --connect "$HS" --ca "$work/cert.pem")
  case "$1" in
    rapid-reset) while :; do taskset -c 1 "$LOAD" attack rapid-reset "${common[@]}" --proto h2 --streams 100000 --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    rapid-reset-held) while :; do taskset -c 1 "$LOAD" attack rapid-reset "${common[@]}" --proto h2 --path '/obj/slow?size=1024&delay_ms=50' --hold-ms 5 --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    continuation) while :; do taskset -c 1 "$LOAD" attack continuation "${common[@]}" --proto h2 --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    h3-resets) while :; do taskset -c 1 "$LOAD" attack h3-resets "${common[@]}" --proto h3 --path '/obj/slow3?size=1024&delay_ms=50' --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    quic-handshakes) while :; do taskset -c 1 "$LOAD" attack quic-handshakes "${common[@]}" --proto h3 --connections 500 --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    slowloris) taskset -c 1 "$LOAD" attack slowloris --connect "$H1" --from 127.0.0.2 --from 127.0.0.3 --connections 1500 --duration "$DURATION" >/dev/null 2>&1 || true ;;
  esac
}

results=$work/results.jsonl
: > "$results"
for kind in none rapid-reset rapid-reset-held continuation h3-resets quic-handshakes slowloris; do
  echo "== $kind" >&2
  apid=""
  if [ "$kind" != none ]; then
    attack "$kind" & apid=$!
    sleep 0.5
  fi
  r=$(bystander)
  if [ -n "$apid" ]; then kill "$apid" 2>/dev/null || true; pkill -P "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; fi
  echo "{\"attack\":\"$kind\",\"r\":$r}" >> "$results"
  sleep 1
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next((r["r"] for r in rows if r["attack"] == "none" and r["r"].get("requests")), None)
print("| attack | bystander req/s | p50 µs | p99 µs | p99 / baseline |")
print("| --- | ---: | ---: | ---: | ---: |")
for r in rows:
    res = r["r"]
    if not res.get("requests"):
        print(f"| {r['attack']} | failed | | | |")
        continue
    p99 = res["latency_us"]["p99"]
    ratio = p99 / base["latency_us"]["p99"] if base else float("nan")
    print(f"| {r['attack']} | {res['rps']:,.0f} | {res['latency_us']['p50']:.0f} | {p99:.0f} | {ratio:.2f} |")
PY

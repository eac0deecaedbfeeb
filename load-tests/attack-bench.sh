#!/usr/bin/env bash
# What each attack costs the clients that are not attacking: a well-behaved HTTP/2 client (one
# connection, 8 streams, 1 KiB hits) measured alone, then while `edge-load attack …` runs
# against the same edge. Reports the bystander's p50/p99 and req/s for each, and the ratio of
# its p99 to the baseline (the protection issue's target: within 2x). Edge on CPU 0 with one
# worker, bystander and attacker on CPU 1, the attacker at nice 19: on a real network the
# attacker's CPU is not the bystander's, and here a flat-out attacker would otherwise delay the
# bystander's own client, which says nothing about the edge. Loopback only; every run bounded
# in time. --only KIND runs one attack (and the baseline).
#
# Usage: load-tests/attack-bench.sh [--duration SECS] [--only KIND]    (PREBUILT=DIR to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=5
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
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
    rapid-reset) nice -n 19 taskset -c 1 "$LOAD" attack rapid-reset "${common[@]}" --proto h2 --streams 100000 --duration "$DURATION" --reconnect >"$work/attack-$1.out" 2>&1 || true ;;
    rapid-reset-held) nice -n 19 taskset -c 1 "$LOAD" attack rapid-reset "${common[@]}" --proto h2 --path '/obj/slow?size=1024&delay_ms=50' --hold-ms 5 --duration "$DURATION" --reconnect >"$work/attack-$1.out" 2>&1 || true ;;
    continuation) nice -n 19 taskset -c 1 "$LOAD" attack continuation "${common[@]}" --proto h2 --duration "$DURATION" --reconnect >"$work/attack-$1.out" 2>&1 || true ;;
    h3-resets) nice -n 19 taskset -c 1 "$LOAD" attack h3-resets "${common[@]}" --proto h3 --path '/obj/slow3?size=1024&delay_ms=50' --duration "$DURATION" --reconnect >"$work/attack-$1.out" 2>&1 || true ;;
    quic-handshakes) while :; do nice -n 19 taskset -c 1 "$LOAD" attack quic-handshakes "${common[@]}" --proto h3 --connections 500 --duration "$DURATION" >/dev/null 2>&1 || true; done ;;
    # Not an attack: a busy loop at the attackers' nice level on the bystander's CPU, to see
    # what sharing that CPU alone does to the bystander's latency.
    cpu-burner) nice -n 19 taskset -c 1 sh -c 'while :; do :; done' ;;
    slowloris) nice -n 19 taskset -c 1 "$LOAD" attack slowloris --connect "$H1" --from 127.0.0.2 --from 127.0.0.3 --connections 1500 --duration "$DURATION" >/dev/null 2>&1 || true ;;
  esac
}

results=$work/results.jsonl
: > "$results"
KINDS="rapid-reset rapid-reset-held continuation h3-resets quic-handshakes slowloris"
for kind in none cpu-burner ${ONLY:-$KINDS}; do
  echo "== $kind" >&2
  apid=""
  if [ "$kind" != none ]; then
    attack "$kind" & apid=$!
    sleep 0.5
  fi
  r=$(bystander)
  if [ -n "$apid" ]; then
    # The loop first, then what it started: killed the other way round, the running tool
    # outlives its parent and overlaps the next measurement.
    kill -STOP "$apid" 2>/dev/null || true
    pkill -P "$apid" 2>/dev/null || true
    kill "$apid" 2>/dev/null || true
    kill -CONT "$apid" 2>/dev/null || true
    wait "$apid" 2>/dev/null || true
  fi
  echo "{\"attack\":\"$kind\",\"r\":$r}" >> "$results"
  [ -f "$work/attack-$kind.out" ] && echo "   $kind: $(tail -1 "$work/attack-$kind.out")" >&2
  sleep 1
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next((r["r"] for r in rows if r["attack"] == "none" and r["r"].get("requests")), None)
# The attackers are CPU-bound on the bystander's CPU; so is the burner, which attacks nothing:
# p99 against it is what the edge adds under attack, apart from sharing the client's CPU.
burner = next((r["r"] for r in rows if r["attack"] == "cpu-burner" and r["r"].get("requests")), None)
print("| attack | bystander req/s | p50 µs | p99 µs | p99 / alone | p99 / CPU-shared baseline |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    res = r["r"]
    if not res.get("requests"):
        print(f"| {r['attack']} | failed | | | | |")
        continue
    p99 = res["latency_us"]["p99"]
    ratio = p99 / base["latency_us"]["p99"] if base else float("nan")
    shared = p99 / burner["latency_us"]["p99"] if burner else float("nan")
    print(f"| {r['attack']} | {res['rps']:,.0f} | {res['latency_us']['p50']:.0f} | {p99:.0f} | {ratio:.2f} | {shared:.2f} |")
PY

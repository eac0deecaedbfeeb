#!/usr/bin/env bash
# A/B run: the edge built from this tree (B) against a baseline edge binary (A), alternating
# within each round on the same origin, so that a regression shows up as a ratio instead of
# hiding in run-to-run noise. Reports req/s and CPU time of the edge process per request
# (steadier than req/s on a noisy machine) for memory hits over HTTP/1.1, HTTP/2 and HTTP/3,
# misses at full load, and the latency one miss adds (one connection).
#
# Usage: load-tests/ab.sh --baseline PATH/TO/edge [--rounds N] [--duration SECS]
#        [--connections N] [--size BYTES] [--out FILE] [--disk]
# --disk: every object on the disk tier (memory tier 1 MiB, per-object memory limit 256 bytes),
# hits only (HTTP/1.1, HTTP/2, HTTP/3), the objects in the page cache.
# Build a baseline from an earlier commit with, for example:
#   git worktree add /tmp/edge-base COMMIT && (cd /tmp/edge-base && cargo build --release -p edge)
# PREBUILT=DIR compares DIR/edge (and uses DIR/edge-load) instead of building this tree.
# The access log is off (as nginx's is in compare.sh); EDGE_ACCESS_LOG=json measures its cost.
# --access-a/--access-b MODE (off, json, combined) set it per variant: with the same binary as
# baseline (--baseline target/release/edge, PREBUILT=target/release), --access-a off
# --access-b json is the cost of the JSON access log (written to a file, edge-B.err).
# --extra-a/--extra-b FILE append TOML to a variant's config (after its one [[sites]]), e.g.
# [geo] databases and [[sites.access]] rules to measure what geo costs a hit.
# CPU per request counts the whole run (no warm-up), from /proc/PID/stat.
# Both edges are pinned to CPU 0 (one worker, one at a time under load); generator and origin
# to CPU 1. Loopback only; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="" ROUNDS=5 DURATION=3 CONNS=64 SIZE=1024 OUT="" DISK=""
declare -A ACCESS=([A]=${EDGE_ACCESS_LOG:-off} [B]=${EDGE_ACCESS_LOG:-off})
declare -A EXTRA=([A]="" [B]="")
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --disk) DISK=1; shift ;;
    --access-a) ACCESS[A]=$2; shift 2 ;;
    --access-b) ACCESS[B]=$2; shift 2 ;;
    --extra-a) EXTRA[A]=$2; shift 2 ;;
    --extra-b) EXTRA[B]=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$BASE" ] || { echo "ab.sh: --baseline must name an edge binary" >&2; exit 2; }
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "ab.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh ab

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

declare -A BIN H1 HS PID
BIN[A]=$BASE BIN[B]=$EDGE
for v in A B; do
  cache='memory_bytes = "1GiB"'
  [ -n "$DISK" ] && cache=$(disk_cache "disk-$v")
  edge_config "$work/edge-$v.toml" "ab-$v" "$ORIGIN" "$cache" "${EXTRA[$v]}"
  RUST_LOG=warn EDGE_ACCESS_LOG=${ACCESS[$v]} taskset -c 0 "${BIN[$v]}" run --config "$work/edge-$v.toml" --workers 1 \
    > "$work/edge-$v.out" 2> "$work/edge-$v.err" & PID[$v]=$!; pids+=($!)
  H1[$v]=$(wait_addr "$work/edge-$v.out" "^listening http ")
  HS[$v]=$(wait_addr "$work/edge-$v.out" "^listening https ")
done

# CPU seconds (user + system) the process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

run() { # variant test proto addr path [extra args] -> one JSON line in results
  local v=$1 test=$2 proto=$3 addr=$4 path=$5; shift 5
  local scheme=https; [ "$proto" = h1 ] && scheme=http
  local before after r
  before=$(cpu_s "${PID[$v]}")
  r=$(taskset -c 1 "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "$path" --ca "$work/cert.pem" -d "$DURATION" --warmup 0 --json "$@" 2>>"$work/load.err" || echo '{}')
  after=$(cpu_s "${PID[$v]}")
  echo "{\"round\":$round,\"test\":\"$test\",\"system\":\"$v\",\"cpu_s\":$(python3 -c "print($after - $before)"),\"r\":$r}" >> "$results"
}

path="/obj/s$SIZE?size=$SIZE"
for v in A B; do
  curl -s -o /dev/null "http://${H1[$v]}/$path"
  curl -sk -o /dev/null "https://localhost:${HS[$v]##*:}$path" --connect-to "localhost:${HS[$v]##*:}:${HS[$v]}"
done

results=$work/results.jsonl
: > "$results"
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  # Alternate which variant goes first, so neither always runs on a warmer machine.
  order="A B"; [ $((round % 2)) -eq 0 ] && order="B A"
  for v in $order; do
    hit=hit; [ -n "$DISK" ] && hit=diskhit
    run "$v" "$hit-h1-$SIZE" h1 "${H1[$v]}" "$path" -c "$CONNS"
    run "$v" "$hit-h2-$SIZE" h2 "${HS[$v]}" "$path" -c 8 -m 8
    run "$v" "$hit-h3-$SIZE" h3 "${HS[$v]}" "$path" -c 8 -m 8
    [ -n "$DISK" ] && continue
    run "$v" "miss-h1-$SIZE" h1 "${H1[$v]}" "/" -c "$CONNS" --zipf 1 --template "/obj/$v$round{}?size=$SIZE" --miss-ratio 1
    run "$v" "latency-miss" h1 "${H1[$v]}" "/" -c 1 --zipf 1 --template "/obj/l$v$round{}?size=$SIZE" --miss-ratio 1
  done
done

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNS" "${ACCESS[A]}" "${ACCESS[B]}" > "$work/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds, duration, conns = sys.argv[2], sys.argv[3], sys.argv[4]
by = {}
for r in rows:
    res = r["r"]
    if not res.get("requests"):
        continue
    by.setdefault((r["test"], r["system"]), []).append((res["rps"], res["latency_us"]["p50"], 1e6 * r["cpu_s"] / res["requests"]))
print(f"A = baseline, B = this tree (access log: A {sys.argv[5]}, B {sys.argv[6]}). Medians of {rounds} alternating rounds, {duration} s each; "
      f"edges pinned to CPU 0, generator and origin to CPU 1.\n")
print("| test | A req/s | B req/s | B/A req/s | A CPU µs/req | B CPU µs/req | B/A CPU | A p50 µs | B p50 µs |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for test in dict.fromkeys(t for t, _ in by):
    a, b = by.get((test, "A")), by.get((test, "B"))
    if not a or not b:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"| {test} | {med(a,0):,.0f} | {med(b,0):,.0f} | {med(b,0)/med(a,0):.3f} | "
          f"{med(a,2):.1f} | {med(b,2):.1f} | {med(b,2)/med(a,2):.3f} | {med(a,1):.0f} | {med(b,1):.0f} |")
PY
cat "$work/table.md"
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

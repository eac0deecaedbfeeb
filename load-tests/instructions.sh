#!/usr/bin/env bash
# Instructions per request, counted by callgrind: repeatable to well under 1 % for the same
# binary and workload whatever else the machine does, where CPU time per request moves by
# ±15 % between runs here. The figure for small changes on the hit path; ab.sh and compare.sh
# still give the time.
#
# Usage: load-tests/instructions.sh [--baseline PATH/TO/edge] [--protos "h1 h2 h3"]
#        [--requests N] [--size BYTES] [--disk] [--miss]
# Counts user-space instructions of the edge (one worker) over N hits of one object after a
# warm-up (with --miss: N misses, every URL new, the origin on loopback), offered at a low open-loop rate that valgrind keeps up with (so batching is the
# same for both builds), and the calls into the allocator per hit. With --baseline, A = that
# binary, B = this tree.
# Needs valgrind (apt-get install -y valgrind). PREBUILT=DIR uses DIR/edge and DIR/edge-load.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="" PROTOS="h1 h2 h3" N=1500 SIZE=1024 DISK="" RATE=150 MISS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASE=$2; shift 2 ;;
    --protos) PROTOS=$2; shift 2 ;;
    --requests) N=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --disk) DISK=1; shift ;;
    --miss) MISS=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_control python3; do
  command -v $tool >/dev/null || { echo "instructions.sh: $tool is missing (apt-get install -y valgrind python3)" >&2; exit 2; }
done

. load-tests/lib.sh instructions

"$LOAD" cert --dir "$work"
"$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")
CACHE='memory_bytes = "256MiB"'
[ -n "$DISK" ] && CACHE=$(disk_cache disk)

declare -A BIN=([B]=$EDGE)
[ -n "$BASE" ] && BIN[A]=$BASE
path="/obj/i$SIZE?size=$SIZE"
# --miss: every request a new URL (the template's {} is a request counter), so each one fills.
urls() { # variant phase
  if [ -n "$MISS" ]; then echo "--path / --zipf 1 --miss-ratio 1 --template /obj/m$1$2{}?size=$SIZE"; else echo "--path $path"; fi
}
: > "$work/results.txt"

count() { # variant proto -> appends "variant proto requests instructions"
  local v=$1 proto=$2 dir=$work/$1-$2
  mkdir -p "$dir"
  cp "$work/cert.pem" "$work/key.pem" "$dir/"
  edge_config "$dir/edge.toml" "instr-$v" "$ORIGIN" "$CACHE"
  RUST_LOG=warn EDGE_ACCESS_LOG=off valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$dir/cg.out" "${BIN[$v]}" run --config "$dir/edge.toml" --workers 1 \
    > "$dir/edge.out" 2> "$dir/edge.err" & local pid=$!; pids+=($pid)
  local h1 hs addr scheme=https
  h1=$(wait_addr "$dir/edge.out" "^listening http ")
  hs=$(wait_addr "$dir/edge.out" "^listening https ")
  addr=$hs; [ "$proto" = h1 ] && { addr=$h1; scheme=http; }
  local streams=(-c 4); [ "$proto" != h1 ] && streams=(-c 2 -m 2)
  # Warm-up: the fill, connection setup, lazy statics; not counted.
  # shellcheck disable=SC2046
  "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" $(urls "$v$proto" w) \
    --ca "$work/cert.pem" -d 3 --warmup 0 --rate 100 "${streams[@]}" --quiet > /dev/null 2>&1 || true
  callgrind_control -i on "$pid" > /dev/null 2>&1
  # shellcheck disable=SC2046
  "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" $(urls "$v$proto" c) \
    --ca "$work/cert.pem" -d "$(python3 -c "print($N / $RATE)")" --warmup 0 --rate "$RATE" "${streams[@]}" \
    --json > "$dir/r.json" 2>> "$work/load.err"
  callgrind_control -d "$pid" > /dev/null 2>&1
  sleep 1
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  local req ir
  req=$(python3 -c "import json; print(json.load(open('$dir/r.json'))['requests'])")
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg.out.1")
  echo "$v $proto $req $ir $(allocs "$dir/cg.out.1")" >> "$work/results.txt"
}

# Calls into the allocator while counting: Rust's allocation entry points (whichever global
# allocator is behind them) and C's malloc family when called from elsewhere than Rust's
# system allocator shim (aws-lc, libc). Callgrind records every call edge; its file names a
# function once as "(id) name", then by "(id)" alone.
allocs() {
  python3 - "$1" <<'PY'
import re, sys
names, total, caller, target = {}, 0, None, None
rust = {"__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc"}
libc = {"malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "memalign"}
def base(name):
    return (name or "").split("::")[-1].split(" ")[0]
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).strip()
        if m.group(1) == "fn":
            caller = base(names.get(m.group(2)))
        else:
            target = base(names.get(m.group(2)))
        continue
    if line.startswith("calls="):
        if target in rust or (target in libc and not caller.startswith("__rdl_")):
            total += int(line[6:].split()[0])
print(total)
PY
}

for proto in $PROTOS; do
  for v in "${!BIN[@]}"; do
    echo "== $v $proto" >&2
    count "$v" "$proto"
  done
done

python3 - "$work/results.txt" "$SIZE" "${DISK:+disk}" "${MISS:+miss}" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
per = {(v, p): int(ir) / int(req) for v, p, req, ir, _ in rows if int(req) > 0}
al = {(v, p): int(n) / int(req) for v, p, req, _, n in rows if int(req) > 0}
kind = "miss (fill from the origin)" if sys.argv[4] else ("disk hit" if sys.argv[3] else "memory hit")
print(f"Instructions per {kind}, {sys.argv[2]}-byte object (callgrind, user space, one worker).\n")
protos = list(dict.fromkeys(p for _, p, _, _, _ in rows))
if any(v == "A" for v, _ in per):
    print("| protocol | A (baseline) | B (this tree) | B/A | allocations A | allocations B |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for p in protos:
        a, b = per.get(("A", p)), per.get(("B", p))
        if a and b:
            print(f"| {p} | {a:,.0f} | {b:,.0f} | {b / a:.3f} | {al[('A', p)]:.1f} | {al[('B', p)]:.1f} |")
else:
    print("| protocol | instructions per request | allocations per request |")
    print("| --- | ---: | ---: |")
    for p in protos:
        if ("B", p) in per:
            print(f"| {p} | {per[('B', p)]:,.0f} | {al[('B', p)]:.1f} |")
PY

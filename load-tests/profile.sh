#!/usr/bin/env bash
# CPU profile of the edge serving one workload: `perf record -g` on the edge process (pinned to
# CPU 0, one worker) while the generator (CPU 1) offers a fixed rate, then the hottest symbols,
# self and children. Use it before and after a change; the A/B figures come from ab.sh.
#
# Usage: load-tests/profile.sh [--proto h1|h2|h3] [--size BYTES] [--disk] [--rate N]
#        [--duration SECS] [--out FILE.data] [--handshake full|resumed]
# --handshake: new TLS connections (h1) or QUIC handshakes (h3) instead of requests on kept
# connections (edge-load handshake, closed loop; --rate is ignored).
# PREBUILT=DIR profiles DIR/edge. Needs perf (apt-get install -y linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."

PROTO=h1 SIZE=1024 DISK="" RATE=12000 DURATION=8 OUT="" HANDSHAKE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --proto) PROTO=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --disk) DISK=1; shift ;;
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --handshake) HANDSHAKE=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "profile.sh: perf is missing (apt-get install -y linux-perf)" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh profile

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")
CACHE='memory_bytes = "1GiB"'
[ -n "$DISK" ] && CACHE=$(disk_cache disk)
edge_config "$work/edge.toml" profile "$ORIGIN" "$CACHE"
RUST_LOG=warn EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 \
  > "$work/edge.out" 2> "$work/edge.err" & EPID=$!; pids+=($!)
H1=$(wait_addr "$work/edge.out" "^listening http ")
HS=$(wait_addr "$work/edge.out" "^listening https ")
addr=$HS scheme=https conns=(-c 8 -m 8)
[ "$PROTO" = h1 ] && { addr=$H1 scheme=http conns=(-c 64); }
path="/obj/p$SIZE?size=$SIZE"
curl -s -o /dev/null "http://$H1$path"

data=${OUT:-$work/perf.data}
perf record -q -F 499 --call-graph dwarf,16384 -p "$EPID" -o "$data" -- sleep "$DURATION" 2>/dev/null & PERF=$!
if [ -n "$HANDSHAKE" ]; then
  resume=(); [ "$HANDSHAKE" = resumed ] && resume=(--resume)
  taskset -c 1 "$LOAD" handshake --url "https://localhost:${HS##*:}" --connect "$HS" --proto "$PROTO" \
    --path "$path" --ca "$work/cert.pem" -d "$DURATION" -c 16 "${resume[@]}" >&2
else
  taskset -c 1 "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$PROTO" \
    --path "$path" --ca "$work/cert.pem" -d "$DURATION" --warmup 0 --rate "$RATE" "${conns[@]}" >&2
fi
wait "$PERF" || true
echo "== self" ; perf report -i "$data" --no-children --stdio --percent-limit 0.7 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
echo "== children"; perf report -i "$data" --children --stdio --percent-limit 3 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60

#!/usr/bin/env bash
# New connections per second on one core, side by side: the edge against nginx (TLS: full
# handshake and resumption) and Caddy (QUIC). Same ECDSA P-256 certificate (edge-load cert);
# rustls clients negotiate TLS 1.3 with X25519. Each TLS connection does one small GET (a cache
# hit) and closes; each QUIC connection completes its handshake and closes.
# Servers pinned to CPU 0, the generator (`edge-load handshake`) to CPU 1. The headline figure
# is the server's CPU time per handshake (/proc, over the run), steadier than the rate, which
# a one-core client may cap.
#
# Usage: load-tests/handshake-bench.sh [--rounds N] [--duration SECS] [--connections N] [--out FILE]
# PREBUILT=DIR uses DIR/edge and DIR/edge-load.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 DURATION=4 CONNS=16 OUT=""
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
  command -v $tool >/dev/null || { echo "handshake-bench.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
have() { command -v "$1" >/dev/null; }
have nginx || echo "handshake-bench.sh: nginx not installed, skipping it (apt-get install -y nginx-light)" >&2
have caddy || echo "handshake-bench.sh: caddy not installed, skipping it (apt-get install -y caddy)" >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh handshake

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")
path="/obj/hs?size=64"

edge_config "$work/edge.toml" hs-edge "$ORIGIN" 'memory_bytes = "64MiB"'
RUST_LOG=warn EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 \
  > "$work/edge.out" 2> "$work/edge.err" & pids+=($!)
declare -A ADDR PID QADDR QPID
PID[edge]=$! QPID[edge]=$!
ADDR[edge]=$(wait_addr "$work/edge.out" "^listening https ")
QADDR[edge]=${ADDR[edge]}
curl -sk -o /dev/null "https://localhost:${ADDR[edge]##*:}$path" --connect-to "localhost:${ADDR[edge]##*:}:${ADDR[edge]}"

if have nginx; then
  # A shared session cache, as a TLS-terminating nginx is usually run (tickets are on by default).
  start_nginx "$ORIGIN" "ssl_session_cache shared:SSL:10m;"
  PID[nginx]=${pids[-1]}
  ADDR[nginx]=127.0.0.1:$NGX_HTTPS
  curl -sk -o /dev/null "https://127.0.0.1:$NGX_HTTPS$path"
fi
if have caddy; then
  mkdir -p "$work/files/obj" && head -c 64 /dev/zero > "$work/files/obj/hs"
  start_caddy "$work/files" /obj/hs
  QPID[caddy]=$CADDY_PID QADDR[caddy]=127.0.0.1:$CADDY_PORT
fi

results=$work/results.jsonl
: > "$results"
measure() { # test system pid addr proto [--resume]
  local test=$1 sys=$2 pid=$3 addr=$4 proto=$5; shift 5
  local before after r
  before=$(tree_cpu "$pid")
  r=$(taskset -c 1 "$LOAD" handshake --url "https://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --ca "$work/cert.pem" --path "$path" -c "$CONNS" -d "$DURATION" "$@" 2>>"$work/load.err" || echo '{}')
  after=$(tree_cpu "$pid")
  echo "{\"round\":$round,\"test\":\"$test\",\"system\":\"$sys\",\"cpu_s\":$(python3 -c "print($after - $before)"),\"r\":$r}" >> "$results"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  for sys in "${!ADDR[@]}"; do
    measure tls-full "$sys" "${PID[$sys]}" "${ADDR[$sys]}" h1
    measure tls-resumed "$sys" "${PID[$sys]}" "${ADDR[$sys]}" h1 --resume
  done
  for sys in "${!QADDR[@]}"; do
    measure quic-full "$sys" "${QPID[$sys]}" "${QADDR[$sys]}" h3
  done
done

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNS" > "$work/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    res = r["r"]
    if not res.get("handshakes"):
        continue
    by.setdefault((r["test"], r["system"]), []).append(
        (res["per_second"], 1e6 * r["cpu_s"] / res["handshakes"], res["p50_us"], res["p99_us"],
         res["resumed"] / res["handshakes"], res["failed"]))
print(f"Medians of {sys.argv[2]} rounds, {sys.argv[3]} s each, {sys.argv[4]} connections in flight; "
      "servers on CPU 0, generator on CPU 1.\n")
print("| test | server | handshakes/s | server CPU µs/handshake | p50 µs | p99 µs | resumed | failed |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (test, sysname) in sorted(by):
    xs = by[(test, sysname)]
    med = lambda i: statistics.median(x[i] for x in xs)
    print(f"| {test} | {sysname} | {med(0):,.0f} | {med(1):.0f} | {med(2):.0f} | {med(3):.0f} | "
          f"{100 * med(4):.0f} % | {sum(x[5] for x in xs)} |")
PY
cat "$work/table.md"
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

#!/usr/bin/env bash
# Memory per idle connection, each protocol on a fresh edge process (so one run's freed memory
# does not hide the next one's cost): RSS before and while N connections sit idle after one
# request each (plain HTTP/1.1 keep-alive, TLS HTTP/2, QUIC HTTP/3), and the same for nginx
# (HTTP/1.1, HTTP/2) when installed. Edge and nginx pinned to CPU 0, the holder to CPU 1.
#
#   load-tests/idle-rss.sh [--connections N] [--rounds N]     # defaults: 5000 connections, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

N=5000 ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in taskset python3 curl; do
  command -v $tool >/dev/null || { echo "idle-rss.sh: $tool is missing (apt-get install -y util-linux python3 curl)" >&2; exit 2; }
done
command -v nginx >/dev/null || echo "idle-rss.sh: nginx not installed, skipping it (apt-get install -y nginx-light)" >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh idle-rss

"$LOAD" cert --dir "$work"
taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")
cat > "$work/edge.toml" <<EOT
[listen]
https = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[tls]
cert = "cert.pem"
key = "key.pem"
[limits]
max_connections_per_client = 0
quic_max_handshakes_per_client = 0
quic_retry_above = 1000000
[pools.origin]
endpoints = ["$ORIGIN"]
[[sites]]
name = "bench"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
routes = [{ path_prefix = "/", pool = "origin" }]
EOT


# hold SYSTEM PROTO ADDR PID: one line "SYSTEM PROTO before after held" to results.
hold() {
  local sys=$1 proto=$2 addr=$3 p=$4 scheme=https before after held
  [ "$proto" = h1 ] && scheme=http
  # One request first, so that lazily made state (TLS config, caches, pools) is not counted.
  taskset -c 1 "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "/obj/s1024?size=1024" --ca "$work/cert.pem" -d 0.5 --warmup 0 -c 4 --quiet >/dev/null 2>>"$work/load.err" || true
  sleep 0.5
  before=$(tree_rss "$p")
  rm -f "$work/hold.out"
  taskset -c 1 "$LOAD" hold --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "/obj/s1024?size=1024" --ca "$work/cert.pem" -c "$N" --hold 3 > "$work/hold.out" 2>>"$work/load.err" &
  local holder=$!
  for _ in $(seq 600); do grep -q '^holding' "$work/hold.out" 2>/dev/null && break; sleep 0.25; done
  sleep 1
  held=$(awk '/^holding/ {print $2}' "$work/hold.out")
  after=$(tree_rss "$p")
  wait $holder 2>/dev/null || true
  echo "$sys $proto $before $after ${held:-0}" >> "$work/results.txt"
}

: > "$work/results.txt"
for round in $(seq "$ROUNDS"); do
  for proto in h1 h2 h3; do
    RUST_LOG=warn EDGE_ACCESS_LOG=off taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 \
      > "$work/edge.out" 2> "$work/edge.err" & e=$!; pids+=($e)
    http=$(wait_addr "$work/edge.out" "^listening http ")
    https=$(wait_addr "$work/edge.out" "^listening https ")
    addr=$https; [ "$proto" = h1 ] && addr=$http
    hold edge "$proto" "$addr" "$e"
    kill "$e"; wait "$e" 2>/dev/null || true
  done
  if command -v nginx >/dev/null; then
    for proto in h1 h2; do
      start_nginx "$ORIGIN"
      np=$(cat "$work/nginx/nginx.pid")
      addr=127.0.0.1:$NGX_HTTPS; [ "$proto" = h1 ] && addr=127.0.0.1:$NGX_HTTP
      hold nginx "$proto" "$addr" "$np"
      kill "$np"; sleep 0.5
    done
  fi
done

python3 - "$work/results.txt" "$N" <<'PY'
import statistics, sys
from collections import defaultdict
per = defaultdict(list)
for line in open(sys.argv[1]):
    sys_, proto, before, after, held = line.split()
    if int(held) > 0:
        per[(sys_, proto)].append((int(after) - int(before)) / int(held))
print(f"KiB of RSS per idle connection ({sys.argv[2]} connections, fresh process each, median of rounds)\n")
print("| system | plain HTTP/1.1 | TLS HTTP/2 | QUIC HTTP/3 |")
print("| --- | ---: | ---: | ---: |")
for s in ["edge", "nginx"]:
    cells = []
    for p in ["h1", "h2", "h3"]:
        v = per.get((s, p))
        cells.append(f"{statistics.median(v):.2f}" if v else "–")
    if any(c != "–" for c in cells):
        print(f"| {s} | " + " | ".join(cells) + " |")
PY

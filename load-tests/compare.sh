#!/usr/bin/env bash
# Side-by-side benchmark on this machine: the edge against nginx proxy_cache, Varnish and HAProxy's
# cache (HTTP/1.1), nginx and HAProxy (HTTP/2 over TLS) and Caddy's file_server (HTTP/3), on
# memory hits of 1 KiB, 16 KiB and 1 MiB objects, plus the latency a miss adds over asking the
# origin directly, RSS after the runs, and RSS growth per idle keep-alive connection.
#
# Two passes per round. Closed loop (as fast as each server goes): req/s and p50. Open loop at a
# fixed rate below every server's peak (--rate, --rate-h3; a sixteenth of it for 1 MiB): the CPU
# time of the server's processes per request, from /proc, and p50/p99. CPU per request is the
# headline: it is steadier than req/s on a noisy machine and says how many hits a core serves.
#
# Every server under test is pinned to CPU 0 with one worker; the load generator and the origin
# run on CPU 1. Systems alternate within each round; the table shows medians over the rounds,
# the min–max spread, and the edge/anchor ratio. Loopback only; every run is bounded in time.
#
# Usage: load-tests/compare.sh [--rounds N] [--duration SECS] [--connections N] [--sizes "1024 16384"]
#        [--idle N] [--rate REQ_PER_S] [--rate-h3 REQ_PER_S] [--out FILE]
# Missing servers are skipped with the apt command that installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=5 DURATION=5 CONNS=64 SIZES="1024 16384 1048576" IDLE=10000 OUT="" RATE=15000 RATE_H3=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --rate-h3) RATE_H3=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in taskset python3 curl ss; do
  command -v $tool >/dev/null || { echo "compare.sh: $tool is missing (apt-get install -y util-linux python3 curl iproute2)" >&2; exit 2; }
done
have() { command -v "$1" >/dev/null; }
have nginx || echo "compare.sh: nginx not installed, skipping it (apt-get install -y nginx-light)" >&2
have varnishd || echo "compare.sh: varnish not installed, skipping it (apt-get install -y varnish)" >&2
have caddy || echo "compare.sh: caddy not installed, skipping it (apt-get install -y caddy)" >&2
have haproxy || echo "compare.sh: haproxy not installed, skipping it (apt-get install -y haproxy)" >&2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

. load-tests/lib.sh compare

"$LOAD" cert --dir "$work"

taskset -c 1 "$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

# Files for Caddy's file_server, same sizes and names as the origin's objects.
mkdir -p "$work/files/obj"
for s in $SIZES; do head -c "$s" /dev/zero > "$work/files/obj/s$s"; done

edge_config "$work/edge.toml" bench-edge "$ORIGIN" $'memory_bytes = "1GiB"\nmax_object_memory_bytes = "8MiB"'
RUST_LOG=warn EDGE_ACCESS_LOG=${EDGE_ACCESS_LOG:-off} taskset -c 0 "$EDGE" run --config "$work/edge.toml" --workers 1 > "$work/edge.out" 2> "$work/edge.err" & EDGE_PID=$!; pids+=($EDGE_PID)
EDGE_HTTP=$(wait_addr "$work/edge.out" "^listening http ")
EDGE_HTTPS=$(wait_addr "$work/edge.out" "^listening https ")

declare -A H1 H2 H3 PID DISK DISKPID
H1[edge]=$EDGE_HTTP; H2[edge]=$EDGE_HTTPS; H3[edge]=$EDGE_HTTPS; PID[edge]=$EDGE_PID

# A second edge whose objects all live on the disk tier (per-object memory limit below every
# object), for disk-hit runs.
edge_config "$work/edge-disk.toml" bench-edge-disk "$ORIGIN" "$(disk_cache disk-cache)"
RUST_LOG=warn EDGE_ACCESS_LOG=${EDGE_ACCESS_LOG:-off} taskset -c 0 "$EDGE" run --config "$work/edge-disk.toml" --workers 1 > "$work/edge-disk.out" 2> "$work/edge-disk.err" & pids+=($!)
DISKPID[edge]=$!
DISK[edge]=$(wait_addr "$work/edge-disk.out" "^listening http ")

if have nginx; then
  start_nginx "$ORIGIN"
  # nginx runs in the foreground (daemon off), so the last PID started is its master; its
  # pid file may not be written yet.
  PID[nginx]=${pids[-1]}
  # The worker process serves; measure its RSS (plus the master's).
  H1[nginx]=127.0.0.1:$NGX_HTTP; H2[nginx]=127.0.0.1:$NGX_HTTPS
  DISK[nginx]=127.0.0.1:$NGX_HTTP  # proxy_cache is disk-backed (through the page cache)
  DISKPID[nginx]=${PID[nginx]}
fi

if have varnishd; then
  VPORT=$(free_port)
  taskset -c 0 varnishd -F -j none -n "$work/varnish" -a "127.0.0.1:$VPORT" -b "$ORIGIN" \
    -s malloc,1G -p thread_pools=1 -p thread_pool_min=64 -p thread_pool_max=2000 \
    > "$work/varnish.log" 2>&1 & pids+=($!); PID[varnish]=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$VPORT/obj/x?size=1" && break; sleep 0.2; done
  H1[varnish]=127.0.0.1:$VPORT
  VDPORT=$(free_port)
  taskset -c 0 varnishd -F -j none -n "$work/varnish-disk" -a "127.0.0.1:$VDPORT" -b "$ORIGIN" \
    -s "file,$work/varnish-storage.bin,2G" -p thread_pools=1 -p thread_pool_min=64 -p thread_pool_max=2000 \
    > "$work/varnish-disk.log" 2>&1 & pids+=($!); DISKPID[varnish]=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$VDPORT/obj/x?size=1" && break; sleep 0.2; done
  DISK[varnish]=127.0.0.1:$VDPORT
fi

if have caddy; then
  start_caddy "$work/files" /obj/s1024
  PID[caddy]=$CADDY_PID H3[caddy]=127.0.0.1:$CADDY_PORT
fi

if have haproxy; then
  # HAProxy 2.6's small-object cache: one thread, plain HTTP/1.1 and TLS with ALPN h2.
  HPORT=$(free_port) HSPORT=$(free_port)
  cat "$work/cert.pem" "$work/key.pem" > "$work/haproxy.pem"
  cat > "$work/haproxy.cfg" <<EOF
global
  nbthread 1
  # Two descriptors per proxied connection; the idle pass opens --idle client connections.
  maxconn $(( ($(ulimit -n) - 100) / 2 ))
  tune.bufsize 32768
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
cache objects
  total-max-size 1024
  max-object-size 2097152
  max-age 3600
frontend fe
  bind 127.0.0.1:$HPORT
  bind 127.0.0.1:$HSPORT ssl crt $work/haproxy.pem alpn h2,http/1.1
  http-request cache-use objects
  http-response cache-store objects
  default_backend origin
backend origin
  http-reuse always
  server o $ORIGIN
EOF
  taskset -c 0 haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 & pids+=($!); PID[haproxy]=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$HPORT/obj/x?size=1" && break; sleep 0.2; done
  if curl -s -o /dev/null "http://127.0.0.1:$HPORT/obj/x?size=1"; then
    H1[haproxy]=127.0.0.1:$HPORT; H2[haproxy]=127.0.0.1:$HSPORT
  else
    echo "compare.sh: haproxy did not start, leaving it out:" >&2; cat "$work/haproxy.log" >&2
  fi
fi

load() { # proto addr path [extra args] -> JSON line
  local proto=$1 addr=$2 path=$3; shift 3
  local scheme=https; [ "$proto" = h1 ] && scheme=http
  taskset -c 1 "$LOAD" run --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "$path" --ca "$work/cert.pem" -d "$DURATION" --warmup "${WARMUP:-1}" --json "$@" 2>>"$work/load.err" || echo '{}'
}

# Warm every cache: each object once per system.
for s in $SIZES; do
  for sys in "${!H1[@]}"; do curl -s -o /dev/null "http://${H1[$sys]}/obj/s$s?size=$s"; done
  for sys in "${!DISK[@]}"; do curl -s -o /dev/null "http://${DISK[$sys]}/obj/s$s?size=$s"; done
  for sys in "${!H2[@]}"; do curl -sk -o /dev/null "https://localhost:${H2[$sys]##*:}/obj/s$s?size=$s" --connect-to "localhost:${H2[$sys]##*:}:${H2[$sys]}"; done
done
sleep 0.5

results=$work/results.jsonl
: > "$results"
# One load run with the CPU seconds the server's processes (PID and children) spent during it,
# as one JSON line: KEY holds the seconds.
with_cpu() { # key test system pid load-args... -> one JSON line
  local key=$1 test=$2 sys=$3 p=$4 before after r; shift 4
  before=$(tree_cpu "$p")
  r=$(load "$@")
  after=$(tree_cpu "$p")
  echo "{\"round\":$round,\"test\":\"$test\",\"system\":\"$sys\",\"$key\":$(python3 -c "print($after - $before)"),\"r\":$r}" >> "$results"
}
fixed() { # test system pid proto addr path rate -> one JSON line with the server's CPU seconds
  local test=$1 sys=$2 p=$3 proto=$4 addr=$5 path=$6 rate=$7
  [ -n "$p" ] || return 0
  WARMUP=0 with_cpu cpu_s "$test" "$sys" "$p" "$proto" "$addr" "$path" -c "$CONNS" --rate "$rate"
}
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  for s in $SIZES; do
    path="/obj/s$s?size=$s"
    for sys in "${!H1[@]}"; do
      echo "{\"round\":$round,\"test\":\"hit-h1-$s\",\"system\":\"$sys\",\"r\":$(load h1 "${H1[$sys]}" "$path" -c "$CONNS")}" >> "$results"
    done
    for sys in "${!H2[@]}"; do
      echo "{\"round\":$round,\"test\":\"hit-h2-$s\",\"system\":\"$sys\",\"r\":$(load h2 "${H2[$sys]}" "$path" -c "$CONNS")}" >> "$results"
    done
    for sys in "${!H3[@]}"; do
      echo "{\"round\":$round,\"test\":\"hit-h3-$s\",\"system\":\"$sys\",\"r\":$(load h3 "${H3[$sys]}" "$path" -c "$CONNS")}" >> "$results"
    done
    for sys in "${!DISK[@]}"; do
      echo "{\"round\":$round,\"test\":\"diskhit-h1-$s\",\"system\":\"$sys\",\"r\":$(load h1 "${DISK[$sys]}" "$path" -c "$CONNS")}" >> "$results"
    done
  done
  # Open loop at a fixed rate: CPU per request and p50/p99 (test names "cpu-...").
  for s in $SIZES; do
    path="/obj/s$s?size=$s"
    r=$RATE r3=$RATE_H3; [ "$s" -gt 65536 ] && r=$((RATE / 16)) r3=$((RATE_H3 / 16))
    for sys in "${!H1[@]}"; do fixed "cpu-hit-h1-$s" "$sys" "${PID[$sys]:-}" h1 "${H1[$sys]}" "$path" "$r"; done
    for sys in "${!H2[@]}"; do fixed "cpu-hit-h2-$s" "$sys" "${PID[$sys]:-}" h2 "${H2[$sys]}" "$path" "$r"; done
    for sys in "${!H3[@]}"; do fixed "cpu-hit-h3-$s" "$sys" "${PID[$sys]:-}" h3 "${H3[$sys]}" "$path" "$r3"; done
    for sys in "${!DISK[@]}"; do fixed "cpu-diskhit-h1-$s" "$sys" "${DISKPID[$sys]:-}" h1 "${DISK[$sys]}" "$path" "$r"; done
  done
  # Misses at full load (every URL new), and a Zipf mix (10k objects, s=1, 5 % forced misses).
  for sys in "${!H1[@]}"; do
    echo "{\"round\":$round,\"test\":\"miss-h1-1024\",\"system\":\"$sys\",\"r\":$(load h1 "${H1[$sys]}" "/" -c "$CONNS" --zipf 1 --template "/obj/t{}?size=1024" --miss-ratio 1)}" >> "$results"
    echo "{\"round\":$round,\"test\":\"zipf-h1-1024\",\"system\":\"$sys\",\"r\":$(load h1 "${H1[$sys]}" "/" -c "$CONNS" --zipf 10000 --template "/obj/z{}?size=1024" --miss-ratio 0.05)}" >> "$results"
  done
  # A miss: one connection, every URL new, against the direct origin as the baseline. The
  # server's CPU time per miss is recorded too: steadier than the latency on this machine.
  echo "{\"round\":$round,\"test\":\"latency-miss\",\"system\":\"origin\",\"r\":$(load h1 "$ORIGIN" "/obj/{}?size=1024" -c 1 --zipf 1 --template "/obj/m{}?size=1024" --miss-ratio 1)}" >> "$results"
  for sys in edge nginx haproxy varnish; do
    [ -n "${H1[$sys]:-}" ] || continue
    with_cpu miss_cpu_s latency-miss "$sys" "${PID[$sys]}" h1 "${H1[$sys]}" "/" -c 1 --zipf 1 \
      --template "/obj/m{}?size=1024" --miss-ratio 1
  done
done

# RSS after the runs, and growth per idle keep-alive connection (plain HTTP/1.1).
rss_file=$work/rss.txt
: > "$rss_file"
for sys in "${!PID[@]}"; do
  p=${PID[$sys]}; [ -n "$p" ] && [ -e "/proc/$p" ] || continue
  echo "rss $sys $(tree_rss "$p")" >> "$rss_file"
done
# RSS growth per idle connection: N connections, one request each, then held open.
idle_rss() { # system proto addr
  local sys=$1 proto=$2 addr=$3 p=${PID[$1]:-}
  [ -n "$p" ] || return 0
  local procs="$p $( (pgrep -P "$p" || true) | tr "\n" " ")" before=0 after=0 q held
  for q in $procs; do before=$((before + $(rss_kib "$q"))); done
  local scheme=https; [ "$proto" = h1 ] && scheme=http
  rm -f "$work/hold.out"
  taskset -c 1 "$LOAD" hold --url "$scheme://localhost:${addr##*:}" --connect "$addr" --proto "$proto" \
    --path "/obj/s1024?size=1024" --ca "$work/cert.pem" -c "$IDLE" --hold 3 > "$work/hold.out" 2>>"$work/load.err" &
  local holder=$!
  for _ in $(seq 600); do grep -q '^holding' "$work/hold.out" 2>/dev/null && break; sleep 0.25; done
  sleep 0.5
  held=$(awk '/^holding/ {print $2}' "$work/hold.out")
  for q in $procs; do after=$((after + $(rss_kib "$q"))); done
  [ "${held:-0}" -gt 0 ] && echo "idle $sys-$proto $before $after $held" >> "$rss_file"
  wait $holder 2>/dev/null || true
}
for sys in "${!H1[@]}"; do idle_rss "$sys" h1 "${H1[$sys]}"; done
for sys in "${!H2[@]}"; do idle_rss "$sys" h2 "${H2[$sys]}"; done
for sys in "${!H3[@]}"; do idle_rss "$sys" h3 "${H3[$sys]}"; done

python3 - "$results" "$rss_file" "$ROUNDS" "$DURATION" "$CONNS" > "$work/table.md" <<'PY'
import json, statistics, sys
from collections import defaultdict
results, rss_file, rounds, duration, conns = sys.argv[1:6]
runs = defaultdict(list)
lat = defaultdict(list)
cpu = defaultdict(list)
miss_cpu = defaultdict(list)
SYSTEMS = ["edge", "nginx", "haproxy", "varnish", "caddy"]
for line in open(results):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    r = d.get("r") or {}
    if "cpu_s" in d and r.get("requests", 0) > 0:
        l = r["latency_us"]
        cpu[(d["test"][4:], d["system"])].append((1e6 * d["cpu_s"] / r["requests"], r["rps"], l["p50"], l["p99"]))
        continue
    if "miss_cpu_s" in d and r.get("requests", 0) > 0:
        miss_cpu[d["system"]].append(1e6 * d["miss_cpu_s"] / r["requests"])
    if "rps" in r and r.get("requests", 0) > 0:
        runs[(d["test"], d["system"])].append(r["rps"])
        lat[(d["test"], d["system"])].append(r["latency_us"]["p50"])
med = lambda xs, i: statistics.median(x[i] for x in xs)
if cpu:
    print(f"CPU time of the server's processes per request, open loop at a fixed rate ({conns} connections, "
          f"{duration} s, medians of {rounds} rounds); edge / this < 1: the edge needs less CPU per request.\n")
    print("| test | system | CPU µs/req | rate req/s | p50 µs | p99 µs | edge / this CPU |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    order = {"hit": 0, "diskhit": 1}
    for t in sorted({t for t, _ in cpu}, key=lambda t: (order[t.split("-")[0]], t.split("-")[1], int(t.split("-")[2]))):
        e = cpu.get((t, "edge"))
        for sysname in SYSTEMS:
            v = cpu.get((t, sysname))
            if not v:
                continue
            ratio = f"{med(e, 0) / med(v, 0):.2f}" if e and sysname != "edge" else ""
            print(f"| {t} | {sysname} | {med(v, 0):.1f} | {med(v, 1):,.0f} | {med(v, 2):.0f} | {med(v, 3):.0f} | {ratio} |")
    print()
print(f"Medians of {rounds} alternating rounds, {duration} s each, {conns} connections, closed loop; "
      "servers pinned to CPU 0 with one worker, the generator to CPU 1.\n")
print("| test | system | req/s median | min–max | p50 µs | edge / this |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
order = {"hit": 0, "diskhit": 1, "miss": 2, "zipf": 3}
tests = sorted({t for t, _ in runs if t.split("-")[0] in order},
               key=lambda t: (order[t.split("-")[0]], t.split("-")[1], int(t.split("-")[2])))
for t in tests:
    edge = statistics.median(runs[(t, "edge")]) if runs.get((t, "edge")) else None
    for sysname in SYSTEMS:
        v = runs.get((t, sysname))
        if not v:
            continue
        med = statistics.median(v)
        ratio = f"{edge / med:.2f}" if edge and sysname != "edge" else ""
        p50 = statistics.median(lat[(t, sysname)])
        print(f"| {t} | {sysname} | {med:,.0f} | {min(v):,.0f}–{max(v):,.0f} | {p50:.0f} | {ratio} |")
print()
base = lat.get(("latency-miss", "origin"))
if base:
    b = statistics.median(base)
    print(f"Miss latency (one connection, every URL new): origin direct p50 {b:.0f} µs.\n")
    print("| system | miss p50 µs | added over origin µs | server CPU µs per miss |")
    print("| --- | ---: | ---: | ---: |")
    for sysname in ["edge", "nginx", "haproxy", "varnish"]:
        v = lat.get(("latency-miss", sysname))
        if v:
            m = statistics.median(v)
            c = miss_cpu.get(sysname)
            cs = f"{statistics.median(c):.0f}" if c else ""
            print(f"| {sysname} | {m:.0f} | {m - b:.0f} | {cs} |")
    print()
rss, idle = {}, {}
for line in open(rss_file):
    p = line.split()
    if p[0] == "rss":
        rss[p[1]] = int(p[2])
    elif p[0] == "idle":
        idle[p[1]] = (int(p[2]), int(p[3]), int(p[4]))
print("| system | RSS after runs (MiB) | per idle HTTP/1.1 conn (KiB) | per idle TLS h2 conn (KiB) | per idle QUIC h3 conn (KiB) |")
print("| --- | ---: | ---: | ---: | ---: |")
def per(key):
    i = idle.get(key)
    return f"{(i[1] - i[0]) / i[2]:.2f} ({i[2]} conns)" if i else "–"
for sysname in SYSTEMS:
    if sysname not in rss:
        continue
    print(f"| {sysname} | {rss[sysname] / 1024:.1f} | {per(sysname + '-h1')} | {per(sysname + '-h2')} | {per(sysname + '-h3')} |")
PY
cat "$work/table.md"
if [ -s "$work/load.err" ]; then echo "compare.sh: load generator errors (last lines):" >&2; tail -5 "$work/load.err" >&2; fi
[ -n "$OUT" ] && cp "$work/table.md" "$OUT"
exit 0

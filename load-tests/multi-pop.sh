#!/usr/bin/env bash
# A multi-POP bed on one machine: etcd, an origin, one shield node and N edge nodes (each its
# own process, its own POP), all on loopback, taking their config from etcd. Without --bench
# it prints how to use the bed and runs until Ctrl-C; with --bench it measures:
#   - config rollout: from `edge config push` to the last node's "config reloaded" line;
#   - purge fan-out: P purges through one edge's admin API, each answered once every node
#     acknowledged it (server-side time until the last ack, and the client's round trip).
#
#   load-tests/multi-pop.sh                     # the bed: 1 shield + 3 edges, until Ctrl-C
#   load-tests/multi-pop.sh --edges 9 --bench   # 10 nodes; rollout x5, 200 purges
#
# Options: --edges N (3), --bench, --purges P (200), --rollouts R (5), --out FILE.
# Needs etcd and etcdctl (apt-get install etcd-server etcd-client), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

EDGES=3 BENCH=0 PURGES=200 ROLLOUTS=5 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --edges) EDGES=$2; shift 2 ;;
    --bench) BENCH=1; shift ;;
    --purges) PURGES=$2; shift 2 ;;
    --rollouts) ROLLOUTS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--edges N] [--bench] [--purges P] [--rollouts R] [--out FILE]" >&2; exit 2 ;;
  esac
done
for tool in etcd etcdctl curl python3; do
  command -v $tool >/dev/null || { echo "multi-pop.sh: $tool is missing (apt-get install -y etcd-server etcd-client curl python3)" >&2; exit 2; }
done

. load-tests/lib.sh multi-pop

# etcd on two free loopback ports (etcd 3.4 cannot report a port 0 it was given).
CLIENT=$(free_port) PEER=$(free_port)
etcd --name bed --data-dir "$work/etcd" --logger zap --log-level warn \
  --listen-client-urls "http://127.0.0.1:$CLIENT" --advertise-client-urls "http://127.0.0.1:$CLIENT" \
  --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
  --initial-cluster "bed=http://127.0.0.1:$PEER" > "$work/etcd.log" 2>&1 & pids+=($!)
STORE="etcd://127.0.0.1:$CLIENT/edge"
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$CLIENT" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

"$LOAD" origin --listen 127.0.0.1:0 > "$work/origin.out" & pids+=($!)
ORIGIN=$(wait_addr "$work/origin.out" "^listening")

SECRET=bed-secret
HASH=$(echo "$SECRET" | "$EDGE" token-hash)
node_file() { # NAME POP TIER
  cat <<NODE
[node]
name = "$1"
pop = "$2"
region = "eu"
tier = "$3"

[listen]
http = ["127.0.0.1:0"]
admin = ["127.0.0.1:0"]

[cache]
memory_bytes = "32MiB"
NODE
}
shared() { # [SHIELD_ADDR] [GENERATION]
  local shield_pool="" shield_site=""
  if [ -n "${1:-}" ]; then
    shield_pool=$'\n[pools.shields]\nendpoints = ["'"$1"$'"]\nalgorithm = "consistent-hash"\n'
    shield_site='shield = "shields"'
  fi
  cat <<DOC
# generation ${2:-0}
[pools.origin]
endpoints = ["$ORIGIN"]
$shield_pool
[[sites]]
name = "bed"
hosts = ["localhost", "127.0.0.1"]
plain_http = "proxy"
$shield_site
routes = [{ path_prefix = "/", pool = "origin" }]

[[admin.tokens]]
name = "ops"
sha256 = "$HASH"
DOC
}
node_file validate none edge > "$work/validate.toml"
push() { # FILE
  "$EDGE" config --store "$STORE" push "$1" --node-file "$work/validate.toml" -m bed > /dev/null
}
start_node() { # NAME POP TIER
  mkdir -p "$work/$1"
  node_file "$1" "$2" "$3" > "$work/$1/node.toml"
  RUST_LOG=info EDGE_ACCESS_LOG=off "$EDGE" run --config "$work/$1/node.toml" --store "$STORE" --workers 1 \
    > "$work/$1/out" 2> "$work/$1/log" & pids+=($!)
}

shared "" 0 > "$work/shared.toml"; push "$work/shared.toml"
start_node shield-1 par shield
SHIELD=$(wait_addr "$work/shield-1/out" "^listening http ")
shared "$SHIELD" 1 > "$work/shared.toml"; push "$work/shared.toml"
POPS=(fra ams lon mad mil waw sto vie prg dub)
NODES=(shield-1)
for i in $(seq 1 "$EDGES"); do
  pop=${POPS[$(( (i - 1) % ${#POPS[@]} ))]}
  start_node "edge-$i" "$pop" edge
  NODES+=("edge-$i")
done
for n in "${NODES[@]}"; do wait_addr "$work/$n/out" "^ready" > /dev/null || true; done
EDGE1_HTTP=$(wait_addr "$work/edge-1/out" "^listening http ")
EDGE1_ADMIN=$(wait_addr "$work/edge-1/out" "^listening admin ")
for _ in $(seq 100); do
  "$EDGE" config --store "$STORE" status > "$work/status.txt" 2>&1 && break
  sleep 0.1
done

if [ "$BENCH" = 0 ]; then
  cat "$work/status.txt"
  cat <<USAGE

The bed is up (${#NODES[@]} nodes; files in $work). Try:
  curl -si http://$EDGE1_HTTP/obj/1?size=1000 | grep -i cache-status
  $EDGE config --store $STORE status
  $EDGE config --store $STORE history
  $EDGE purge --store $STORE --url http://localhost/obj/1?size=1000
  curl -s -H 'authorization: Bearer $SECRET' -d '{"tags":["x"]}' http://$EDGE1_ADMIN/purge
Edit $work/shared.toml and push it:
  $EDGE config --store $STORE push $work/shared.toml --node-file $work/validate.toml -m 'my change'
  $EDGE config --store $STORE push $work/shared.toml --node-file $work/validate.toml --canary fra --watch 10s
  $EDGE config --store $STORE rollback
Ctrl-C stops everything.
USAGE
  wait
  exit 0
fi

echo "== ${#NODES[@]} nodes: $ROLLOUTS rollouts, $PURGES purges" >&2
: > "$work/rollouts.txt"
for g in $(seq 2 $((ROLLOUTS + 1))); do
  shared "$SHIELD" "$g" > "$work/shared.toml"
  start=$(python3 -c 'import time; print(time.time())')
  push "$work/shared.toml"
  version=$("$EDGE" config --store "$STORE" history | awk '$1 == "*" {print $2}')
  for _ in $(seq 200); do
    n=$(grep -l "config reloaded.*version=$version " "$work"/*/log 2>/dev/null | wc -l)
    [ "$n" -ge "${#NODES[@]}" ] && break
    sleep 0.02
  done
  python3 - "$start" "$version" "$work" "${NODES[@]}" >> "$work/rollouts.txt" <<'PY'
import sys, datetime, re
start, version, work, nodes = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
last = 0.0
for n in nodes:
    for line in open(f"{work}/{n}/log"):
        if "config reloaded" in line and f"version={version} " in line:
            ts = datetime.datetime.strptime(line.split()[0][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
            last = max(last, ts)
print(f"{(last - start) * 1000:.1f}")
PY
  sleep 0.5
done

: > "$work/purges.txt"
for i in $(seq 1 "$PURGES"); do
  curl -s -o "$work/purge.json" -w '%{time_total}\n' -H "authorization: Bearer $SECRET" \
    -d "{\"urls\":[\"http://localhost/obj/$i?size=1000\"]}" "http://$EDGE1_ADMIN/purge" > "$work/rtt.txt"
  python3 - "$work/purge.json" "$(cat "$work/rtt.txt")" "${#NODES[@]}" >> "$work/purges.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
acked = len(r.get("acks", []))
print(r["took_us"] / 1000, float(sys.argv[2]) * 1000, acked == int(sys.argv[3]) and r["status"] == "done")
PY
done

python3 - "$work" "${#NODES[@]}" <<'PY' | tee ${OUT:+"$OUT"}
import sys
work, nodes = sys.argv[1], sys.argv[2]
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
roll = [float(l) for l in open(f"{work}/rollouts.txt") if l.strip()]
rows = [l.split() for l in open(f"{work}/purges.txt") if l.strip()]
took = [float(r[0]) for r in rows]; rtt = [float(r[1]) for r in rows]
bad = sum(1 for r in rows if r[2] != "True")
print(f"Control plane on loopback, {nodes} nodes (1 shield), etcd 3.4, one core each way shared")
print()
print("| measure | p50 | p99 | max | n |")
print("|---|---:|---:|---:|---:|")
print(f"| config rollout, push to the last node's reload (ms) | {pct(roll, 50):.1f} | {pct(roll, 99):.1f} | {max(roll):.1f} | {len(roll)} |")
print(f"| purge, accepted to every ack, server side (ms) | {pct(took, 50):.1f} | {pct(took, 99):.1f} | {max(took):.1f} | {len(took)} |")
print(f"| purge, client round trip (ms) | {pct(rtt, 50):.1f} | {pct(rtt, 99):.1f} | {max(rtt):.1f} | {len(rtt)} |")
print()
print(f"purges without every node's ack: {bad}")
PY

# Shared by compare.sh, compress-bench.sh and origin-bench.sh: sourced (not run) from the
# workspace root as `. load-tests/lib.sh NAME`.
# Builds the release binaries ($EDGE, $LOAD), makes a work dir ($work) removed on exit
# (KEEP=1 keeps it), kills every PID the script adds to `pids` on exit, and defines
# wait_addr, free_port and rss_kib.
bench_name=$1

echo "== building release binaries" >&2
cargo build --release --locked -q -p edge -p load-tests
EDGE=$PWD/target/release/edge LOAD=$PWD/target/release/edge-load

work=$(mktemp -d "${TMPDIR:-/tmp}/edge-$bench_name.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "$bench_name: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Waits for a line matching PATTERN ("listening ADDR", "listening http ADDR") in FILE; prints
# its last field, the address.
wait_addr() {
  local file=$1 pattern=$2
  for _ in $(seq 100); do
    local a; a=$(awk -v p="$pattern" '$0 ~ p {print $NF; exit}' "$file" 2>/dev/null)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "$bench_name: no address in $file" >&2; cat "$file" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

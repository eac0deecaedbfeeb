#!/usr/bin/env bash
# Bounded fuzzing of every parser of peer input (fuzz/fuzz_targets), one target after another.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   scripts/fuzz.sh 10 host path     # two targets, 10 s each
#   scripts/fuzz.sh 3600 path        # longer: one target for an hour
#
# Needs the nightly toolchain (libFuzzer instrumentation); installs cargo-fuzz when missing.
# One fuzzing process at a time (one core); the build uses what cargo takes.
#
# Inputs the fuzzer finds go to fuzz/target/corpus/TARGET (not committed); the committed seeds
# in fuzz/corpus/TARGET are only read. To keep new finds that add coverage, merge them:
#   cargo +nightly fuzz run TARGET fuzz/corpus/TARGET fuzz/target/corpus/TARGET -- -merge=1
# The crates' `corpus_*` tests replay fuzz/corpus on stable (cargo nextest run -E 'test(corpus)').
# A crash leaves its input in fuzz/artifacts/TARGET/; reproduce with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and, once minimised (cargo +nightly fuzz tmin TARGET ...), add it to fuzz/corpus/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[ $# -gt 0 ] && shift
case $secs in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked
fi

# fuzz/ is its own workspace (sanitizer flags, nightly), so it cannot share the root lock file.
# Start from the root one each run so the fuzzed code is built with the versions the project
# ships; cargo only adds the fuzzing crates.
cp Cargo.lock fuzz/Cargo.lock

all=$(cd fuzz/fuzz_targets && ls -- *.rs | sed 's/\.rs$//')
if [ $# -gt 0 ]; then
  targets=("$@")
  for t in "${targets[@]}"; do
    grep -qx -- "$t" <<<"$all" || { echo "fuzz.sh: no target $t (have: $(echo $all))" >&2; exit 2; }
  done
else
  mapfile -t targets <<<"$all"
fi

# Sanitizer: none. Our crates forbid unsafe code, so the address sanitizer would mostly halve
# the executions; panics (including overflow: see fuzz/Cargo.toml's profile) are what we hunt.
fuzz_flags=(--sanitizer none)

echo "== build (${#targets[@]} targets)" >&2
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "${fuzz_flags[@]}" "$t"
done

logs=fuzz/target/logs
mkdir -p "$logs"
failed=0
report=()
start=$SECONDS
for t in "${targets[@]}"; do
  work=fuzz/target/corpus/$t
  mkdir -p "$work" "fuzz/artifacts/$t"
  echo "== $t (${secs}s)" >&2
  log=$logs/$t.log
  # -timeout: one input taking 10 s is a hang, and counts as a failure.
  if cargo +nightly fuzz run "${fuzz_flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n1)
    report+=("OK     $t: ${runs:-?} runs, ${cov:-no coverage line}")
  elif grep -q '^error: could not compile' "$log"; then
    # cargo-fuzz rebuilds when sources changed since the build above.
    failed=1
    report+=("BUILD  $t: does not compile (see $log)")
    continue
  else
    failed=1
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    report+=("CRASH  $t: ${artifact:-no artifact (see $log)}")
    echo "-- $t failed; the end of $log:" >&2
    grep -E "panicked at|^thread '|assertion|left:|right:|ERROR:|Test unit written" "$log" | head -n 20 >&2 || tail -n 30 "$log" >&2
  fi
done

echo "== fuzz.sh: ${#targets[@]} targets, ${secs}s each; runs took $((SECONDS - start))s (logs in $logs)" >&2
printf '%s\n' "${report[@]}" >&2
exit "$failed"

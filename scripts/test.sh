#!/usr/bin/env bash
# The one command that runs every check and test. Used by .ci/run and by developers alike.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

[ -d ../shared/tools ] || { echo "test.sh: ../shared (beside the project) is missing; the browser test needs ../shared/tools/browser-h3-check" >&2; exit 1; }

# A clean run gains nothing from incremental state, and it doubled the size of target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== fmt" >&2
cargo fmt --all -- --check
echo "== clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build (the e2e tests run this binary)" >&2
cargo build -p edge --locked
echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked
else
  echo "test.sh: cargo-nextest not found, using cargo test (cargo install cargo-nextest for per-test isolation)" >&2
  cargo test --workspace --locked
fi
echo "== vendored h3 (QPACK, our patch)" >&2
scripts/vendor-h3-tests.sh

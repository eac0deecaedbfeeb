#!/usr/bin/env bash
# Runs the vendored h3's QPACK tests, where our PATCH (edge) lives (prefix_string: the table
# Huffman encoder, checked against RFC 7541's vectors). The published crate ships without its
# dev-dependencies and without the h3-quinn sources its integration module reads, so the tests
# run on a copy: dev-dependencies added, that module left out, the workspace's lock file as
# the starting point.
set -euo pipefail
cd "$(dirname "$0")/.."

copy=$(mktemp -d "${TMPDIR:-/tmp}/edge-h3-tests.XXXXXX")
trap 'rm -rf "$copy"' EXIT
cp -r vendor/h3/. "$copy/"
cp Cargo.lock "$copy/"
cat >> "$copy/Cargo.toml" <<'TOML'

[dev-dependencies]
assert_matches = "1"
proptest = "1"
tokio = { version = "1", features = ["full"] }

[workspace]
TOML
grep -q '^mod tests;$' "$copy/src/lib.rs" || { echo "vendor-h3-tests.sh: vendor/h3/src/lib.rs no longer has 'mod tests;'" >&2; exit 1; }
sed -i 's/^mod tests;$/mod tests {}/' "$copy/src/lib.rs"
CARGO_TARGET_DIR="$PWD/target/vendor-h3" cargo test --manifest-path "$copy/Cargo.toml" --lib qpack

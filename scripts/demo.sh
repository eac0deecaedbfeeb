#!/usr/bin/env bash
# The demo: installs the build dependencies if missing (Debian), then builds and runs
# `edge demo` (a built-in origin and an edge in front of it, on loopback). Arguments go to
# `edge demo` (e.g. --port 0 --http-port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
exec cargo run --release -p edge -- demo "$@"

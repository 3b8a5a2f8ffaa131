#!/usr/bin/env bash
# The one test command (README "Test"): every unit, contract and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets

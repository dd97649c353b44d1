#!/usr/bin/env bash
# berth's test command (README): the whole workspace, unit and integration
# tests. Integration tests need root; they isolate themselves (temp state
# roots, unique IDs, cgroups under a parent they create).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${BERTH_TEST_THREADS:-4}"

#!/usr/bin/env bash
# berth's test command (README): installs missing Debian packages, then runs
# the whole workspace's unit and integration tests. Integration tests need
# root; they isolate themselves (temp state roots, unique IDs, cgroups under
# a parent they create, network only in namespaces they create).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${BERTH_TEST_THREADS:-4}"

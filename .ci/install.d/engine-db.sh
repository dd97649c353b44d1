#!/usr/bin/env bash
# berth-engine: strace, to count the engine database's fsyncs from outside
# (crates/cli/tests/engine_db_sync.rs).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends strace >/dev/null

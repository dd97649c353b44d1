#!/usr/bin/env bash
# cgv2-test.sh: runs berth-cgroups' live tests (crates/cgroups/tests/live.rs)
# on a pure cgroup v2 kernel: a qemu guest booted by qemu-cgv2.sh, since CI
# and dev hosts may be v1/hybrid. Exit status: the guest's test result.
# Env:
#   LIVE_BIN     an already built live test binary (else: cargo builds it)
#   QEMU_CGV2    the qemu helper (default: ../shared/tools/qemu-cgv2.sh beside the repository)
#   CARGO_TARGET_DIR  as usual (default target-cgroups)
#   TIMEOUT      guest timeout in seconds (default 600: TCG is slow on a busy 2-core host)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=cgv2-test
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-cgroups}

bin=${LIVE_BIN:-}
if [ -z "$bin" ]; then
    bin=$(cargo test -p berth-cgroups --test live --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*/live-[^"]*"' | tail -n 1 | cut -d'"' -f4)
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "cgv2-test: no live test binary (cargo build failed?)" >&2; exit 2; }

# shellcheck source=scripts/cgv2-common.sh
. scripts/cgv2-common.sh
cp "$bin" "$work/payload/live"
run_guest "$(basename "$bin")" 'BERTH_CGROUPS_REQUIRE_LIVE=1 RUST_BACKTRACE=1 ./live --test-threads=2'

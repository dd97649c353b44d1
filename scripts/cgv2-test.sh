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
QEMU_CGV2=${QEMU_CGV2:-$(cd "$(dirname "$0")/.." && pwd)/../shared/tools/qemu-cgv2.sh}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-cgroups}
[ -x "$QEMU_CGV2" ] || { echo "cgv2-test: $QEMU_CGV2 not found" >&2; exit 2; }

bin=${LIVE_BIN:-}
if [ -z "$bin" ]; then
    bin=$(cargo test -p berth-cgroups --test live --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*/live-[^"]*"' | tail -n 1 | cut -d'"' -f4)
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "cgv2-test: no live test binary (cargo build failed?)" >&2; exit 2; }

work=$(mktemp -d /tmp/berth-cgv2.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/payload"
cp "$bin" "$work/payload/live"
echo "cgv2-test: running $(basename "$bin") in a cgroup v2 guest" >&2
start=$SECONDS
rc=0
# The helper streams the console, but can miss its start; print the log
# from the file once qemu is done instead.
WORK="$work/qemu" TIMEOUT=${TIMEOUT:-600} "$QEMU_CGV2" "$work/payload" \
    'BERTH_CGROUPS_REQUIRE_LIVE=1 RUST_BACKTRACE=1 ./live --test-threads=2' >"$work/qemu.out" 2>&1 || rc=$?
if [ -f "$work/qemu/console.log" ]; then
    tr -d '\r' <"$work/qemu/console.log" | sed -n '/qemu-cgv2: ready at/,$p'
else
    cat "$work/qemu.out"
fi
grep '^qemu-cgv2:' "$work/qemu.out" >&2 || true
echo "cgv2-test: guest tests exit $rc after $((SECONDS - start))s" >&2
exit "$rc"

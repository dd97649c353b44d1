#!/usr/bin/env bash
# berth's test command (README): installs missing Debian packages, then runs
# the whole workspace's unit and integration tests. Integration tests need
# root; they isolate themselves (temp state roots, unique IDs, cgroups under
# a parent they create, network only in namespaces they create).
# A test that cannot run here prints a line starting with SKIP: and the
# reason; those lines are shown (other output of passing tests is not) and
# counted at the end, so no skip is silent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --all-targets
log=$(mktemp /tmp/berth-test-XXXXXX.log)
set +e
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}" --show-output 2>&1 |
    tee "$log" |
    awk '
        /^successes:$/ { succ = 1 }
        /^failures:$/ { succ = 0 }
        /^test result:/ { succ = 0 }
        succ && !/SKIP/ && !/^successes:$/ { next }
        { print }
    '
rc=${PIPESTATUS[0]}
set -e
skips=$(grep -c 'SKIP' "$log" || true)
echo "== skipped checks: $skips"
grep 'SKIP' "$log" | sed 's/^/   /' | sort | uniq -c || true
rm -f "$log"
exit "$rc"

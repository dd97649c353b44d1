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
# Shows what matters of a cargo test run (failures, SKIP lines, results).
filter() {
    awk '
        /^successes:$/ { succ = 1 }
        /^failures:$/ { succ = 0 }
        /^test result:/ { succ = 0 }
        succ && !/SKIP/ && !/^successes:$/ { next }
        { print }
    '
}
threads="${BERTH_TEST_THREADS:-4}"
set +e
cargo test --workspace --no-fail-fast -- --test-threads="$threads" --show-output 2>&1 |
    tee "$log" | filter
rc=${PIPESTATUS[0]}
# The engine's default for root is a user namespace per container
# (BERTH_USERNS_DEFAULT unset = auto): the tests that make containers run
# once more with the other default, the host's user namespace.
# (engine_userns* pin the default themselves, engine_images/engine_pull
# make no containers that differ, kube play's pods use the host's user
# namespace as Kubernetes does; rootless containers ignore the setting; the
# callers_* tests drive berth-runtime, which has no such default.)
second=()
for f in crates/cli/tests/{engine_*,api_*,compat_*,build}.rs; do
    t=$(basename "$f" .rs)
    case "$t" in engine_userns | engine_userns_default | engine_userns_pods | engine_images | engine_pull | engine_kube | engine_rootless*) continue ;; esac
    second+=(--test "$t")
done
echo "== again with BERTH_USERNS_DEFAULT=host: ${second[*]}"
BERTH_USERNS_DEFAULT=host cargo test -p berth-cli "${second[@]}" --no-fail-fast -- \
    --test-threads="$threads" --show-output 2>&1 | tee -a "$log" | filter
rc2=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && rc=$rc2
set -e
skips=$(grep -ac 'SKIP' "$log" || true)
echo "== skipped checks: $skips"
grep -a 'SKIP' "$log" | sed 's/^/   /' | sort | uniq -c || true
# Failures again at the very end, so that a log cut to its tail (CI shows
# only a part) still names every failed test and its panic message.
if [ "$rc" -ne 0 ]; then
    echo "== failed tests:"
    grep -a -E '^test .* FAILED$|^error: test failed|^error: [0-9]+ targets? failed' "$log" | sed 's/^/   /' || true
    echo "== their messages (the first 60 lines of each failures block):"
    awk '
        /^failures:$/ && !inblk { inblk = 1; n = 0; next }
        inblk && /^failures:$/ { inblk = 0; next }
        inblk && n < 60 { print "   " $0; n++ }
    ' "$log" || true
fi
rm -f "$log"
exit "$rc"

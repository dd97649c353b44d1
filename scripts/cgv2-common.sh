# Sourced by the cgv2-*-test.sh scripts, with NAME set to the script's name
# and the current directory at the repository root: finds the qemu helper
# (QEMU_CGV2), makes $work with $work/payload/bin in it (removed on exit)
# and puts the guest scripts' shared code there (cgv2-guest-lib.sh, sourced
# in the guest as ./guest-lib.sh). Functions: payload_runtime (berth-runtime
# into the payload) and run_guest (boots the guest and exits with its code).
QEMU_CGV2=${QEMU_CGV2:-$(pwd)/../shared/tools/qemu-cgv2.sh}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-cgsec}
[ -x "$QEMU_CGV2" ] || { echo "$NAME: $QEMU_CGV2 not found" >&2; exit 2; }

work=$(mktemp -d "/tmp/berth-$NAME.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/payload/bin"
chmod 755 "$work/payload" "$work/payload/bin"
cp scripts/cgv2-guest-lib.sh "$work/payload/guest-lib.sh"
chmod 644 "$work/payload/guest-lib.sh"

# payload_runtime: berth-runtime (RUNTIME_BIN, else cargo builds it) as
# $work/payload/bin/berth-runtime.
payload_runtime() {
    local bin=${RUNTIME_BIN:-}
    if [ -z "$bin" ]; then
        cargo build -q -p berth-cli --bin berth-runtime >&2 || { echo "$NAME: cargo build failed" >&2; exit 2; }
        bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/berth-runtime
    fi
    [ -x "$bin" ] || { echo "$NAME: no berth-runtime at $bin" >&2; exit 2; }
    cp "$bin" "$work/payload/bin/berth-runtime"
    chmod 755 "$work/payload/bin/berth-runtime"
}

# run_guest WHAT COMMAND: runs COMMAND in /payload of a cgroup v2 guest
# (TIMEOUT seconds at most, default 600: TCG is slow on a busy 2-core
# host), prints the guest's console from its start, and exits with
# COMMAND's code.
run_guest() {
    echo "$NAME: running $1 in a cgroup v2 guest" >&2
    local start=$SECONDS rc=0
    # The helper streams the console, but can miss its start; print the log
    # from the file once qemu is done instead.
    WORK="$work/qemu" TIMEOUT=${TIMEOUT:-600} "$QEMU_CGV2" "$work/payload" "$2" >"$work/qemu.out" 2>&1 || rc=$?
    if [ -f "$work/qemu/console.log" ]; then
        tr -d '\r' <"$work/qemu/console.log" | sed -n '/qemu-cgv2: ready at/,$p'
    else
        cat "$work/qemu.out"
    fi
    grep '^qemu-cgv2:' "$work/qemu.out" >&2 || true
    echo "$NAME: guest exit $rc after $((SECONDS - start))s" >&2
    exit "$rc"
}

# Sourced by the cgv2-*-test.sh scripts, with NAME set to the script's name
# and the current directory at the repository root: finds the qemu helper
# (QEMU_CGV2) and berth-runtime (RUNTIME_BIN, else cargo builds it), and
# makes $work with $work/payload/bin/berth-runtime in it (removed on exit).
QEMU_CGV2=${QEMU_CGV2:-$(pwd)/../shared/tools/qemu-cgv2.sh}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-cgsec}
[ -x "$QEMU_CGV2" ] || { echo "$NAME: $QEMU_CGV2 not found" >&2; exit 2; }

bin=${RUNTIME_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q -p berth-cli --bin berth-runtime >&2 || { echo "$NAME: cargo build failed" >&2; exit 2; }
    bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/berth-runtime
fi
[ -x "$bin" ] || { echo "$NAME: no berth-runtime at $bin" >&2; exit 2; }

work=$(mktemp -d "/tmp/berth-$NAME.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/payload/bin"
chmod 755 "$work/payload" "$work/payload/bin"
cp "$bin" "$work/payload/bin/berth-runtime"
chmod 755 "$work/payload/bin/berth-runtime"

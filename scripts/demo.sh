#!/usr/bin/env bash
# berth's main job in one command: build berth, make an image from Debian's
# static busybox (no network needed), and run a real container from it with
# the engine (`berth run`), then the same rootfs through the OCI runtime
# (`berth-runtime run`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /bin/busybox ] || ! command -v pkg-config >/dev/null || ! [ -e /usr/include/seccomp.h ] ||
    ! [ -x /usr/sbin/nft ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static libseccomp-dev pkg-config nftables >/dev/null
fi
cargo build --release -p berth-cli
berth=./target/x86_64-unknown-linux-gnu/release/berth
work=$(mktemp -d /tmp/berth-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
# An image: the busybox rootfs of an OCI bundle, imported as one layer.
./scripts/busybox-bundle.sh "$work/bundle" sh -c 'echo "hello from berth-runtime: pid $$ in $(hostname)"' >/dev/null
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
"$berth" import --cmd '["/bin/sh"]' "$work/rootfs.tar" localhost/busybox-demo:latest >/dev/null
"$berth" run --rm --name "demo-$$" localhost/busybox-demo:latest \
    sh -c 'echo "hello from a berth container: $(hostname), pid $$"; id; grep -E "^(NSpid|CapEff|NoNewPrivs|Seccomp):" /proc/self/status; ip -o -4 addr show eth0; ls /'
./target/x86_64-unknown-linux-gnu/release/berth-runtime --root /run/berth run --bundle "$work/bundle" "demo-rt-$$"

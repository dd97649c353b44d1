#!/usr/bin/env bash
# berth's main job in one command: build berth, make an OCI bundle from
# Debian's static busybox (no network needed) and run a real container in it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -x /bin/busybox ] || ! command -v pkg-config >/dev/null || ! [ -e /usr/include/seccomp.h ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static libseccomp-dev pkg-config >/dev/null
fi
cargo build --release -p berth-cli
bundle=$(mktemp -d /tmp/berth-demo-XXXXXX)
trap 'rm -rf "$bundle"' EXIT
./scripts/busybox-bundle.sh "$bundle" sh -c 'echo "hello from a berth container: $(hostname), pid $$"; id; cat /proc/self/status | grep -E "^(NSpid|CapEff|Seccomp):"; ls /'
exec ./target/release/berth-runtime --root /run/berth run --bundle "$bundle" "demo-$$"

#!/usr/bin/env bash
# berth-cgroups: what its cgroup v2 test (tests/qemu_v2.rs ->
# scripts/cgv2-test.sh) needs to boot a pure cgroup v2 kernel under qemu.
# Measured: about 65 s on a 2-core Debian 12 machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends \
    qemu-system-x86 linux-image-amd64 cpio file busybox-static >/dev/null

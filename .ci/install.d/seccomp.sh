#!/usr/bin/env bash
# Extra packages for berth-seccomp's tests (libseccomp-dev, pkg-config and
# busybox-static come with the base install).
# python3 (with ctypes): behaviour tests make raw syscalls (keyctl, bpf,
# kexec_load, x32 getpid, ...) from a python child under the loaded filter,
# since the seccomp crate itself may not contain `unsafe`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends python3 >/dev/null

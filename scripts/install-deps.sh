#!/usr/bin/env bash
# Install what berth's build, tests and benchmarks need on Debian 12 (root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
base=(busybox-static runc crun hyperfine libseccomp-dev pkg-config iproute2 nftables
      ca-certificates python3 gcc)
missing=()
for p in "${base[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})) || [ "${BERTH_FORCE_INSTALL:-}" = 1 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Extra installs of each layer (registries, callers like podman, qemu, ...).
for f in .ci/install.d/*.sh; do
    [ -e "$f" ] || continue
    echo "== $f"
    bash "$f"
done

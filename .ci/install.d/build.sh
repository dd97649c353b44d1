#!/usr/bin/env bash
# `berth build` is compared with buildah (crates/cli/tests/build.rs:
# the same Containerfile built by `buildah bud` and by berth gives the
# same rootfs and config).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends buildah >/dev/null

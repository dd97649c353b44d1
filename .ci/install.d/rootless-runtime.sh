#!/usr/bin/env bash
# Rootless berth-runtime tests (crates/cli/tests/runtime_rootless.rs,
# callers_podman_rootless.rs): newuidmap/newgidmap for the test user's
# subordinate ranges, runc as the peer, slirp4netns for rootless podman's
# network, passwd/util-linux for the test user (useradd, setpriv, unshare).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends \
    uidmap runc slirp4netns podman passwd util-linux >/dev/null

#!/usr/bin/env bash
# Rootless berth (crates/cli/tests/engine_rootless*.rs, docs/rootless.md):
# newuidmap/newgidmap map a test user's subordinate range, fuse-overlayfs
# is the storage fallback, podman is the peer compared with, and
# slirp4netns/pasta are the user-mode networks; the rootless registry and
# API service tests use docker-registry and the docker CLI (docker.io),
# bench/rootless.sh hyperfine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends uidmap fuse-overlayfs passt slirp4netns podman \
    docker-registry docker.io hyperfine >/dev/null

#!/usr/bin/env bash
# Clients of `berth system service` in crates/cli/tests/api_*.rs: the docker
# CLI (docker.io, which also brings the dockerd the Compose test compares
# with; callers.sh stops the services the package starts), Docker Compose
# 1.29 (Debian's docker-compose, Python) and the Docker SDK for Python
# (python3-docker, which Compose uses too); docker-registry for the
# push/pull tests of api_images.rs (image.sh installs it too); busybox-static
# (the tests copy /bin/busybox into images: Debian's dynamic `busybox`
# conflicts with it, and installing it swapped the two at every run).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends \
    docker.io docker-compose python3-docker docker-registry busybox-static util-linux >/dev/null
if command -v systemctl >/dev/null 2>&1; then
    for s in docker.socket docker containerd docker-registry; do
        if systemctl is-active --quiet "$s" 2>/dev/null; then
            systemctl stop "$s" || true
        fi
    done
fi

#!/usr/bin/env bash
# Callers that drive berth-runtime in crates/cli/tests/callers_*.rs: podman
# (with conmon), Docker's dockerd and client (docker.io, which brings
# containerd, ctr and the runc v2 shim), and containerd itself.
# Measured on a 2-core Debian 12 machine: docker.io + containerd 39 s;
# podman + conmon were already there (their reinstall took 13 s).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends \
    podman conmon docker.io containerd tar util-linux >/dev/null
# Where systemd runs, the packages start the machine's dockerd/containerd.
# The tests start private daemons and refuse to share a containerd on the
# default socket, so stop those services.
if command -v systemctl >/dev/null 2>&1; then
    for s in docker.socket docker containerd; do
        if systemctl is-active --quiet "$s" 2>/dev/null; then
            systemctl stop "$s" || true
        fi
    done
fi
# dockerd 20.10 writes /etc/docker/key.json; the test hides /etc/docker
# (shipped by docker.io) behind a tmpfs in dockerd's private mount namespace.

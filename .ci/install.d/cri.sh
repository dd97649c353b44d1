#!/usr/bin/env bash
# berth cri (crates/cri): the CRI v1 protos are compiled by k8s-cri's build
# script, which runs protoc. The CRI tests drive containerd (callers.sh
# installs it) and berth with crictl/critest from shared/tools/cri; the pods
# containerd runs get their network from the CNI plugins; the substitute
# images for critest are built from busybox-static and three small C
# programs (gcc, libc6-dev for -static) and served by docker-registry.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Pod networks from CNI plugins (cri_network.rs and containerd's pods):
# bridge, host-local, portmap, loopback in /usr/lib/cni; portmap runs
# iptables.
apt-get install -y -qq --no-install-recommends \
    protobuf-compiler containernetworking-plugins busybox-static docker-registry \
    gcc libc6-dev iptables >/dev/null
# The Debian package starts a registry on :5000 via systemd where systemd
# runs; tests start their own in their network namespaces.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

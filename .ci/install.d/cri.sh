#!/usr/bin/env bash
# berth cri (crates/cri): the CRI v1 protos are compiled by k8s-cri's build
# script, which runs protoc. The CRI tests drive containerd (callers.sh
# installs it) and berth with crictl/critest from shared/tools/cri.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends protobuf-compiler >/dev/null
# Pod networks from CNI plugins (cri_network.rs): bridge, host-local,
# portmap, loopback in /usr/lib/cni; portmap runs iptables.
apt-get install -y -qq --no-install-recommends containernetworking-plugins iptables >/dev/null

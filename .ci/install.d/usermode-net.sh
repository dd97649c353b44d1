#!/usr/bin/env bash
# berth-engine user-mode networking (crates/cli/tests/engine_usermode_net.rs,
# bench/rootless.sh): the helpers `--network slirp4netns` and `--network
# pasta` start (slirp4netns, passt), python3 for the tests' UDP echo server
# (busybox nc has no UDP) and iperf3 for the throughput benchmark.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends slirp4netns passt python3 iperf3 >/dev/null

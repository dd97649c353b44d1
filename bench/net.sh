#!/usr/bin/env bash
# berth's bridge plumbing vs a plain veth pair, by hand, as root (not in CI).
# Everything runs inside a network namespace this script creates, so the
# host's interfaces, routes and nftables are never touched.
#   1. TCP throughput (iperf3, DURATION s) and TCP round-trip latency (1-byte
#      ping-pong, ROUNDS round trips) between two plain network namespaces
#      joined by a veth pair: the floor;
#   1b. the same between two namespaces on a plain Linux bridge (no
#      nftables): the cost of the bridge topology itself;
#   2. the same container to container over a berth bridge network;
#   3. the same host to container through a published port (DNAT);
#   4. time to attach a running container to a network (`network connect`
#      + `disconnect`, N times).
# Reported: absolute numbers and ratios to the plain veth pair.
# The three paths are measured interleaved, REPEAT times, and the medians
# reported, so that load on the machine hits every path alike.
# Usage: bench/net.sh   (BERTH=path/to/berth; DURATION=5 ROUNDS=20000 N=20 REPEAT=3;
#                       BR_NETFILTER=0|1, see below)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-20000}
N=${N:-20}
REPEAT=${REPEAT:-3}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  cargo build --release -q -p berth-cli
  BERTH=$PWD/target/x86_64-unknown-linux-gnu/release/berth
fi
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for c in iperf3 python3 nsenter ip nft; do
  command -v $c >/dev/null || { echo "needs $c (apt-get install iperf3 python3 util-linux iproute2 nftables)"; exit 1; }
done
echo "berth binary: $BERTH"

T=$(mktemp -d /tmp/berth-netbench-XXXXXX)
CG=/berth-netbench-$$
HOSTNS=$T/hostns
touch "$HOSTNS" "$T/a" "$T/b" "$T/brh" "$T/c" "$T/d"
for ns in "$HOSTNS" "$T/a" "$T/b" "$T/brh" "$T/c" "$T/d"; do unshare --net="$ns" true; done
inhost() { nsenter --net="$HOSTNS" -- "$@"; }
B=(nsenter --net="$HOSTNS" -- "$BERTH" --root "$T/root" --runroot "$T/run" --cgroup-parent "$CG")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${B[@]}" rm -f >/dev/null 2>&1 || true
  "${B[@]}" network prune >/dev/null 2>&1 || true
  for f in "$HOSTNS" "$T/a" "$T/b" "$T/brh" "$T/c" "$T/d"; do umount "$f" 2>/dev/null || true; done
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h$CG" ] && rmdir "$h$CG" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT
inhost ip link set lo up
# br_netfilter: where the module is loaded (Docker and Kubernetes hosts; this
# machine), every bridged IPv4/IPv6 frame also runs the IP netfilter hooks
# while net.bridge.bridge-nf-call-ip{,6}tables is 1 (the default): about a
# tenth of the throughput of any bridge, berth's or not. A bridge's own
# nf_call_iptables attribute can only add to the namespace-wide setting,
# so berth leaves it as the host has it. BR_NETFILTER=0 (or 1) sets it in
# this benchmark's own namespaces (the sysctls are per network namespace).
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  if [ -n "${BR_NETFILTER:-}" ]; then
    for ns in "$HOSTNS" "$T/brh"; do
      nsenter --net="$ns" -- sysctl -qw net.bridge.bridge-nf-call-iptables="$BR_NETFILTER" \
        net.bridge.bridge-nf-call-ip6tables="$BR_NETFILTER"
    done
  fi
  echo "br_netfilter loaded; bridge-nf-call-iptables in the bench namespaces: $(inhost cat /proc/sys/net/bridge/bridge-nf-call-iptables)"
else
  echo "br_netfilter not loaded: bridged frames skip the IP netfilter hooks"
fi

# The round-trip probe: a 1-byte TCP ping-pong; prints microseconds per
# round trip (median of 5 batches).
cat >"$T/rr.py" <<'PY'
import socket, sys, time, statistics
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(1)
    print("ready", flush=True)
    while True:
        c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            b = c.recv(1)
            if not b: break
            c.sendall(b)
        c.close()
else:
    rounds = int(sys.argv[4])
    c = socket.create_connection((addr, port)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    res = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(rounds // 5):
            c.sendall(b"x"); c.recv(1)
        res.append((time.perf_counter() - t) / (rounds // 5) * 1e6)
    print(f"{statistics.median(res):.1f}")
PY

# measure SERVER_NS CLIENT_NS CONNECT_ADDR LISTEN_ADDR PORT_IPERF PORT_RR [CLIENT_PORT_IPERF CLIENT_PORT_RR]
# prints "Gbit/s usec"
measure() {
  local sns=$1 cns=$2 caddr=$3 laddr=$4 pi=$5 pr=$6 cpi=${7:-$5} cpr=${8:-$6}
  nsenter --net="$sns" -- iperf3 -s -1 -B "$laddr" -p "$pi" >/dev/null 2>&1 &
  PIDS+=($!)
  nsenter --net="$sns" -- python3 "$T/rr.py" server "$laddr" "$pr" >"$T/rr.ready" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q ready "$T/rr.ready" 2>/dev/null && break; sleep 0.05; done
  sleep 0.3
  local bps
  bps=$(nsenter --net="$cns" -- iperf3 -J -c "$caddr" -p "$cpi" -t "$DURATION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])')
  local us
  us=$(nsenter --net="$cns" -- python3 "$T/rr.py" client "$caddr" "$cpr" "$ROUNDS")
  kill "${PIDS[-1]}" 2>/dev/null || true
  python3 -c "print(f'{$bps/1e9:.2f} $us')"
}

# 1. The floor: two namespaces joined by one veth pair.
ip link add bnA netns "$T/a" type veth peer name bnB netns "$T/b"
nsenter --net="$T/a" -- sh -c 'ip link set lo up; ip addr add 10.254.0.1/24 dev bnA; ip link set bnA up'
nsenter --net="$T/b" -- sh -c 'ip link set lo up; ip addr add 10.254.0.2/24 dev bnB; ip link set bnB up'

# 1b. A plain Linux bridge (no nftables) between two namespaces: what the
# bridge topology itself costs, berth or not.
nsenter --net="$T/brh" -- sh -c 'ip link add br0 type bridge; ip link set br0 up'
ip link add bhc netns "$T/brh" type veth peer name bc netns "$T/c"
ip link add bhd netns "$T/brh" type veth peer name bd netns "$T/d"
nsenter --net="$T/brh" -- sh -c 'for i in bhc bhd; do ip link set $i master br0; ip link set $i up; done'
nsenter --net="$T/c" -- sh -c 'ip link set lo up; ip addr add 10.253.0.2/24 dev bc; ip link set bc up'
nsenter --net="$T/d" -- sh -c 'ip link set lo up; ip addr add 10.253.0.3/24 dev bd; ip link set bd up'

# A busybox image (no network needed).
busybox_rootfs_tar "$T/rootfs" "$T/bb.tar"
"${B[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null

# 2. Container to container over a berth bridge.
"${B[@]}" network create bench >/dev/null
"${B[@]}" run -d --name srv --network bench -p 15201:5202 -p 15301:5302 localhost/bb:1 sleep 3600 >/dev/null
"${B[@]}" run -d --name cli --network bench localhost/bb:1 sleep 3600 >/dev/null
pid_of() { "${B[@]}" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])'; }
ip_of() { "${B[@]}" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["Networks"]["bench"]["IPAddress"])'; }
SRV_NS=/proc/$(pid_of srv)/ns/net
CLI_NS=/proc/$(pid_of cli)/ns/net
SRV_IP=$(ip_of srv)

# 3. Host to container through the published ports (DNAT to 5202/5302).
: >"$T/results"
for r in $(seq "$REPEAT"); do
  echo "veth $(measure "$T/b" "$T/a" 10.254.0.2 10.254.0.2 5201 5301)" >>"$T/results"
  echo "plainbr $(measure "$T/d" "$T/c" 10.253.0.3 10.253.0.3 5201 5301)" >>"$T/results"
  echo "bridge $(measure "$SRV_NS" "$CLI_NS" "$SRV_IP" "$SRV_IP" 5201 5301)" >>"$T/results"
  echo "published $(measure "$SRV_NS" "$HOSTNS" 127.0.0.1 "$SRV_IP" 5202 5302 15201 15301)" >>"$T/results"
done
med() { awk -v k="$1" -v c="$2" '$1==k {print $c}' "$T/results" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
veth_gbps=$(med veth 2); veth_us=$(med veth 3)
br_gbps=$(med bridge 2); br_us=$(med bridge 3)
pb_gbps=$(med plainbr 2); pb_us=$(med plainbr 3)
pub_gbps=$(med published 2); pub_us=$(med published 3)

# 4. Attach time.
"${B[@]}" network create other >/dev/null
start=$(date +%s%N)
for _ in $(seq "$N"); do
  "${B[@]}" network connect other cli
  "${B[@]}" network disconnect other cli
done
end=$(date +%s%N)
attach_ms=$(python3 -c "print(f'{($end-$start)/1e6/$N:.1f}')")

python3 - "$veth_gbps" "$veth_us" "$br_gbps" "$br_us" "$pub_gbps" "$pub_us" "$attach_ms" "$DURATION" "$ROUNDS" "$pb_gbps" "$pb_us" <<'PY'
import sys
vg, vu, bg, bu, pg, pu, am, dur, rounds, xg, xu = sys.argv[1:]
vg, vu, bg, bu, pg, pu, xg, xu = map(float, (vg, vu, bg, bu, pg, pu, xg, xu))
print(f"iperf3 {dur}s per path, TCP RR {rounds} round trips; medians of the interleaved repeats")
print(f"{'path':38} {'Gbit/s':>8} {'x veth':>7} {'RTT us':>8} {'x veth':>7}")
print(f"{'plain veth pair (floor)':38} {vg:8.2f} {1:7.2f} {vu:8.1f} {1:7.2f}")
print(f"{'plain Linux bridge, no nftables':38} {xg:8.2f} {xg/vg:7.2f} {xu:8.1f} {xu/vu:7.2f}")
print(f"{'berth: container -> container (bridge)':38} {bg:8.2f} {bg/vg:7.2f} {bu:8.1f} {bu/vu:7.2f}")
print(f"{'berth: host -> published port (DNAT)':38} {pg:8.2f} {pg/vg:7.2f} {pu:8.1f} {pu/vu:7.2f}")
print(f"berth bridge / plain bridge: throughput {bg/xg:.2f}x, RTT {bu/xu:.2f}x")
print(f"attach (network connect + disconnect of a running container): {am} ms")
PY

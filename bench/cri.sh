#!/usr/bin/env bash
# berth cri vs containerd 1.6 + runc behind the CRI, by hand, as root (not
# in CI), driven by crictl v1.26.1 (shared/tools/cri):
#   1. pod start latency: `crictl run ctr.json pod.json` (RunPodSandbox,
#      PullImage check, CreateContainer, StartContainer in one client), then
#      teardown: `crictl rmp -f POD` (StopPodSandbox, RemovePodSandbox with
#      its container); N rounds (default 20), the sides interleaved in a
#      shuffled order; medians and the ratio berth/containerd. A third side
#      is a second `berth cri` with BERTH_CRI_INPROC=0 (every change by a
#      `berth` command, as before pod create, create and start ran in the
#      service);
#   2. memory per running pod: P pods (default 5) of one `sleep` container
#      each, PSS (smaps_rollup) of every berth process of those pods (the
#      per-container monitors, and the pod's PID 1 holding its PID
#      namespace: these pods' PID mode is POD, the proto's default) against
#      containerd's per-pod runc v2 shim (and shim + pause container).
# Targets (issue 18): start latency <= 0.5x containerd's, memory per pod
# <= 0.25x a containerd shim.
# Everything runs in a private network namespace (pods' bridges, veths,
# firewall rules land there) with private dirs; containerd is started with
# a config of the benchmark's own (CNI bridge from containernetworking-
# plugins), images come from the host's busybox-static (no network).
# Usage: bench/cri.sh [N] [P]   (BERTH=path/to/berth to pick a build)
set -euo pipefail
[ -n "${BENCH_TRACE:-}" ] && set -x
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20}
P=${2:-5}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  for c in target/x86_64-unknown-linux-gnu/release/berth target/x86_64-unknown-linux-gnu/debug/berth; do
    if [ -x "$c" ]; then BERTH=$PWD/$c; break; fi
  done
fi
[ -n "$BERTH" ] || { echo "build berth first: cargo build --release -p berth-cli"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
CRICTL=
d=$PWD
while [ "$d" != / ]; do
  [ -x "$d/shared/tools/cri/crictl" ] && CRICTL=$d/shared/tools/cri/crictl && break
  d=$(dirname "$d")
done
[ -n "$CRICTL" ] || { echo "needs crictl (shared/tools/cri/crictl)"; exit 1; }
for b in containerd ctr containerd-shim-runc-v2 runc cc; do
  command -v $b >/dev/null || { echo "needs $b"; exit 1; }
done
[ -x /usr/lib/cni/bridge ] || { echo "needs containernetworking-plugins"; exit 1; }

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export BERTH BERTH_BENCH_INNER=1
  exec unshare -n "$0" "$@"
fi
ip link set lo up
echo "berth binary: $BERTH"
echo "kernel $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); private network namespace"

T=$(mktemp -d /tmp/berth-bench-cri-XXXXXX)
export BERTH_SUBUID_FILE=$T/subuid BERTH_SUBGID_FILE=$T/subgid
CG=/berth-bench-cri-$$
B=("$BERTH" --root "$T/berth" --runroot "$T/berth-run" --cgroup-parent "$CG")
BSOCK=$T/berth-cri.sock
OSOCK=$T/berth-cri-cmds.sock
CSOCK=$T/containerd/containerd.sock
bcrictl() { "$CRICTL" --runtime-endpoint "unix://$BSOCK" --image-endpoint "unix://$BSOCK" --timeout 60s "$@"; }
ocrictl() { "$CRICTL" --runtime-endpoint "unix://$OSOCK" --image-endpoint "unix://$OSOCK" --timeout 60s "$@"; }
ccrictl() { "$CRICTL" --runtime-endpoint "unix://$CSOCK" --image-endpoint "unix://$CSOCK" --timeout 60s "$@"; }
CRI_PID= CTD_PID= OCRI_PID=

cleanup() {
  set +e
  bcrictl rmp -f -a >/dev/null 2>&1
  ocrictl rmp -f -a >/dev/null 2>&1
  ccrictl rmp -f -a >/dev/null 2>&1
  [ -n "$CRI_PID" ] && kill "$CRI_PID" 2>/dev/null && wait "$CRI_PID" 2>/dev/null
  [ -n "$OCRI_PID" ] && kill "$OCRI_PID" 2>/dev/null && wait "$OCRI_PID" 2>/dev/null
  [ -n "$CTD_PID" ] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
  for p in $(grep -l -F "$T" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null
  done
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${B[@]}" rm -f >/dev/null 2>&1
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h$CG" ] && find "$h$CG" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

# Images: busybox from the host's busybox-static, and containerd's
# sandbox image (pause.c of the CRI tests), handed to containerd as a
# docker-archive saved by berth.
busybox_rootfs_tar "$T/rootfs" "$T/bb.tar"
"${B[@]}" import "$T/bb.tar" docker.io/library/busybox:bench >/dev/null
mkdir -p "$T/pause-root"
cc -static -Os -o "$T/pause-root/pause" crates/cli/tests/cri_support/pause.c
tar -C "$T/pause-root" -cf "$T/pause.tar" .
"${B[@]}" import --cmd '["/pause"]' "$T/pause.tar" registry.k8s.io/pause:3.6 >/dev/null
"${B[@]}" save -o "$T/images.tar" docker.io/library/busybox:bench registry.k8s.io/pause:3.6

D=$T/containerd
mkdir -p "$D/cni"
cat >"$D/cni/10-bench.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.9.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
cat >"$D/config.toml" <<EOF
version = 2
root = "$D/root"
state = "$D/state"
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  netns_mounts_under_state_dir = true
  # CAP_SYS_RESOURCE may be missing (as on the machine this was written on):
  # never ask for a lower oom_score_adj than containerd's own.
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = "$D/runc"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$D/cni"
EOF
containerd --config "$D/config.toml" >"$T/containerd.log" 2>&1 &
CTD_PID=$!
# Both CRI services run the same CNI configuration list (not the host's
# /etc/cni/net.d, which may hold another, e.g. podman's with more plugins).
"${B[@]}" cri --listen "unix://$BSOCK" --cni-conf-dir "$D/cni" >"$T/berth-cri.log" 2>&1 &
CRI_PID=$!
BERTH_CRI_INPROC=0 "${B[@]}" cri --listen "unix://$OSOCK" --cni-conf-dir "$D/cni" >"$T/berth-cri-cmds.log" 2>&1 &
OCRI_PID=$!
for i in $(seq 100); do [ -S "$CSOCK" ] && [ -S "$BSOCK" ] && [ -S "$OSOCK" ] && break; sleep 0.2; done
ctr --address "$CSOCK" -n k8s.io images import "$T/images.tar" >/dev/null

cat >"$T/ctr.json" <<EOF
{"metadata": {"name": "sleeper"}, "image": {"image": "docker.io/library/busybox:bench"},
 "command": ["sleep", "100000"], "linux": {}}
EOF
pod_json() { # pod_json NAME: a pod config with a unique name
  cat >"$T/pod-$1.json" <<EOF
{"metadata": {"name": "$1", "namespace": "bench", "uid": "uid-$1", "attempt": 0},
 "log_directory": "$T/logs/$1", "linux": {"cgroup_parent": "$CG"}}
EOF
  echo "$T/pod-$1.json"
}
now_ms() { date +%s%N | cut -c1-13; }

# Warm-up (first pod of each side pays for image unpacking, CNI setup).
for side in b o c; do
  pid=$(${side}crictl run --no-pull "$T/ctr.json" "$(pod_json warm-$side)" >/dev/null && ${side}crictl pods -q --name warm-$side)
  ${side}crictl rmp -f "$pid" >/dev/null
done

echo "== pod + container start (crictl run), then rmp -f: $N rounds, interleaved =="
: >"$T/times"
for i in $(seq "$N"); do
  for side in $(printf 'b\no\nc\n' | shuf); do
    name=p$i-$side
    cfg=$(pod_json "$name")
    t0=$(now_ms)
    ${side}crictl run --no-pull "$T/ctr.json" "$cfg" >/dev/null
    t1=$(now_ms)
    pid=$(${side}crictl pods -q --name "$name")
    t2=$(now_ms)
    ${side}crictl rmp -f "$pid" >/dev/null
    t3=$(now_ms)
    echo "$side $((t1 - t0)) $((t3 - t2))" >>"$T/times"
  done
done
python3 - "$T/times" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for side in "boc":
    start = [int(r[1]) for r in rows if r[0] == side]
    stop = [int(r[2]) for r in rows if r[0] == side]
    med[side] = (statistics.median(start), statistics.median(stop))
name = {"b": "berth cri", "o": "berth cri, cmds", "c": "containerd+runc"}
for s in "boc":
    print(f"{name[s]:16} start median {med[s][0]:7.0f} ms   teardown median {med[s][1]:7.0f} ms")
print(f"ratio berth/containerd: start {med['b'][0]/med['c'][0]:.2f}x, teardown {med['b'][1]/med['c'][1]:.2f}x")
print(f"ratio berth (berth commands only)/containerd: start {med['o'][0]/med['c'][0]:.2f}x, teardown {med['o'][1]/med['c'][1]:.2f}x")
EOF

if [ -n "${BERTH_CRI_TRACE:-}" ]; then
  echo "== where the berth cri time goes (BERTH_CRI_TRACE; medians per call) =="
  python3 - "$T/berth-cri.log" "$T/berth-cri-cmds.log" <<'EOF'
import re, statistics, sys
for f, side in zip(sys.argv[1:], ["berth cri", "berth cri, cmds"]):
    t = {}
    for l in open(f):
        m = re.match(r"berth-cri: trace: (.*): ([0-9.]+) ms", l)
        if m:
            t.setdefault(m.group(1), []).append(float(m.group(2)))
    for k, v in sorted(t.items()):
        print(f"{side:16} {k:32} {statistics.median(v):7.1f} ms  ({len(v)} calls)")
EOF
fi

echo "== memory of $P running pods (one sleep container each) =="
pss_of() { # sum of PSS (kB) of the given pids
  local sum=0 p v
  for p in "$@"; do
    v=$(awk '$1=="Pss:"{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
for i in $(seq "$P"); do
  bcrictl run --no-pull "$T/ctr.json" "$(pod_json m$i-b)" >/dev/null
  ccrictl run --no-pull "$T/ctr.json" "$(pod_json m$i-c)" >/dev/null
done
sleep 1
# berth: the per-container monitors and, for a pod whose PID mode is POD
# (these pods: the proto's default), the pod's PID 1 holding its PID
# namespace (recorded in the runroot; the CRI service is shared by all
# pods, like containerd itself); containerd: its per-pod shims and the
# pause containers (the shims' children named pause).
bp=$(for f in /proc/[0-9]*/cmdline; do
  c=$( { tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
  case "$c" in *"$T/berth"*container-monitor*) f=${f#/proc/}; echo "${f%/cmdline}";; esac
done; for r in "$T"/berth-run/pods/*/pid-holder; do [ -f "$r" ] && cut -d' ' -f1 "$r"; done)
sp=$(for f in /proc/[0-9]*/cmdline; do
  c=$( { tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
  case "$c" in *containerd-shim-runc-v2*"$CSOCK"*) f=${f#/proc/}; echo "${f%/cmdline}";; esac
done)
pp=$(for s in $sp; do cat /proc/"$s"/task/*/children 2>/dev/null; done | tr ' ' '\n' | while read -r c; do
  if [ -n "$c" ] && [ "$(cat /proc/"$c"/comm 2>/dev/null)" = pause ]; then echo "$c"; fi; done)
bk=$(pss_of $bp); sk=$(pss_of $sp); pk=$(pss_of $pp)
echo "berth: $(echo $bp | wc -w) processes for $P pods, PSS $((bk / P)) kB per pod"
echo "containerd: $(echo $sp | wc -w) shims, PSS $((sk / P)) kB per pod; with pause containers $(((sk + pk) / P)) kB"
python3 -c "print(f'ratio berth/shim: {$bk/$sk:.2f}x; berth/(shim+pause): {$bk/($sk+$pk):.2f}x')"

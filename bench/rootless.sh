#!/usr/bin/env bash
# Rootless berth against rootless podman, by hand, as root (not in CI):
# 1. `run --rm --network none IMAGE true` wall time, berth and podman 4.3
#    (with runc: crun refuses the host's hybrid cgroups) both run by an
#    unprivileged user this script makes (its own subordinate range,
#    HOME and XDG_RUNTIME_DIR under the temp dir; removed at the end), one
#    interleaved hyperfine run of RUNS runs each, ratio berth/podman
#    (target: <= 0.2x);
# 2. user-mode networking throughput through a published port, run by
#    root (the same slirp4netns/pasta paths a rootless container takes),
#    both columns counted where the bytes arrive:
#   host -> container: the host sends SIZE_MB MiB to 127.0.0.1:PORT and
#     half-closes; the container's `nc -l -e dd of=/dev/null bs=1M
#     iflag=fullblock` (busybox) reads them and answers its record count
#     over the same connection; the time runs from connect to that answer
#     (the rate delivered into the container, not what the host's send
#     buffers or the proxy took in);
#   container -> host: the host connects to 127.0.0.1:PORT and reads
#     SIZE_MB MiB that the container's `nc -l -e dd if=/dev/zero` writes,
#     until end of file; the time runs from connect to the last byte. The
#     host keeps its own side open: pasta 2023-03 (Debian 12's passt) cuts
#     a connection whose client half-closed early, so a reader that closes
#     its input at once (`nc </dev/null`) got short reads through pasta
#     (not through the proxies), which this version no longer measures.
# The host's side is bench/port_client.py (python3, 1 MiB buffers); a
# transfer that did not deliver every byte is reported ("short ...").
# Paths: berth --network slirp4netns (its default port handler, berth's
# port proxy, as rootless), berth --network pasta (pasta's own forwarding),
# podman 4.3 --network slirp4netns (its default port handler, rootlessport,
# as its rootless path uses), and no-proxy-loopback: the same servers
# on the host's loopback, what the tools reach with nothing in between
# (the distance to it is what a proxy costs). Measured interleaved, REPEAT rounds, medians and the
# ratios to podman printed.
# Everything runs in a private mount and network namespace this script
# makes (loopback, plus a veth pair with a default route that pasta needs
# to copy an address from): the host's interfaces and /run/netns are
# never touched.
# Usage: bench/rootless.sh   (BERTH=path/to/berth; SIZE_MB=256 REPEAT=5
# RUNS=30 GAP=1.5 (section 1 again with GAP idle seconds before each run;
# 0: not); SKIP_RUN=1 or SKIP_NET=1 leave a section out)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
SIZE_MB=${SIZE_MB:-256}
REPEAT=${REPEAT:-5}
RUNS=${RUNS:-30}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  cargo build --release -q -p berth-cli
  BERTH=$PWD/target/x86_64-unknown-linux-gnu/release/berth
  [ -x "$BERTH" ] || BERTH=$PWD/target/release/berth
fi
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for c in busybox unshare ip slirp4netns hyperfine setpriv useradd newuidmap python3; do
  command -v $c >/dev/null || { echo "needs $c (apt-get install busybox-static util-linux iproute2 slirp4netns hyperfine passwd uidmap)"; exit 1; }
done

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export BERTH BERTH_BENCH_INNER=1 SIZE_MB REPEAT RUNS GAP SKIP_RUN SKIP_NET
  exec unshare -m -n --propagation private "$0" "$@"
fi
ip link set lo up
ip link add umb0 type veth peer name umb1
ip addr add 192.0.2.1/24 dev umb0
ip link set umb0 up
ip link set umb1 up
ip route add default via 192.0.2.254 dev umb0
# podman keeps its netns pins in /run/netns: private to this mount ns.
mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
echo "berth binary: $BERTH"
echo "kernel $(uname -r), $(nproc) cpus; $SIZE_MB MiB per transfer, $REPEAT rounds; load: $(cut -d" " -f1-3 /proc/loadavg)"

T=$(mktemp -d /tmp/berth-umbench-XXXXXX)
CG=/berth-umbench-$$
PCG=$CG-podman
B=("$BERTH" --root "$T/berth" --runroot "$T/berth-run" --cgroup-parent "$CG")
P=(podman --root "$T/podman" --runroot "$T/podman-run" --cgroup-manager cgroupfs
   --events-backend none --storage-driver vfs --runtime runc)
ULIMITS=(--ulimit nproc=1024:1024 --ulimit nofile=1024:1024)
U=berthbench$$
UHOME=$T/home URUN=$T/run
as_user() { "$T/as-user" "$@"; }
cleanup() {
  if id "$U" >/dev/null 2>&1; then
    as_user "$BERTH" ps -aq --no-trunc 2>/dev/null | xargs -r "$T/as-user" "$BERTH" rm -f >/dev/null 2>&1 || true
    as_user podman rm -af -t 0 >/dev/null 2>&1 || true
    as_user podman system reset -f >/dev/null 2>&1 || true
    # Both pause processes stay until `system migrate` (or a kill).
    as_user "$BERTH" system migrate >/dev/null 2>&1 || true
    pp=$(cat "$URUN/libpod/tmp/pause.pid" 2>/dev/null || true)
    [ -n "$pp" ] && kill "$pp" 2>/dev/null || true
    sleep 2
    userdel "$U" >/dev/null 2>&1 || true
  fi
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${B[@]}" rm -f >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
  fi
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    for g in "$CG" "$PCG"; do
      [ -d "$h$g" ] && find "$h$g" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done
  rm -rf "$T"
}
trap 'kill ${NP_SINK:-} ${NP_SOURCE:-} 2>/dev/null; cleanup' EXIT

busybox_rootfs_tar "$T/rootfs" "$T/bb.tar"
chmod 755 "$T"; chmod 644 "$T/bb.tar"

# ---------------------------------------------------------------- 1. run --rm
if [ -z "${SKIP_RUN:-}" ]; then
  useradd -M -d "$UHOME" -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$U"
  # A range far above real users' and berth's own (unique per run).
  start=$((2100000000 + ($$ % 1000) * 65536))
  usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$U"
  mkdir -p "$UHOME" "$URUN"
  chown "$U:$U" "$UHOME" "$URUN"; chmod 700 "$URUN"
  printf '%s\n' '#!/bin/sh' \
    "exec setpriv --reuid=$U --regid=$U --init-groups -- env -i HOME=$UHOME USER=$U LOGNAME=$U PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR=$URUN \"\$@\"" >"$T/as-user"
  chmod 755 "$T/as-user"
  as_user "$BERTH" import "$T/bb.tar" localhost/bb:1 >/dev/null
  as_user "$BERTH" info | grep -E '"(rootless|graphDriverName|networkDriver)"'
  PO="podman --runtime runc --cgroup-manager cgroupfs --events-backend file"
  as_user $PO import "$T/bb.tar" localhost/bb:1 >/dev/null
  BR="$T/as-user $BERTH run --rm --network none localhost/bb:1 true"
  PR="$T/as-user $PO run --rm --network none localhost/bb:1 true"
  $BR && $PR || { echo "rootless run --rm fails: see above"; exit 1; }
  report() { # JSON WHAT
    python3 -c '
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
bm, pm = r["berth-rootless"]["median"], r["podman-rootless"]["median"]
print(f"rootless run --rm{sys.argv[2]}: berth {bm*1000:.1f} ms, podman {pm*1000:.1f} ms (medians): {bm/pm:.2f}x (target <= 0.20x)")
' "$1" "$2"
  }
  hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$T/run.json" -n berth-rootless "$BR" -n podman-rootless "$PR"
  report "$T/run.json" ""
  # A user's commands come with pauses between them: GAP seconds (untimed)
  # before each run (an engine whose pause process ended while idle makes
  # and maps a new user namespace then). GAP=0 leaves this out.
  GAP=${GAP:-1.5}
  if [ "$GAP" != 0 ]; then
    hyperfine -N --warmup 1 --runs "$RUNS" --prepare "sleep $GAP" --export-json "$T/run-gap.json" \
      -n berth-rootless "$BR" -n podman-rootless "$PR"
    report "$T/run-gap.json" " after ${GAP} s idle"
  fi
fi
[ -n "${SKIP_NET:-}" ] && exit 0

# ---------------------------------------------------------------- 2. network
"${B[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null

# Each path: a sink container (host -> container) and a source container
# (container -> host) with their published ports.
SINK="while :; do nc -l -p 5001 -e sh -c 'dd of=/dev/null bs=1048576 iflag=fullblock 2>&1'; done"
SOURCE="while :; do nc -l -p 5002 -e dd if=/dev/zero bs=1048576 count=$SIZE_MB; done"
names=() ; sinks=() ; sources=()
port=30000
start_path() { # NAME ENGINE-CMD... -- RUN-FLAGS...
  local name=$1; shift
  local eng=() ; while [ "$1" != -- ]; do eng+=("$1"); shift; done; shift
  local p1=$((port + 1)) p2=$((port + 2)); port=$((port + 10))
  "${eng[@]}" run -d "$@" -p "$p1:5001" -p "$p2:5002" localhost/bb:1 sh -c "$SINK & $SOURCE" >/dev/null \
    || { echo "$name: does not run here, left out"; return 0; }
  names+=("$name"); sinks+=("$p1"); sources+=("$p2")
}
start_path berth-slirp4netns "${B[@]}" -- --network slirp4netns
if command -v pasta >/dev/null; then
  start_path berth-pasta "${B[@]}" -- --network pasta
fi
if command -v podman >/dev/null; then
  "${P[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null
  start_path podman-slirp4netns "${P[@]}" -- --network slirp4netns --cgroup-parent "$PCG" "${ULIMITS[@]}"
fi
# The ceiling of the tools themselves: the same two servers on this
# namespace's loopback, no container and no proxy in between.
busybox nc -ll -p 30901 -e sh -c 'dd of=/dev/null bs=1048576 iflag=fullblock 2>&1' 2>/dev/null &
NP_SINK=$!
busybox nc -ll -p 30902 -e dd if=/dev/zero bs=1048576 count="$SIZE_MB" 2>/dev/null &
NP_SOURCE=$!
names+=(no-proxy-loopback); sinks+=(30901); sources+=(30902)
sleep 2

# MB/s of one transfer (counted where the bytes arrive; see the top).
to_container() { python3 bench/port_client.py send "$1" "$SIZE_MB" || true; }
from_container() { python3 bench/port_client.py recv "$1" "$SIZE_MB" || true; }

declare -A IN OUT
for r in $(seq "$REPEAT"); do
  for i in "${!names[@]}"; do
    IN[$i]+="$(to_container "${sinks[$i]}") "
    OUT[$i]+="$(from_container "${sources[$i]}") "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ref_in="" ; ref_out=""
for i in "${!names[@]}"; do
  [ "${names[$i]}" = podman-slirp4netns ] || continue
  ref_in=$(echo "${IN[$i]}" | median); ref_out=$(echo "${OUT[$i]}" | median)
done
printf '%-20s %16s %16s %10s %10s\n' path "host->ctr MB/s" "ctr->host MB/s" "ratio in" "ratio out"
for i in "${!names[@]}"; do
  mi=$(echo "${IN[$i]}" | median); mo=$(echo "${OUT[$i]}" | median)
  ri=- ; ro=-
  if [ -n "$ref_in" ]; then
    ri=$(awk -v a="$mi" -v b="$ref_in" 'BEGIN {printf "%.2fx", a / b}')
    ro=$(awk -v a="$mo" -v b="$ref_out" 'BEGIN {printf "%.2fx", a / b}')
  fi
  printf '%-20s %16s %16s %10s %10s\n' "${names[$i]}" "$mi" "$mo" "$ri" "$ro"
done
echo "ratios: to podman --network slirp4netns (>= 1.00x is the target); load: $(cut -d" " -f1-3 /proc/loadavg)"

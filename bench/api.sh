#!/usr/bin/env bash
# `docker run --rm IMAGE true` through three Docker Engine API services, by
# hand, as root (not in CI): berth's (`berth system service`), a private
# dockerd (its own containerd, data and exec roots) and podman's
# (`podman system service`), each on its own socket in a private temp dir;
# the same docker CLI drives all three. N rounds (default 20) after 3
# warm-up rounds, the order of the services shuffled every round (seeded:
# runs repeat) so that load on the machine hits all alike; wall-time
# median and p25 per service, and the ratios of berth's median to the
# others'. Target (issue 17): berth at or below 0.3x podman's service.
#
# Conditions (as bench/engine.sh): a private mount namespace with
# /sys/fs/cgroup/unified unmounted (crun and dockerd's runc see plain
# cgroup v1) and a private network namespace (loopback up); every
# container runs with --network none; /etc/docker is an empty tmpfs there
# (dockerd 20.10 writes its key.json into it). podman gets pinned ulimits
# (see bench/engine.sh).
# Usage: bench/api.sh [N]   (BERTH=path/to/berth picks a build; the
# service binary berth-service must sit next to it.)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-20}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  for c in target/x86_64-unknown-linux-gnu/release/berth target/release/berth \
           target/x86_64-unknown-linux-gnu/debug/berth target/debug/berth; do
    if [ -x "$c" ]; then BERTH=$PWD/$c; break; fi
  done
fi
[ -n "$BERTH" ] || { echo "build berth first: cargo build --release -p berth-cli --bins"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for t in docker unshare python3; do
  command -v "$t" >/dev/null || { echo "needs $t"; exit 1; }
done

if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export BERTH BERTH_BENCH_INNER=1
  exec unshare -m -n --propagation private "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
ip link set lo up
mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
echo "berth binary: $BERTH"
echo "kernel $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); private mount+net ns, cgroup v1"

T=$(mktemp -d /tmp/berth-bench-api-XXXXXX)
chmod 0711 "$T"
export BERTH_SUBUID_FILE=$T/subuid BERTH_SUBGID_FILE=$T/subgid
CG=/berth-bench-api-$$
B=("$BERTH" --root "$T/berth" --runroot "$T/berth-run" --cgroup-parent "$CG")
P=(podman --root "$T/podman" --runroot "$T/podman-run" --cgroup-manager cgroupfs
   --events-backend none --storage-driver overlay --runtime runc)
PIDS=()
# Pinned limits for every service's containers (podman's defaults fail in
# the OCI runtime under its lowered hard RLIMIT_NPROC: bench/engine.sh).
ULIMITS="${BENCH_ULIMITS:---ulimit nproc=1024:1024 --ulimit nofile=1024:1024}"

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${B[@]}" rm -f >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
  fi
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    for g in "$CG" "$CG-docker" "$CG-podman"; do
      [ -d "$h$g" ] && find "$h$g" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  done
  rm -rf "$T"
}
trap cleanup EXIT

wait_sock() { # wait_sock SOCK NAME LOG
  for _ in $(seq 300); do
    if DOCKER_HOST=unix://$1 docker version >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not answer on $1:"; tail -20 "$3"; exit 1
}

busybox_rootfs_tar "$T/rootfs" "$T/bb.tar"
"${B[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null
"${B[@]}" save -o "$T/bb-docker.tar" localhost/bb:1

socks=() names=()
# berth's service.
"${B[@]}" system service --time 0 "unix://$T/berth.sock" >"$T/berth.log" 2>&1 &
PIDS+=($!)
wait_sock "$T/berth.sock" berth "$T/berth.log"
socks+=("$T/berth.sock"); names+=(berth)

# A private dockerd.
if command -v dockerd >/dev/null; then
  mkdir -p /etc/docker && mount -t tmpfs -o size=1m,mode=0755 bench-etc-docker /etc/docker
  echo '{}' >"$T/daemon.json"
  dockerd --config-file="$T/daemon.json" --data-root="$T/docker" --exec-root="$T/docker-exec" \
    --pidfile="$T/docker.pid" --host="unix://$T/docker.sock" --bridge=none --iptables=false \
    --ip6tables=false --exec-opt=native.cgroupdriver=cgroupfs --cgroup-parent="$CG-docker" \
    >"$T/dockerd.log" 2>&1 &
  PIDS+=($!)
  wait_sock "$T/docker.sock" dockerd "$T/dockerd.log"
  DOCKER_HOST=unix://$T/docker.sock docker load -q -i "$T/bb-docker.tar" >/dev/null
  socks+=("$T/docker.sock"); names+=(dockerd)
else
  echo "dockerd not installed: left out"
fi

# podman's service.
if command -v podman >/dev/null; then
  "${P[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null
  "${P[@]}" system service --time 0 "unix://$T/podman.sock" >"$T/podman.log" 2>&1 &
  PIDS+=($!)
  wait_sock "$T/podman.sock" podman "$T/podman.log"
  socks+=("$T/podman.sock"); names+=(podman)
else
  echo "podman not installed: left out"
fi

for i in "${!socks[@]}"; do
  # shellcheck disable=SC2086
  if ! out=$(DOCKER_HOST=unix://${socks[$i]} docker run --rm --network none $ULIMITS localhost/bb:1 true 2>&1); then
    echo "${names[$i]}: docker run fails, left out: $out"
    [ "${names[$i]}" = podman ] && tail -5 "$T/podman.log"
    unset 'socks[i]' 'names[i]'
  fi
done

echo "== docker run --rm --network none $ULIMITS localhost/bb:1 true ($N rounds, interleaved) =="
specs=()
for i in "${!socks[@]}"; do specs+=("${names[$i]}=${socks[$i]}"); done
API_N=$N API_ERR=$T/run.err API_ULIMITS=$ULIMITS python3 - "${specs[@]}" <<'EOF'
import os, random, sys, time
variants = [s.split("=", 1) for s in sys.argv[1:]]
n, warmup = int(os.environ["API_N"]), 3
devnull = os.open("/dev/null", os.O_RDWR)
err = os.open(os.environ["API_ERR"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
argv = ["/usr/bin/docker", "run", "--rm", "--network", "none"] + os.environ["API_ULIMITS"].split() + ["localhost/bb:1", "true"]
res = {name: [] for name, _ in variants}
for i in range(warmup + n):
    order = list(variants)
    random.Random(i).shuffle(order)
    for name, sock in order:
        env = dict(os.environ, DOCKER_HOST="unix://" + sock)
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                           (os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, err, 2)])
        _, status = os.waitpid(pid, 0)
        wall = (time.perf_counter() - t0) * 1e3
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("%s failed: %s" % (name, open(os.environ["API_ERR"]).read()[-2000:]))
        if i >= warmup:
            res[name].append(wall)

def q(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

med = {k: q(v, 0.5) for k, v in res.items()}
for name, _ in variants:
    print(f"{name:8} median {med[name]:8.1f} ms  p25 {q(res[name], 0.25):8.1f} ms")
b = med.get("berth")
for other in ("dockerd", "podman"):
    if b and other in med:
        print(f"ratio berth/{other}: {b / med[other]:.2f}x")
if b and "podman" in med:
    print("target (<= 0.3x podman's service):", "met" if b / med["podman"] <= 0.3 else "missed")
EOF

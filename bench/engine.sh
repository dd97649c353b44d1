#!/usr/bin/env bash
# berth engine vs podman (crun and runc), by hand, as root (not in CI):
#   1. `run --rm IMAGE true` wall time (hyperfine, one run of all: berth,
#      podman with crun and runc);
#   1b. the cost of a container's own user namespace (issue 19):
#      `run --rm --userns=auto` against `run --rm --userns=host`, USERNS_N
#      (default 40) rounds interleaved in a shuffled order (wall and CPU
#      medians, ratio auto/host), and memory per detached `sleep`
#      container in both modes (PSS of the monitor + the container's
#      processes, host mounts and processes per container); BERTH_B=path
#      adds a second build to the same interleaved run (before/after);
#   2. host memory per detached container: the berth monitor vs conmon,
#      with N `sleep` containers (PSS summed from /proc/PID/smaps_rollup,
#      RSS averaged). Idle, berth's monitor is the small `berth-monitor`
#      (built next to `berth`); BERTH_MONITOR= (empty) measures the full
#      monitor waiting itself.
#   3. teardown (issue 6): TEARDOWN_N (default 200) detached `sleep`
#      containers, then the wall time of one `berth rm -f ID...` of all of
#      them, and of `podman rm -af -t 0` for as many podman containers.
# Both sides run with --network none: the host's network is left alone.
# NETWORK=bridge: the whole benchmark runs in a private network namespace
# as well (loopback up), and `run --rm` uses each engine's default bridge
# network there (berth's `berth` network, podman's `podman`, CNI or netavark):
# bridges, veths and firewall rules land in that namespace only.
#
# Conditions: crun 1.8 refuses the host's hybrid cgroup layout ("cgroups
# in hybrid mode not supported"), so, as bench/lifecycle.sh does, the
# whole benchmark runs in a private mount namespace where
# /sys/fs/cgroup/unified is unmounted (plain cgroup v1 for everyone); the
# host's mounts are untouched. podman lowers the hard RLIMIT_NPROC of its
# children to 32768 and asks the OCI runtime for the limits it was given,
# so pinning the host's hard limits (higher) makes crun and runc fail with
# "setrlimit RLIMIT_NPROC: Operation not permitted": podman gets
# --ulimit nproc=1024:1024 --ulimit nofile=1024:1024.
# Usage: bench/engine.sh [N]   (BERTH=path/to/berth to pick a build;
# BENCH_ULIMITS overrides the --ulimit flags given to podman;
# TEARDOWN_N=0 skips the teardown section, SKIP_RUN=1 the first three,
# SKIP_USERNS=1 section 1b, USERNS_ONLY=1 all but section 1b.)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${1:-10}
TEARDOWN_N=${TEARDOWN_N:-200}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  for c in target/x86_64-unknown-linux-gnu/release/berth target/x86_64-unknown-linux-gnu/debug/berth; do
    if [ -x "$c" ]; then BERTH=$PWD/$c; break; fi
  done
fi
[ -n "$BERTH" ] || { echo "build berth first: cargo build --release -p berth-cli"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
command -v unshare >/dev/null || { echo "needs unshare (apt-get install util-linux)"; exit 1; }

# Into a private mount namespace, /sys/fs/cgroup/unified unmounted there.
if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  export BERTH BERTH_B BERTH_BENCH_INNER=1 TEARDOWN_N NETWORK
  if [ "${NETWORK:-none}" = bridge ]; then
    exec unshare -m -n --propagation private "$0" "$@"
  fi
  exec unshare -m --propagation private "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
NET_FLAG="--network none"
if [ "${NETWORK:-none}" = bridge ]; then
  ip link set lo up
  NET_FLAG=""
  # podman keeps its netns pins in /run/netns: private to this mount ns.
  mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
  echo "private network namespace; run --rm on each engine's default bridge network"
fi
echo "berth binary: $BERTH"
echo "kernel $(uname -r), $(nproc) cpus; private mount ns, /sys/fs/cgroup/unified unmounted (cgroup v1)"

T=$(mktemp -d /tmp/berth-bench-XXXXXX)
# Searchable by the ids of a container's user namespace (--userns=auto).
chmod 0711 "$T"
# Ranges of --userns=auto containers come from subordinate id files of the
# benchmark's (the host's /etc/subuid is left alone), whatever the default.
export BERTH_SUBUID_FILE=$T/subuid BERTH_SUBGID_FILE=$T/subgid
CG=/berth-bench-$$
PCG=$CG-podman
B=("$BERTH" --root "$T/berth" --runroot "$T/berth-run" --cgroup-parent "$CG")
P=(podman --root "$T/podman" --runroot "$T/podman-run" --cgroup-manager cgroupfs
   --events-backend none --storage-driver overlay)
# podman's containers get their own cgroup parent, removed at the end.
PRUN=(run --network none --cgroup-parent "$PCG")
# Pinned limits: podman's defaults (and the host's hard limits) fail in
# the OCI runtime under podman's lowered hard RLIMIT_NPROC (see the top).
read -r -a ULIMITS <<<"${BENCH_ULIMITS:---ulimit nproc=1024:1024 --ulimit nofile=1024:1024}"

# BERTH_B (section 1b): a second build with its own root.
BB=()
[ -n "${BERTH_B:-}" ] && BB=("$BERTH_B" --root "$T/berth-b" --runroot "$T/berth-b-run" --cgroup-parent "$CG")

cleanup() {
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${B[@]}" rm -f >/dev/null 2>&1 || true
  if [ "${#BB[@]}" -gt 0 ]; then
    "${BB[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r "${BB[@]}" rm -f >/dev/null 2>&1 || true
  fi
  if command -v podman >/dev/null; then
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
  fi
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h$CG" ] && find "$h$CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h$PCG" ] && find "$h$PCG" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # crun writes below /sys/fs/cgroup/unified once it is unmounted: then a
  # plain dir of the host's /sys/fs/cgroup tmpfs (hidden under the
  # cgroup2 mount on the host), removed here, inside.
  if ! mountpoint -q /sys/fs/cgroup/unified; then
    rm -rf "/sys/fs/cgroup/unified$CG" "/sys/fs/cgroup/unified$PCG"
  fi
  rm -rf "$T"
}
trap cleanup EXIT

# A busybox image from the host's busybox-static, no network.
busybox_rootfs_tar "$T/rootfs" "$T/bb.tar"
"${B[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null

cmds=("${B[*]} run --rm $NET_FLAG localhost/bb:1 true")
names=(berth)
if [ -n "${USERNS_ONLY:-}" ]; then
  SKIP_RUN=1 TEARDOWN_N=0
elif command -v podman >/dev/null; then
  "${P[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null 2>"$T/podman-import.err" || { cat "$T/podman-import.err"; exit 1; }
  for rt in crun runc; do
    c="${P[*]} run $NET_FLAG --cgroup-parent $PCG --rm ${ULIMITS[*]} --runtime $rt localhost/bb:1 true"
    if err=$($c 2>&1); then
      cmds+=("$c"); names+=("podman+$rt")
    else
      echo "podman with $rt does not run here, left out: $err"
    fi
  done
else
  echo "podman not installed: berth alone"
fi

if [ -z "${SKIP_RUN:-}" ]; then
echo "== run --rm true =="
hyperfine -N --warmup 3 --runs 20 --export-json "$T/run.json" "${cmds[@]}" >/dev/null
python3 - "$T/run.json" "${names[@]}" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = res[0]["mean"]
for n, r in zip(names, res):
    print(f"{n:12} mean {r['mean']*1000:8.1f} ms  (+- {r['stddev']*1000:.1f})  ratio to berth {r['mean']/base:5.2f}")
EOF

fi

pss_of() { # sum of PSS (kB) of the given pids
  sum_of Pss "$@"
}

sum_of() { # sum of a smaps_rollup field (kB) of the given pids
  local field=$1 sum=0 p v
  shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1==f{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

pids_matching() { # pids whose command line contains both words
  local f c
  for f in /proc/[0-9]*/cmdline; do
    c=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
    case "$c" in *"$1"*"$2"*) f=${f#/proc/}; echo "${f%/cmdline}" ;; esac
  done
}

if [ -z "${SKIP_USERNS:-}" ] && { [ -z "${SKIP_RUN:-}" ] || [ -n "${USERNS_ONLY:-}" ]; }; then
  # Section 1b (its own file): uses B, T, CG, NET_FLAG, N and the helpers
  # above.
  . bench/engine_userns.sh
fi

if [ -z "${SKIP_RUN:-}" ]; then
echo "== memory of $N detached sleep containers =="
for i in $(seq "$N"); do "${B[@]}" run -d --network none localhost/bb:1 sleep 1000 >/dev/null; done
sleep 1
mons=$(pids_matching "$T/berth" container-monitor)
berth_kb=$(pss_of $mons)
berth_rss=$(sum_of Rss $mons)
echo "berth monitors: $(echo $mons | wc -w) processes, PSS total ${berth_kb} kB, $((berth_kb / N)) kB per container, RSS $((berth_rss / N)) kB per monitor"
"${B[@]}" ps -aq --no-trunc | xargs -r "${B[@]}" rm -f >/dev/null

if [ "${#names[@]}" -gt 1 ]; then
  rt=${names[1]#podman+}
  for i in $(seq "$N"); do
    "${P[@]}" "${PRUN[@]}" -d "${ULIMITS[@]}" --runtime "$rt" localhost/bb:1 sleep 1000 >/dev/null
  done
  sleep 1
  cons=$(pids_matching conmon "$T/podman")
  conmon_kb=$(pss_of $cons)
  conmon_rss=$(sum_of Rss $cons)
  echo "conmon:         $(echo $cons | wc -w) processes, PSS total ${conmon_kb} kB, $((conmon_kb / N)) kB per container, RSS $((conmon_rss / N)) kB per conmon"
  if [ "$conmon_kb" -gt 0 ]; then
    python3 -c "print(f'monitor/conmon memory ratio: {$berth_kb/$conmon_kb:.2f}')"
  fi
fi

if [ "${#names[@]}" -gt 1 ]; then
  "${P[@]}" rm -af -t 0 >/dev/null
fi
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

if [ "$TEARDOWN_N" -gt 0 ]; then
  echo "== teardown: remove $TEARDOWN_N running detached sleep containers in one command =="
  for i in $(seq "$TEARDOWN_N"); do "${B[@]}" run -d --network none localhost/bb:1 sleep 1000 >/dev/null; done
  ids=$("${B[@]}" ps -q --no-trunc)
  [ "$(echo "$ids" | wc -l)" = "$TEARDOWN_N" ] || { echo "berth: not all $TEARDOWN_N containers run"; exit 1; }
  t0=$(now_ms)
  # shellcheck disable=SC2086
  "${B[@]}" rm -f $ids >/dev/null
  berth_ms=$(($(now_ms) - t0))
  left=$("${B[@]}" ps -aq | wc -l)
  echo "berth rm -f <$TEARDOWN_N ids>:       ${berth_ms} ms ($((berth_ms * 1000 / TEARDOWN_N)) us per container, $left left)"
  for rt in "${names[@]:1}"; do
    rt=${rt#podman+}
    for i in $(seq "$TEARDOWN_N"); do
      "${P[@]}" "${PRUN[@]}" -d "${ULIMITS[@]}" --runtime "$rt" localhost/bb:1 sleep 1000 >/dev/null
    done
    t0=$(now_ms)
    "${P[@]}" rm -af -t 0 >/dev/null
    p_ms=$(($(now_ms) - t0))
    left=$("${P[@]}" ps -aq | wc -l)
    echo "podman+$rt rm -af -t 0 ($TEARDOWN_N): ${p_ms} ms ($((p_ms * 1000 / TEARDOWN_N)) us per container, $left left); podman/berth $(python3 -c "print(f'{$p_ms/max($berth_ms,1):.2f}')")"
  done
fi

#!/usr/bin/env bash
# berth engine vs podman (crun and runc), by hand, as root (not in CI):
#   1. `run --rm IMAGE true` wall time (hyperfine, one run of all three);
#   2. host memory per detached container: the berth monitor vs conmon,
#      with N `sleep` containers (PSS summed from /proc/PID/smaps_rollup,
#      RSS averaged). Idle, berth's monitor is the small `berth-monitor`
#      (built next to `berth`); BERTH_MONITOR= (empty) measures the full
#      monitor waiting itself.
# Both sides run with --network none: the host's network is left alone.
# Usage: bench/engine.sh [N]   (BERTH=path/to/berth to pick a build;
# BENCH_ULIMITS overrides the --ulimit flags given to podman.)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
BERTH=${BERTH:-}
if [ -z "$BERTH" ]; then
  for c in target/x86_64-unknown-linux-gnu/release/berth target/x86_64-unknown-linux-gnu/debug/berth; do
    if [ -x "$c" ]; then BERTH=$PWD/$c; break; fi
  done
fi
[ -n "$BERTH" ] || { echo "build berth first: cargo build --release -p berth-cli"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
echo "berth binary: $BERTH"

T=$(mktemp -d /tmp/berth-bench-XXXXXX)
CG=/berth-bench-$$
B=("$BERTH" --root "$T/berth" --runroot "$T/berth-run" --cgroup-parent "$CG")
P=(podman --root "$T/podman" --runroot "$T/podman-run" --cgroup-manager cgroupfs
   --events-backend none --storage-driver overlay)
# podman raises RLIMIT_NOFILE/NPROC by default, which needs CAP_SYS_RESOURCE;
# pin them to ours so it also runs in a restricted sandbox.
read -r -a ULIMITS <<<"${BENCH_ULIMITS:---ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=$(ulimit -Hu):$(ulimit -Hu)}"

cleanup() {
  "${B[@]}" ps -aq --no-trunc 2>/dev/null | xargs -r -n1 "${B[@]}" rm -f >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then
    "${P[@]}" rm -af -t 0 >/dev/null 2>&1 || true
    "${P[@]}" system reset -f >/dev/null 2>&1 || true
  fi
  grep -F "$T" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$h$CG" ] && rmdir "$h$CG" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT

# A busybox image from the host's busybox-static, no network.
R=$T/rootfs
mkdir -p "$R"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$R/bin/"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$T/bb.tar" .
"${B[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null

cmds=("${B[*]} run --rm --network none localhost/bb:1 true")
names=(berth)
if command -v podman >/dev/null; then
  "${P[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null
  for rt in crun runc; do
    c="${P[*]} run --rm --network none ${ULIMITS[*]} --runtime $rt localhost/bb:1 true"
    if err=$($c 2>&1); then
      cmds+=("$c"); names+=("podman+$rt")
    else
      echo "podman with $rt does not run here, left out: $err"
    fi
  done
else
  echo "podman not installed: berth alone"
fi

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
    c=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    case "$c" in *"$1"*"$2"*) f=${f#/proc/}; echo "${f%/cmdline}" ;; esac
  done
}

echo "== memory of $N detached sleep containers =="
for i in $(seq "$N"); do "${B[@]}" run -d --network none localhost/bb:1 sleep 1000 >/dev/null; done
sleep 1
mons=$(pids_matching "$T/berth" container-monitor)
berth_kb=$(pss_of $mons)
berth_rss=$(sum_of Rss $mons)
echo "berth monitors: $(echo $mons | wc -w) processes, PSS total ${berth_kb} kB, $((berth_kb / N)) kB per container, RSS $((berth_rss / N)) kB per monitor"
"${B[@]}" ps -aq --no-trunc | xargs -r -n1 "${B[@]}" rm -f >/dev/null

if [ "${#names[@]}" -gt 1 ]; then
  rt=${names[1]#podman+}
  for i in $(seq "$N"); do
    "${P[@]}" run -d --network none "${ULIMITS[@]}" --runtime "$rt" localhost/bb:1 sleep 1000 >/dev/null
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

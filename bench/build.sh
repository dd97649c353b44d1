#!/usr/bin/env bash
# Build benchmark (issue 16): a multi-stage project with real work in its
# RUN steps (two independent stages each generate thousands of files and
# hash them, a third archives and hashes both, the last takes the archive
# and a small source dir) built by berth build, buildah bud --layers and
# podman build, interleaved in one run (berth, buildah, podman, berth, ...)
# so that load hits all alike. Per tool and run:
#   cold      empty build cache (fresh storage; the base image imported)
#   unchanged the same build again
#   one-file  after changing one file of the source dir
# Prints the median wall time of each, and the ratios to berth. Run as
# root:  bench/build.sh [path/to/berth]     (RUNS=3, FILES=3000 by default)
# Every tool builds with no network for its RUN steps and with runc where
# it has a choice (crun refuses this machine's hybrid cgroup layout).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

BERTH=${1:-}
if [ -z "$BERTH" ]; then
    cargo build --release -p berth-cli --bins
    BERTH=$PWD/target/x86_64-unknown-linux-gnu/release/berth
fi
RUNS=${RUNS:-3}
FILES=${FILES:-3000}
for t in buildah podman; do
    command -v "$t" >/dev/null || { echo "SKIP: $t is not installed"; exit 0; }
done

W=$(mktemp -d /var/tmp/berth-bench-build-XXXXXX)
cleanup() {
    for m in $(awk -v w="$W" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

busybox_rootfs_tar "$W/rootfs" "$W/rootfs.tar" >/dev/null
CTX=$W/ctx
mkdir -p "$CTX/src"
for i in $(seq 1 20); do echo "source $i" >"$CTX/src/s$i.txt"; done
cat >"$CTX/Containerfile" <<CF
FROM localhost/bb:1 AS gen-a
RUN mkdir /a && cd /a && for i in \$(seq 1 $FILES); do seq \$i \$((i + 200)) > f\$i; done && md5sum f* > /a.md5
FROM localhost/bb:1 AS gen-b
RUN mkdir /b && cd /b && for i in \$(seq 1 $FILES); do seq \$((i * 3)) \$((i * 3 + 200)) > g\$i; done && sha256sum g* > /b.sha
FROM localhost/bb:1 AS pack
COPY --from=gen-a /a /data/a
COPY --from=gen-b /b /data/b
RUN tar czf /data.tgz /data && sha256sum /data.tgz > /data.sum && find /data -type f | wc -l > /count
FROM localhost/bb:1
COPY --from=pack /data.tgz /data.sum /count /
COPY src/ /app/
RUN sha256sum /app/* > /app.sums
CF

# Each tool's storage, fresh for a cold build.
fresh() {
    case $1 in
    berth)
        rm -rf "$W/berth" "$W/berth-run"
        "$BERTH" --root "$W/berth" --runroot "$W/berth-run" import "$W/rootfs.tar" localhost/bb:1 >/dev/null ;;
    buildah | podman)
        for m in $(awk -v w="$W/$1" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
            umount -l "$m" 2>/dev/null || true
        done
        rm -rf "$W/$1" "$W/$1-run"
        podman --root "$W/$1" --runroot "$W/$1-run" --cgroup-manager cgroupfs \
            import "$W/rootfs.tar" localhost/bb:1 >/dev/null ;;
    esac
}
build() {
    case $1 in
    berth) "$BERTH" --root "$W/berth" --runroot "$W/berth-run" build -q -t localhost/out:1 "$CTX" ;;
    buildah) buildah --root "$W/buildah" --runroot "$W/buildah-run" bud --layers --network none \
        --runtime runc -q -t localhost/out:1 "$CTX" ;;
    podman) podman --root "$W/podman" --runroot "$W/podman-run" --cgroup-manager cgroupfs \
        --runtime runc build --network none -q -t localhost/out:1 "$CTX" ;;
    esac
}
now() { date +%s.%N; }
timed() {
    local t0 t1
    t0=$(now)
    build "$1" >"$W/out.log" 2>&1 || { echo "$1 build failed:"; tail -20 "$W/out.log"; exit 1; }
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

TOOLS="berth buildah podman"
declare -A T
for r in $(seq 1 "$RUNS"); do
    for tool in $TOOLS; do
        for i in $(seq 1 20); do echo "source $i" >"$CTX/src/s$i.txt"; done
        fresh "$tool"
        T[$tool,cold]+="$(timed "$tool") "
        T[$tool,unchanged]+="$(timed "$tool") "
        echo "changed in run $r" >"$CTX/src/s7.txt"
        T[$tool,onefile]+="$(timed "$tool") "
        echo "run $r $tool: cold/unchanged/one-file ${T[$tool,cold]##* } done" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf '\n%d files per generating stage, %d runs, median wall seconds\n' "$FILES" "$RUNS"
printf '%-8s %10s %10s %10s\n' tool cold unchanged one-file
declare -A M
for tool in $TOOLS; do
    for k in cold unchanged onefile; do M[$tool,$k]=$(echo "${T[$tool,$k]}" | median); done
    printf '%-8s %10.2f %10.2f %10.2f\n' "$tool" "${M[$tool,cold]}" "${M[$tool,unchanged]}" "${M[$tool,onefile]}"
done
echo
for tool in buildah podman; do
    for k in cold unchanged onefile; do
        printf 'berth/%s %-9s %6.2f\n' "$tool" "$k" "$(echo "${M[berth,$k]} / ${M[$tool,$k]}" | bc -l)"
    done
done
printf 'berth one-file/cold %6.3f (target <= 1/7 = 0.143)\n' "$(echo "${M[berth,onefile]} / ${M[berth,cold]}" | bc -l)"

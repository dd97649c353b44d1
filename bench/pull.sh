#!/usr/bin/env bash
# Pull + unpack benchmark: a Debian minbase rootfs (~100 MB, debootstrap
# --variant=minbase) is imported, pushed to a local docker-registry, then
# pulled and unpacked cold (empty store) and warm (image already present)
# by berth, podman, and skopeo+umoci, timed with hyperfine in one run.
# Prints mean times and ratios to berth. Run by hand as root:
#   bench/pull.sh [path/to/berth]
# LAYER=plain pushes the layer uncompressed (default: gzip).
# Needs: debootstrap docker-registry skopeo umoci podman hyperfine (installs
# the missing ones with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

BERTH=${1:-}
if [ -z "$BERTH" ]; then
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target-image} cargo build --release -p berth-cli --bin berth
    BERTH=${CARGO_TARGET_DIR:-$PWD/target-image}/x86_64-unknown-linux-gnu/release/berth
fi
RUNS=${RUNS:-5}

need=()
for t in debootstrap docker-registry skopeo umoci podman hyperfine; do
    command -v "$t" >/dev/null || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

W=$(mktemp -d /var/tmp/berth-bench-XXXXXX)
REG_PID=
# Only this run's podman storage is touched (never `podman system reset`,
# which would also remove the host's podman networks).
podman_clean() {
    for m in $(awk -v w="$W/podman" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$W/podman" "$W/podman-run"
}
export -f podman_clean
cleanup() {
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    for m in "$W"/berth*/images/mounts/*; do [ -d "$m" ] && umount -l "$m" 2>/dev/null || true; done
    podman_clean
    rm -rf "$W"
}
trap cleanup EXIT

if [ -n "${ROOTFS_TAR:-}" ]; then
    # Reuse a rootfs tarball from an earlier run (ROOTFS_TAR=path).
    cp "$ROOTFS_TAR" "$W/rootfs.tar"
else
    echo "== building the Debian minbase rootfs (debootstrap)"
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    debootstrap --variant=minbase bookworm "$W/rootfs" "$MIRROR" >"$W/debootstrap.log" 2>&1 ||
        { tail -20 "$W/debootstrap.log"; exit 1; }
    # Drop the package caches debootstrap leaves behind.
    rm -rf "$W"/rootfs/var/cache/apt/archives/*.deb "$W"/rootfs/var/lib/apt/lists/*
    tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
    if [ -n "${SAVE_ROOTFS_TAR:-}" ]; then cp "$W/rootfs.tar" "$SAVE_ROOTFS_TAR"; fi
fi
ls -l "$W/rootfs.tar" | awk '{printf "rootfs tarball: %.0f MB\n", $5/1e6}'
# Registries serve gzip layers: the rootfs is pushed gzipped (berth import
# stores a layer as given). LAYER=plain pushes the uncompressed tar.
LAYER_TAR="$W/rootfs.tar"
if [ "${LAYER:-gzip}" = gzip ]; then
    gzip -c "$W/rootfs.tar" >"$W/rootfs.tar.gz"
    LAYER_TAR="$W/rootfs.tar.gz"
fi
ls -l "$LAYER_TAR" | awk '{printf "layer blob: %.0f MB\n", $5/1e6}'

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.2
done

IMG=127.0.0.1:$PORT/bench/minbase:1
"$BERTH" --root "$W/berth-src" import "$LAYER_TAR" localhost/minbase:1 >/dev/null
"$BERTH" --root "$W/berth-src" push -q localhost/minbase:1 "$IMG" >/dev/null
echo "pushed $IMG"

P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay"
B="$BERTH --root $W/berth"
SU="skopeo copy -q --src-tls-verify=false docker://$IMG oci:$W/oci:minbase && rm -rf $W/bundle && umoci unpack --image $W/oci:minbase $W/bundle"

# Warm: the image is already stored (re-pull checks the manifest, skips blobs).
hyperfine --shell bash --runs "$RUNS" --export-json "$W/hf.json" \
    -n berth-cold --prepare "rm -rf $W/berth" "$B pull -q $IMG" \
    -n podman-cold --prepare "W=$W podman_clean" "$P pull -q --tls-verify=false $IMG" \
    -n skopeo+umoci-cold --prepare "rm -rf $W/oci $W/bundle" "$SU" \
    -n berth-warm --prepare true "$B pull -q $IMG" \
    -n podman-warm --prepare true "$P pull -q --tls-verify=false $IMG" \
    -n skopeo+umoci-warm --prepare true "$SU"

python3 - "$W/hf.json" <<'PY'
import json, sys
res = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print()
print(f"{'case':<22}{'mean s':>9}{'min s':>9}{'mean/berth':>12}{'min/berth':>11}")
for mode in ("cold", "warm"):
    base = res[f"berth-{mode}"]
    for tool in ("berth", "podman", "skopeo+umoci"):
        r = res[f"{tool}-{mode}"]
        print(f"{tool + '-' + mode:<22}{r['mean']:>9.3f}{r['min']:>9.3f}"
              f"{r['mean'] / base['mean']:>11.2f}x{r['min'] / base['min']:>10.2f}x")
PY

#!/usr/bin/env bash
# busybox-bundle.sh DIR [ARGS...]: make an OCI bundle in DIR whose rootfs is
# Debian's static busybox (package busybox-static), with config.json from
# `berth-runtime spec`, not a terminal, running ARGS (default: sh -c 'echo hello').
set -euo pipefail
dir=${1:?usage: busybox-bundle.sh DIR [ARGS...]}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
rt=${BERTH_RUNTIME:-$here/target/x86_64-unknown-linux-gnu/release/berth-runtime}
bb=/bin/busybox
[ -x "$bb" ] || { echo "busybox-bundle: $bb missing: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$dir/rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,usr/bin,usr/sbin}
cp "$bb" "$dir/rootfs/bin/busybox"
for app in $("$bb" --list); do
    [ -e "$dir/rootfs/bin/$app" ] || ln -s busybox "$dir/rootfs/bin/$app"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
rm -f "$dir/config.json"
"$rt" spec --bundle "$dir"
args='["sh","-c","echo hello from berth; cat /proc/self/status | grep -E \"^(NSpid|CapEff)\""]'
if [ $# -gt 0 ]; then
    args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@")
fi
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
p, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
PY

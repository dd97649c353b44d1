#!/usr/bin/env bash
# cgv2-rootless-engine-test.sh: the berth ENGINE run by an unprivileged user
# on a pure cgroup v2 kernel (a qemu guest booted by qemu-cgv2.sh) with a
# cgroup subtree delegated to that user (cgroups(7) "Cgroup delegation").
# Checks, from the guest's root: `berth run -d --memory --cpus --pids-limit`
# as the user puts the container in a cgroup below the delegation with
# memory.max, cpu.max and pids.max set and its process in it; `berth info`
# names the delegation; `rm` removes the cgroup; and a user whose cgroup
# is not delegated gets the refusal naming the flag.
# Each guest check prints 'PASS: name' or 'FAIL: name: why'; the last line
# is 'cgv2-rootless-engine: P passed, F failed'. Exit status: the guest's
# (0 = all passed), 2 when a binary cannot be built or found.
# Env: BERTH_BIN (else cargo builds it), RUNTIME_BIN, QEMU_CGV2,
# CARGO_TARGET_DIR, TIMEOUT as for cgv2-rootless-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=cgv2-rootless-engine-test
# shellcheck source=scripts/cgv2-common.sh
. scripts/cgv2-common.sh
payload_runtime

berth=${BERTH_BIN:-}
if [ -z "$berth" ]; then
    cargo build -q -p berth-cli --bin berth >&2 || { echo "$NAME: cargo build failed" >&2; exit 2; }
    berth=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/debug/berth
fi
[ -x "$berth" ] || { echo "$NAME: no berth at $berth" >&2; exit 2; }
for t in newuidmap newgidmap; do
    command -v $t >/dev/null || { echo "$NAME: $t not installed (apt-get install uidmap)" >&2; exit 2; }
done
# berth is static: its debug info is most of its size, and the guest's
# initramfs is built and unpacked on every boot.
objcopy --strip-debug "$berth" "$work/payload/bin/berth" 2>/dev/null || cp "$berth" "$work/payload/bin/berth"
# setuid root, as installed (cp as root keeps the bit).
cp -p "$(command -v newuidmap)" "$(command -v newgidmap)" "$work/payload/bin/"
# A busybox image for `berth import`.
src="$work/rootfs"
mkdir -p "$src/bin" "$src/etc" "$src/tmp"
cp /bin/busybox "$src/bin/busybox"
for a in sh sleep cat; do ln -s busybox "$src/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$src/etc/passwd"
tar -C "$src" --numeric-owner -cf "$work/payload/busybox.tar" .
chmod 644 "$work/payload/busybox.tar"

# ---------------------------------------------------------------- guest side
cat >"$work/payload/guest.sh" <<'GUEST'
#!/bin/sh
# Runs inside the cgroup v2 guest (busybox sh), as root, cwd /payload.
. ./guest-lib.sh

# Two users with subordinate ranges, homes and XDG_RUNTIME_DIRs: u gets a
# delegated subtree, v does not.
add_user u 1000 100000
add_user v 1001 200000
# u's delegated subtree (as systemd's user@.service: the user owns the
# directory and its cgroup.procs, cgroup.subtree_control, cgroup.threads);
# its commands run in the leaf "session". v's commands run in a cgroup of
# root's.
D=$CG/user-1000
mkdir -p $D/session $CG/user-1001/session
echo "+memory +pids" >$D/cgroup.subtree_control
chown 1000:1000 $D $D/cgroup.procs $D/cgroup.subtree_control $D/cgroup.threads
chown -R 1000:1000 $D/session

if as u $D/session "berth import /payload/busybox.tar bb" >/tmp/import.err 2>&1; then pass import
else fail import "$(cat /tmp/import.err)"; fi
as v $CG/user-1001/session "berth import /payload/busybox.tar bb" >/tmp/import-v.err 2>&1 || fail import-v "$(cat /tmp/import-v.err)"

# --- limits applied in the delegated subtree
t=limits
if as u $D/session "berth run -d --name $t --network none --memory 64m --cpus 0.5 --pids-limit 20 bb sleep 600" >/tmp/$t.out 2>&1; then
  id=$(tail -n 1 /tmp/$t.out)
  C=$D/$id
  pid=$(as u $D/session "berth inspect $t" 2>/dev/null | sed -n 's/^ *"Pid": *\([0-9]*\).*/\1/p' | head -n 1)
  if [ ! -d $C ]; then fail $t "no cgroup $C: $(ls $D)"
  elif [ "$(cat $C/memory.max)" != 67108864 ]; then fail $t "memory.max=$(cat $C/memory.max 2>&1)"
  elif [ "$(cat $C/pids.max)" != 20 ]; then fail $t "pids.max=$(cat $C/pids.max 2>&1)"
  elif [ "$(cat $C/cpu.max)" != "50000 100000" ]; then fail $t "cpu.max=$(cat $C/cpu.max 2>&1)"
  elif ! grep -qx "$pid" $C/cgroup.procs; then fail $t "pid $pid not in $C: $(cat $C/cgroup.procs)"
  elif [ "$(stat -c %u /proc/$pid)" != 1000 ]; then fail $t "container process runs as uid $(stat -c %u /proc/$pid)"
  else pass $t; fi
  as u $D/session "berth info" >/tmp/info.out 2>&1
  if grep -q '"cgroupParent": "/user-1000"' /tmp/info.out; then pass info; else fail info "$(cat /tmp/info.out)"; fi
  as u $D/session "berth rm -f $t" >/tmp/$t.rm 2>&1 || fail $t-rm "$(cat /tmp/$t.rm)"
  if [ -d $C ]; then fail $t-rm "$C still exists"; else pass $t-rm; fi
else fail $t "run: $(cat /tmp/$t.out)"; fi

# --- no limits: the container still gets a cgroup in the delegation
# (seen from the guest's root: inside, its cgroup namespace shows "/")
t=plain
if as u $D/session "berth run -d --name $t --network none bb sleep 600" >/tmp/$t.out 2>&1; then
  pid=$(as u $D/session "berth inspect $t" 2>/dev/null | sed -n 's/^ *"Pid": *\([0-9]*\).*/\1/p' | head -n 1)
  if grep -q "^0::/user-1000/[0-9a-f]*\$" /proc/$pid/cgroup; then pass $t
  else fail $t "/proc/$pid/cgroup: $(cat /proc/$pid/cgroup 2>&1)"; fi
  as u $D/session "berth rm -f $t" >/dev/null 2>&1
else fail $t "run: $(cat /tmp/$t.out)"; fi

# --- not delegated: the refusal names the flag, nothing is created
t=not-delegated
if as v $CG/user-1001/session "berth run --rm --network none --memory 64m bb true" >/tmp/$t.err 2>&1; then fail $t "run succeeded"
elif ! grep -q -- "--memory needs a cgroup" /tmp/$t.err; then fail $t "error: $(cat /tmp/$t.err)"
elif [ -n "$(ls -d $CG/user-1001/*/ 2>/dev/null | grep -v session)" ]; then fail $t "created: $(ls $CG/user-1001)"
else pass $t; fi

summary cgv2-rootless-engine
GUEST

run_guest 'the rootless engine checks' 'sh ./guest.sh'

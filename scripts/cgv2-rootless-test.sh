#!/usr/bin/env bash
# cgv2-rootless-test.sh: berth-runtime run by an unprivileged user on a pure
# cgroup v2 kernel (a qemu guest booted by qemu-cgv2.sh) with a cgroup
# subtree delegated to that user (cgroups(7) "Cgroup delegation": the user
# owns the directory, its cgroup.procs, cgroup.subtree_control and
# cgroup.threads). Checks: a memory and a pids limit in the delegated
# subtree are applied (memory.max, pids.max, the process is in the cgroup
# and runs as the user), delete removes the cgroup; a cgroupsPath outside
# the delegation fails naming it and creates nothing.
# Each guest check prints 'PASS: name' or 'FAIL: name: why'; the last line
# is 'cgv2-rootless: P passed, F failed'. Exit status: the guest's (0 = all
# passed), 2 when the runtime cannot be built or found.
# Env: RUNTIME_BIN, QEMU_CGV2, CARGO_TARGET_DIR, TIMEOUT as for
# cgv2-runtime-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=cgv2-rootless-test
# shellcheck source=scripts/cgv2-common.sh
. scripts/cgv2-common.sh

# ---------------------------------------------------------------- guest side
cat >"$work/payload/guest.sh" <<'GUEST'
#!/bin/sh
# Runs inside the cgroup v2 guest (busybox sh), as root, cwd /payload.
CG=/sys/fs/cgroup
PASS=0 FAIL=0
pass() { echo "PASS: $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $1: $2"; FAIL=$((FAIL + 1)); }
[ -f $CG/cgroup.controllers ] || { echo "FAIL: setup: no cgroup2 at $CG"; exit 1; }

# The user, its home and XDG_RUNTIME_DIR.
U=1000
echo "u:x:$U:$U::/home/u:/bin/sh" >>/etc/passwd
echo "u:x:$U:" >>/etc/group
mkdir -p /home/u/run
chmod 755 /home/u; chmod 700 /home/u/run
# The delegated subtree; the user's shell lives in its leaf "session".
D=$CG/berth-user-$U
mkdir -p $D/session
echo "+memory +pids" >$D/cgroup.subtree_control
chown $U:$U $D $D/cgroup.procs $D/cgroup.subtree_control $D/cgroup.threads
chown -R $U:$U $D/session
# as_user CMD: CMD run by the user's shell in the delegated subtree (root
# moves the shell there first: the user may not write the root's
# cgroup.procs, which moving out of the root cgroup needs).
as_user() {
  sh -c 'echo $$ >"$1"/session/cgroup.procs && exec su -s /bin/sh u -c "$2"' as_user "$D" \
    "export HOME=/home/u XDG_RUNTIME_DIR=/home/u/run PATH=/payload/bin:/bin:/sbin:/usr/bin; $1"
}
RT="berth-runtime"

# bundle NAME CGROUPS_PATH: a rootless busybox bundle of the user's
# (user namespace mapping only uid/gid 1000, no network namespace) whose
# process sleeps; memory 32 MiB, pids 16.
bundle() {
  b=/home/u/b/$1
  mkdir -p $b/rootfs/bin $b/rootfs/proc $b/rootfs/sys $b/rootfs/dev $b/rootfs/tmp
  cp /bin/busybox $b/rootfs/bin/busybox
  for a in sh sleep cat; do ln -sf busybox $b/rootfs/bin/$a; done
  cat >$b/config.json <<EOF
{"ociVersion":"1.0.2",
 "process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["sleep","60"],
   "env":["PATH=/bin"],"cwd":"/","noNewPrivileges":true,
   "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}},
 "root":{"path":"rootfs","readonly":false},
 "hostname":"rl",
 "mounts":[
  {"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
  {"destination":"/sys","type":"none","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]}],
 "linux":{"cgroupsPath":"$2",
   "uidMappings":[{"containerID":0,"hostID":$U,"size":1}],
   "gidMappings":[{"containerID":0,"hostID":$U,"size":1}],
   "resources":{"devices":[{"allow":false,"access":"rwm"}],
     "memory":{"limit":33554432},"pids":{"limit":16}},
   "namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"user"}]}}
EOF
  chown -R $U:$U /home/u
}

# --- limits applied in the delegated subtree
t=delegated
bundle $t /berth-user-$U/$t
if as_user "$RT create --bundle /home/u/b/$t $t >/home/u/b/$t/out 2>&1 </dev/null && $RT start $t" >/tmp/$t.err 2>&1; then
  pid=$(as_user "$RT state $t" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
  owner=$(stat -c %u /proc/$pid 2>/dev/null)
  if [ "$(cat $D/$t/memory.max)" != 33554432 ]; then fail $t "memory.max=$(cat $D/$t/memory.max 2>&1)"
  elif [ "$(cat $D/$t/pids.max)" != 16 ]; then fail $t "pids.max=$(cat $D/$t/pids.max 2>&1)"
  elif ! grep -qx "$pid" $D/$t/cgroup.procs; then fail $t "pid $pid not in $D/$t: $(cat $D/$t/cgroup.procs)"
  elif [ "$owner" != $U ]; then fail $t "process runs as uid $owner"
  elif ! grep -q "^0::/berth-user-$U/$t\$" /proc/$pid/cgroup; then fail $t "/proc/$pid/cgroup: $(cat /proc/$pid/cgroup)"
  else pass $t; fi
  as_user "$RT delete --force $t" >/tmp/$t.del 2>&1 || fail $t-delete "$(cat /tmp/$t.del)"
  if [ -d $D/$t ]; then fail $t-delete "$D/$t still exists"; else pass $t-delete; fi
else fail $t "create/start: $(cat /tmp/$t.err /home/u/b/$t/out 2>&1)"; fi

# --- a cgroupsPath the user may not write: a clear error, nothing created
t=not-delegated
bundle $t /berth-other/$t
if as_user "$RT run --bundle /home/u/b/$t $t" >/tmp/$t.err 2>&1; then fail $t "run succeeded"
elif ! grep -q "rootless" /tmp/$t.err || ! grep -q "/berth-other/$t" /tmp/$t.err; then fail $t "error: $(cat /tmp/$t.err)"
elif [ -e $CG/berth-other ]; then fail $t "$CG/berth-other was created"
else pass $t; fi

echo "cgv2-rootless: $PASS passed, $FAIL failed"
[ $FAIL = 0 ] && [ $PASS -gt 0 ]
GUEST

echo "cgv2-rootless-test: running rootless berth-runtime checks in a cgroup v2 guest" >&2
start=$SECONDS
rc=0
WORK="$work/qemu" TIMEOUT=${TIMEOUT:-600} "$QEMU_CGV2" "$work/payload" 'sh ./guest.sh' >"$work/qemu.out" 2>&1 || rc=$?
if [ -f "$work/qemu/console.log" ]; then
    tr -d '\r' <"$work/qemu/console.log" | sed -n '/qemu-cgv2: ready at/,$p'
else
    cat "$work/qemu.out"
fi
grep '^qemu-cgv2:' "$work/qemu.out" >&2 || true
echo "cgv2-rootless-test: guest checks exit $rc after $((SECONDS - start))s" >&2
exit "$rc"

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
payload_runtime

# ---------------------------------------------------------------- guest side
cat >"$work/payload/guest.sh" <<'GUEST'
#!/bin/sh
# Runs inside the cgroup v2 guest (busybox sh), as root, cwd /payload.
. ./guest-lib.sh

# The user, its home and XDG_RUNTIME_DIR.
U=1000
add_user u $U
# The delegated subtree; the user's shell lives in its leaf "session".
D=$CG/berth-user-$U
mkdir -p $D/session
echo "+memory +pids" >$D/cgroup.subtree_control
chown $U:$U $D $D/cgroup.procs $D/cgroup.subtree_control $D/cgroup.threads
chown -R $U:$U $D/session
# as_user CMD: CMD run by the user's shell in the delegated subtree.
as_user() { as u "$D/session" "$1"; }
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

summary cgv2-rootless
GUEST

run_guest 'rootless berth-runtime checks' 'sh ./guest.sh'

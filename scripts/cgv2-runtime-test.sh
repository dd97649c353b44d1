#!/usr/bin/env bash
# cgv2-runtime-test.sh: end-to-end resource-control checks of berth-runtime
# on a pure cgroup v2 kernel (a qemu guest booted by qemu-cgv2.sh), since CI
# and dev hosts may be v1/hybrid. Covers: memory.max enforced (OOM kill and
# an `events` oom line), pids.max, cpu.weight from shares and cpu.max from
# quota, pause/resume via cgroup.freeze, the device eBPF filter, `update`,
# `ps`, the cgroup namespace view, and `delete` cleanup.
# Each guest check prints 'PASS: name' or 'FAIL: name: why'; the last line
# is 'cgv2-runtime: P passed, F failed'. Exit status: the guest's (0 = all
# passed), 2 when the runtime cannot be built or found.
# Env:
#   RUNTIME_BIN  an already built berth-runtime (else: cargo builds it)
#   QEMU_CGV2    the qemu helper (default: ../shared/tools/qemu-cgv2.sh beside the repository)
#   CARGO_TARGET_DIR  as usual (default target-cgsec)
#   TIMEOUT      guest timeout in seconds (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=cgv2-runtime-test
# shellcheck source=scripts/cgv2-common.sh
. scripts/cgv2-common.sh
payload_runtime

# ---------------------------------------------------------------- guest side
cat >"$work/payload/guest.sh" <<'GUEST'
#!/bin/sh
# Runs inside the cgroup v2 guest (busybox sh), as root, cwd /payload.
. ./guest-lib.sh
RT="berth-runtime --root /run/berth-state"
PARENT=berth-v2

# A rootfs template: busybox and its applets.
T=/tmp/rootfs-template
mkdir -p $T/bin $T/proc $T/sys $T/dev $T/tmp $T/etc
cp /bin/busybox $T/bin/busybox
for a in $(/bin/busybox --list); do [ -e $T/bin/$a ] || ln -s busybox $T/bin/$a; done
echo 'root:x:0:0:root:/:/bin/sh' >$T/etc/passwd

CAPS='"CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"'
# bundle NAME ARGS_JSON RESOURCES_JSON [CAPS] [NAMESPACES]: /tmp/b/NAME
bundle() {
  b=/tmp/b/$1
  mkdir -p $b && cp -a $T $b/rootfs
  caps=${4:-$CAPS}
  ns=${5:-'{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"},{"type":"network"}'}
  cat >$b/config.json <<EOF
{"ociVersion":"1.2.0",
 "process":{"terminal":false,"user":{"uid":0,"gid":0},"args":$2,
   "env":["PATH=/bin"],"cwd":"/","noNewPrivileges":true,
   "capabilities":{"bounding":[$caps],"effective":[$caps],"permitted":[$caps]}},
 "root":{"path":"rootfs","readonly":false},
 "hostname":"v2",
 "mounts":[
  {"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
  {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
  {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}],
 "linux":{"cgroupsPath":"/$PARENT/$1",
   "resources":{"devices":[{"allow":false,"access":"rwm"}]$3},
   "namespaces":[$ns]}}
EOF
}
# start NAME: create (output to /tmp/b/NAME/out) and start
start() {
  $RT create --bundle /tmp/b/$1 $1 >/tmp/b/$1/out 2>&1 </dev/null && $RT start $1
}
# wait_out NAME MARKER [SECONDS]: wait for MARKER in the container output
wait_out() {
  n=0
  while ! grep -q "$2" /tmp/b/$1/out 2>/dev/null; do
    n=$((n + 1)); [ $n -gt $((${3:-120} * 10)) ] && return 1; sleep 0.1
  done
}
field() { grep "^$2 " "$1" | cut -d' ' -f2; }
dir() { echo $CG/$PARENT/$1; }
cleanup() { $RT delete --force $1 >/dev/null 2>&1; }

# --- memory.max: an allocation past it is OOM-killed; events says oom.
# The shell is exempt from the OOM killer (oomScoreAdj -1000) and tail is
# its first pick (1000): on a slow guest the killer may strike twice before
# the first victim's memory is freed, and the shell must live to report.
t=memory
bundle $t '["sh","-c","while [ ! -e /go ]; do sleep 0.1; done; head -c 200m /dev/zero | sh -c \"echo 1000 >/proc/self/oom_score_adj; exec tail\" >/dev/null; echo tail=$?; sleep 2; echo done"]' \
  ',"memory":{"limit":33554432}'
sed -i 's/"process":{/"process":{"oomScoreAdj":-1000,/' /tmp/b/$t/config.json
if start $t; then
  $RT events --interval 1s $t >/tmp/b/$t/events 2>&1 &
  ev=$!
  sleep 3; touch /tmp/b/$t/rootfs/go
  if ! wait_out $t done 180; then fail $t "no output: $(cat /tmp/b/$t/out)"
  elif [ "$(cat $(dir $t)/memory.max)" != 33554432 ]; then fail $t "memory.max=$(cat $(dir $t)/memory.max)"
  elif ! grep -q tail=137 /tmp/b/$t/out; then fail $t "not OOM-killed: $(cat /tmp/b/$t/out)"
  elif [ "$(field $(dir $t)/memory.events oom_kill)" -lt 1 ]; then fail $t "memory.events: $(cat $(dir $t)/memory.events)"
  else
    n=0; while ! grep -q '"type":"oom"' /tmp/b/$t/events && [ $n -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
    if grep -q '"type":"oom"' /tmp/b/$t/events; then pass $t; else fail $t "no oom event: $(cat /tmp/b/$t/events)"; fi
  fi
  kill $ev 2>/dev/null
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- pids.max stops a fork loop; the limit is visible inside
t=pids
bundle $t '["sh","-c","sh -c '"'"'i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done; echo forked-all'"'"' 2>/dev/null; read max < /sys/fs/cgroup/pids.max; echo max=$max; exec sleep 60"]' \
  ',"pids":{"limit":8}'
if start $t && wait_out $t max= 120; then
  if grep -q forked-all /tmp/b/$t/out; then fail $t "40 forks succeeded"
  elif ! grep -q max=8 /tmp/b/$t/out; then fail $t "inside: $(cat /tmp/b/$t/out)"
  elif [ "$(cat $(dir $t)/pids.max)" != 8 ]; then fail $t "pids.max=$(cat $(dir $t)/pids.max)"
  elif [ "$(field $(dir $t)/pids.events max)" -lt 1 ]; then fail $t "pids.events: $(cat $(dir $t)/pids.events)"
  elif [ "$(cat $(dir $t)/pids.current)" -gt 8 ]; then fail $t "pids.current=$(cat $(dir $t)/pids.current)"
  else pass $t; fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- cpu: shares 512 -> cpu.weight 59 (runc >= 1.3 / crun conversion, as
# berth_cgroups::resources::cpu::shares_to_weight), quota -> cpu.max,
# and a busy loop gets throttled (counters, not wall time)
t=cpu
bundle $t '["sh","-c","while :; do :; done"]' ',"cpu":{"shares":512,"quota":10000,"period":100000}'
if start $t; then
  n=0; while [ "$(field $(dir $t)/cpu.stat nr_throttled)" = 0 ] && [ $n -lt 600 ]; do n=$((n + 1)); sleep 0.1; done
  if [ "$(cat $(dir $t)/cpu.weight)" != 59 ]; then fail $t "cpu.weight=$(cat $(dir $t)/cpu.weight)"
  elif [ "$(cat $(dir $t)/cpu.max)" != "10000 100000" ]; then fail $t "cpu.max=$(cat $(dir $t)/cpu.max)"
  elif [ "$(field $(dir $t)/cpu.stat nr_throttled)" -lt 1 ]; then fail $t "cpu.stat: $(cat $(dir $t)/cpu.stat)"
  else pass $t; fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- pause/resume: cgroup.freeze; nothing runs while frozen
t=freeze
bundle $t '["sh","-c","i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"]' ''
c=/tmp/b/$t/rootfs/tmp/count
if start $t && sleep 2 && [ -s $c ]; then
  $RT pause $t
  st=$($RT state $t | grep -o '"status": *"[a-z]*"')
  sleep 1; a=$(cat $c); sleep 2; b2=$(cat $c)
  if [ "$(cat $(dir $t)/cgroup.freeze)" != 1 ]; then fail $t "cgroup.freeze not 1"
  elif [ "$(field $(dir $t)/cgroup.events frozen)" != 1 ]; then fail $t "cgroup.events: $(cat $(dir $t)/cgroup.events)"
  elif ! echo "$st" | grep -q paused; then fail $t "state: $st"
  elif [ "$a" != "$b2" ]; then fail $t "counter moved while paused: $a -> $b2"
  else
    $RT resume $t; sleep 2; r=$(cat $c)
    if [ "$(field $(dir $t)/cgroup.events frozen)" != 0 ]; then fail $t "still frozen after resume"
    elif [ "$r" = "$b2" ]; then fail $t "counter stuck after resume"
    elif ! $RT state $t | grep -q running; then fail $t "state after resume: $($RT state $t)"
    else pass $t; fi
  fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- devices: the eBPF program denies /dev/mem even after mknod
t=devices
bundle $t '["sh","-c","mknod /tmp/mem c 1 1 && echo mknod-ok; head -c 1 /tmp/mem >/dev/null; echo mem=$?; echo x >/dev/null; echo null=$?; head -c 1 /dev/zero >/dev/null; echo zero=$?; echo done"]' \
  '' '"CAP_MKNOD","CAP_KILL"'
if start $t && wait_out $t done 120; then
  o=$(cat /tmp/b/$t/out)
  if ! echo "$o" | grep -q mknod-ok; then fail $t "mknod: $o"
  elif ! echo "$o" | grep -q mem=1 || ! echo "$o" | grep -q 'Operation not permitted'; then fail $t "/dev/mem opened: $o"
  elif ! echo "$o" | grep -q null=0 || ! echo "$o" | grep -q zero=0; then fail $t "default devices broken: $o"
  else pass $t; fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- update, ps, and the cgroup namespace view
t=update
bundle $t '["sh","-c","sleep 600 & cat /proc/self/cgroup; ls /sys/fs/cgroup | grep -c memory.max; find /sys/fs/cgroup -mindepth 1 -type d | wc -l; echo done; wait"]' \
  ',"memory":{"limit":67108864},"pids":{"limit":20}'
if start $t && wait_out $t done 120; then
  o=$(cat /tmp/b/$t/out)
  $RT update --memory 48m $t && $RT update --pids-limit 15 $t
  echo '{"cpu":{"shares":2048}}' >/tmp/b/$t/res.json && $RT update -r /tmp/b/$t/res.json $t
  pids=$($RT ps --format json $t)
  if [ "$(cat $(dir $t)/memory.max)" != 50331648 ]; then fail $t "memory.max=$(cat $(dir $t)/memory.max)"
  elif [ "$(cat $(dir $t)/pids.max)" != 15 ]; then fail $t "pids.max=$(cat $(dir $t)/pids.max)"
  elif [ "$(cat $(dir $t)/cpu.weight)" != 174 ]; then fail $t "cpu.weight=$(cat $(dir $t)/cpu.weight)"
  elif [ "$(echo "$o" | head -n 1)" != "0::/" ]; then fail $t "cgroupns: /proc/self/cgroup: $o"
  elif [ "$(echo "$o" | sed -n 3p)" != 0 ]; then fail $t "cgroupns: other cgroups visible: $o"
  else
    ok=1
    for p in $(cat $(dir $t)/cgroup.procs); do echo "$pids" | grep -q "$p" || ok=0; done
    if [ $ok = 1 ] && [ "$(echo "$pids" | tr ',' '\n' | grep -c '[0-9]')" = 2 ]; then pass $t
    else fail $t "ps: $pids vs $(cat $(dir $t)/cgroup.procs)"; fi
  fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

# --- delete kills leftovers (no pid namespace) and removes the cgroup
t=delete
bundle $t '["sh","-c","sleep 600 & echo $! > /tmp/child; exec sleep 600"]' '' "$CAPS" \
  '{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}'
if start $t && sleep 1; then
  child=$(cat /tmp/b/$t/rootfs/tmp/child)
  $RT kill $t KILL; sleep 1
  if [ -z "$child" ] || [ ! -d /proc/$child ]; then fail $t "child $child did not outlive init"
  else
    $RT delete $t; rc=$?; sleep 1
    st=$(grep State: /proc/$child/status 2>/dev/null)
    if [ $rc != 0 ]; then fail $t "delete exit $rc"
    elif [ -n "$st" ] && ! echo "$st" | grep -q zombie; then fail $t "leftover $child alive: $st"
    elif [ -d $(dir $t) ]; then fail $t "$(dir $t) still exists"
    else pass $t; fi
  fi
else fail $t "create/start: $(cat /tmp/b/$t/out)"; fi
cleanup $t

rmdir $CG/$PARENT 2>/dev/null
summary cgv2-runtime
GUEST

run_guest 'berth-runtime checks' 'sh ./guest.sh'

# Sourced by the guest scripts of the cgv2-*-test.sh scripts inside the
# cgroup v2 guest (busybox sh, as root, cwd /payload; cgv2-common.sh puts
# it there as guest-lib.sh). Each check reports with pass NAME or
# fail NAME WHY ('PASS: name', 'FAIL: name: why'); summary LABEL prints
# 'LABEL: P passed, F failed' and is true when all of at least one passed.
CG=/sys/fs/cgroup
PASS=0 FAIL=0
pass() { echo "PASS: $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL: $1: $2"; FAIL=$((FAIL + 1)); }
summary() {
  echo "$1: $PASS passed, $FAIL failed"
  [ $FAIL = 0 ] && [ $PASS -gt 0 ]
}
# Guard: the guest must really be pure cgroup v2.
[ -f $CG/cgroup.controllers ] || { echo "FAIL: setup: no cgroup2 at $CG"; exit 1; }

# add_user NAME ID [SUBORDINATE_START]: a user with its group, its home
# (owned by it) and XDG_RUNTIME_DIR /home/NAME/run; with
# SUBORDINATE_START, 65536 subordinate uids and gids from there.
add_user() {
  echo "$1:x:$2:$2::/home/$1:/bin/sh" >>/etc/passwd
  echo "$1:x:$2:" >>/etc/group
  if [ -n "${3:-}" ]; then
    echo "$1:$3:65536" >>/etc/subuid
    echo "$1:$3:65536" >>/etc/subgid
  fi
  mkdir -p /home/$1/run
  chown -R $2:$2 /home/$1
  chmod 755 /home/$1; chmod 700 /home/$1/run
}

# as USER CGROUP CMD: CMD run by USER's shell in CGROUP (root moves the
# shell there first: the user may not write the root's cgroup.procs, which
# moving out of the root cgroup needs), with /payload/bin first in PATH.
as() {
  sh -c 'echo $$ >"$1"/cgroup.procs && exec su -s /bin/sh "$2" -c "$3"' as "$2" "$1" \
    "export HOME=/home/$1 XDG_RUNTIME_DIR=/home/$1/run PATH=/payload/bin:/bin:/sbin:/usr/bin; $3"
}

# Shared by the benchmark scripts (sourced, not run).

# busybox_rootfs_tar DIR TAR: a busybox rootfs from the host's
# busybox-static in DIR (every applet linked, root in passwd/group), packed
# as TAR for `import` (no network needed).
busybox_rootfs_tar() {
  local r=$1 tar=$2 a
  mkdir -p "$r"/{bin,etc,proc,sys,dev,tmp,root}
  cp /bin/busybox "$r/bin/"
  for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  tar -C "$r" -cf "$tar" .
}

# Section 1b of bench/engine.sh (sourced there, not run by itself): what a
# container's own user namespace (issue 19) costs.
#   - `run --rm IMAGE true` with --userns=auto and with --userns=host,
#     USERNS_N (40) rounds after 3 warm-up rounds, the order of the
#     variants shuffled every round (seeded: runs repeat), so that load on
#     the machine hits both alike; wall and CPU time (user+sys of the
#     command and every process it reaped) per container, median and p25,
#     and the ratio auto/host of the medians. BERTH_B=path adds a second
#     build (its own root) to the same interleaved run: `host-b`, `auto-b`.
#   - memory per detached `sleep` container, USERNS_MEM_N (N) of them in
#     each mode: PSS and RSS of the berth-monitor plus the container's
#     processes (the monitor's descendants), processes per container, mounts
#     per container left in the benchmark's mount namespace (the host's
#     view) and user namespaces per container. Not counted: kernel memory;
#     an `auto` container holds one user namespace (672 bytes of slab here)
#     and one detached idmapped mount of the image store that its overlay
#     keeps (384 bytes); its idmapped bind mounts replace plain ones.
# Uses from engine.sh: B, BB, T, NET_FLAG, N, pss_of, sum_of, pids_matching.

USERNS_N=${USERNS_N:-40}
USERNS_MEM_N=${USERNS_MEM_N:-$N}
if [ "${#BB[@]}" -gt 0 ]; then
  "${BB[@]}" import "$T/bb.tar" localhost/bb:1 >/dev/null
fi

echo "== run --rm true: --userns=auto vs --userns=host ($USERNS_N rounds, interleaved) =="
# One JSON list of [name, argv] for the driver.
userns_variants() {
  python3 - "$@" <<'EOF'
import json, sys, shlex
a = sys.argv[1:]
out = []
for spec in a:
    name, cmd = spec.split("=", 1)
    out.append([name, shlex.split(cmd)])
print(json.dumps(out))
EOF
}
# shellcheck disable=SC2086
specs=("host=${B[*]} run --rm $NET_FLAG --userns=host localhost/bb:1 true"
       "auto=${B[*]} run --rm $NET_FLAG --userns=auto localhost/bb:1 true")
if [ "${#BB[@]}" -gt 0 ]; then
  specs+=("host-b=${BB[*]} run --rm $NET_FLAG --userns=host localhost/bb:1 true"
          "auto-b=${BB[*]} run --rm $NET_FLAG --userns=auto localhost/bb:1 true")
fi
USERNS_VARIANTS=$(userns_variants "${specs[@]}") USERNS_N=$USERNS_N USERNS_ERR=$T/userns-run.err \
python3 - <<'EOF'
import json, os, random, sys, time
variants = json.loads(os.environ["USERNS_VARIANTS"])
n, warmup = int(os.environ["USERNS_N"]), 3
devnull = os.open("/dev/null", os.O_RDWR)
err = os.open(os.environ["USERNS_ERR"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
res = {name: [] for name, _ in variants}

def one(argv):
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                       (os.POSIX_SPAWN_DUP2, devnull, 1),
                                       (os.POSIX_SPAWN_DUP2, err, 2)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed (exit %d): %s\n%s" % (os.waitstatus_to_exitcode(status), " ".join(argv),
                 open(os.environ["USERNS_ERR"]).read()[-2000:]))
    return wall * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3

for i in range(warmup + n):
    order = list(variants)
    random.Random(i).shuffle(order)
    for name, argv in order:
        w, c = one(argv)
        if i >= warmup:
            res[name].append((w, c))

def q(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

med = {}
print("%-8s  wall ms median   p25 |  cpu ms median   p25" % "")
for name, _ in variants:
    w = [x[0] for x in res[name]]
    c = [x[1] for x in res[name]]
    med[name] = (q(w, .5), q(c, .5))
    print("%-8s  %14.2f %5.2f | %13.2f %5.2f" % (name, q(w, .5), q(w, .25), q(c, .5), q(c, .25)))
for suffix in ("", "-b"):
    if "auto" + suffix in med:
        a, h = med["auto" + suffix], med["host" + suffix]
        print("auto%s/host%s: wall %.2fx (+%.2f ms), cpu %.2fx (+%.2f ms)" % (
            suffix, suffix, a[0] / h[0], a[0] - h[0], a[1] / h[1], a[1] - h[1]))
if "host-b" in med:
    for m in ("host", "auto"):
        print("%s/%s-b: wall %.2fx, cpu %.2fx" % (m, m, med[m][0] / med[m + "-b"][0],
                                                  med[m][1] / med[m + "-b"][1]))
EOF

descendants() { # the pids below the given ones (children, recursively)
  local p c
  for p in "$@"; do
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      echo "$c"
      descendants "$c"
    done
  done
}


echo "== memory per detached sleep container: --userns=host vs --userns=auto ($USERNS_MEM_N each) =="
userns_mem() { # LABEL MODE ROOT BERTH-ARGV...
  local label=$1 mode=$2 root=$3 m0 i mons kids pss rss procs mounts userns
  shift 3
  m0=$(wc -l </proc/self/mountinfo)
  for i in $(seq "$USERNS_MEM_N"); do
    "$@" run -d $NET_FLAG --userns="$mode" localhost/bb:1 sleep 1000 >/dev/null
  done
  sleep 1
  per() { python3 -c "print(f'{($1)/$USERNS_MEM_N:g}')"; }
  mons=$(pids_matching "--root $root " container-monitor)
  kids=$(descendants $mons)
  pss=$(pss_of $mons $kids)
  rss=$(sum_of Rss $mons $kids)
  procs=$(echo $mons $kids | wc -w)
  mounts=$(( $(wc -l </proc/self/mountinfo) - m0 ))
  # User namespaces other than the benchmark's among those processes.
  userns=$(for i in $mons $kids; do readlink /proc/"$i"/ns/user; done |
    { grep -vxF "$(readlink /proc/self/ns/user)" || true; } | sort -u | wc -l)
  printf '%-8s PSS %4d kB, RSS %5d kB per container (monitor + container, %s processes each); %s mounts each in the host mount ns; %s user namespaces each\n' \
    "$label" $((pss / USERNS_MEM_N)) $((rss / USERNS_MEM_N)) "$(per "$procs")" "$(per "$mounts")" \
    "$(per "$userns")"
  "$@" ps -aq --no-trunc | xargs -r "$@" rm -f >/dev/null
}
userns_mem host host "$T/berth" "${B[@]}"
userns_mem auto auto "$T/berth" "${B[@]}"
if [ "${#BB[@]}" -gt 0 ]; then
  userns_mem host-b host "$T/berth-b" "${BB[@]}"
  userns_mem auto-b auto "$T/berth-b" "${BB[@]}"
fi

#!/usr/bin/env python3
# Regenerates profiles/default.json from containers-common's seccomp.json
# (Debian: golang-github-containers-common-dev), resolving its conditional
# parts for berth's default capability set. Architecture-specific syscalls
# and capability re-opening are done at run time in src/defaults.rs, which
# also documents every deliberate difference from podman's profile.
# Usage: python3 profiles/generate.py > profiles/default.json
import json
src = json.load(open('/usr/share/gocode/src/github.com/containers/common/pkg/seccomp/seccomp.json'))
S = src['syscalls']
DEFAULT_CAPS = {"CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"}
# Docker-default extras denied with EPERM (keyring is not namespaced; reboot needs CAP_SYS_BOOT).
EXTRA_EPERM = ["add_key", "keyctl", "request_key", "reboot"]
# Handled by explicit argument rules below.
CONDITIONAL = {"clone", "unshare", "clone3"}  # clone3 falls to the ENOSYS default
eperm = set(S[0]['names'])
allow = set(S[1]['names'])
personality = [s for s in S if s['names'] == ['personality']]
for s in S[2:]:
    inc, exc = s.get('includes') or {}, s.get('excludes') or {}
    if inc.get('arches') or s['names'] == ['personality']:
        continue  # arch-specific parts are added in Rust per target arch
    if inc.get('caps'):
        if set(inc['caps']) <= DEFAULT_CAPS and not s.get('args'):
            allow |= set(s['names'])
        continue
    if exc.get('caps'):
        if not (set(exc['caps']) & DEFAULT_CAPS):
            assert s['action'] == 'SCMP_ACT_ERRNO' and s.get('errnoRet') == 1, s
            eperm |= set(s['names'])
        continue
    raise SystemExit(f"unhandled {s}")
allow -= set(EXTRA_EPERM) | CONDITIONAL
eperm |= set(EXTRA_EPERM)
eperm -= allow  # setns: podman lists it both allowed and under CAP_SYS_ADMIN; allowed wins
assert not (allow & eperm)
CLONE_NEWUSER = 0x10000000
out = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "syscalls": [
        {"names": sorted(eperm), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": sorted(allow), "action": "SCMP_ACT_ALLOW"},
    ] + [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": p['args'][0]['value'], "op": "SCMP_CMP_EQ"}]}
        for p in personality
    ] + [
        {"names": ["clone", "unshare"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}]},
    ],
}
print(json.dumps(out, indent=1))

//! Device access rules (runtime-spec config-linux.md, "Allowed Device list"):
//! the spec's list is replayed in order on an emulator of the v1 kernel's
//! device whitelist (as runc does), starting from deny-all; the result is
//! written as v1 devices.deny/allow lines or compiled to an eBPF program for
//! v2 (`devices_bpf`).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::resources::{FileWrite, ResourceError};

/// Device type a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    All,
    Char,
    Block,
}

/// Access bits: r, w, m.
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
pub const MKNOD: u8 = 4;
pub const RWM: u8 = READ | WRITE | MKNOD;

/// One normalised rule; `None` major/minor means any (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl DeviceRule {
    /// A rule of type `a`: the v1 kernel treats it as "everything" whatever
    /// the rest says, and resets the list.
    pub fn is_reset(&self) -> bool {
        self.typ == DevType::All
    }

    /// v1 line, e.g. `c 1:3 rwm` or `a`.
    pub fn v1_line(&self) -> String {
        if self.is_reset() {
            return "a".into();
        }
        let t = if self.typ == DevType::Char { 'c' } else { 'b' };
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{t} {}:{} {}",
            n(self.major),
            n(self.minor),
            access_string(self.access)
        )
    }
}

/// "rwm" text of access bits.
pub fn access_string(a: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Access letters. As runc, letters besides r, w and m are ignored (runc's
/// own tests use "rwa"); a string with none of r, w, m is refused (runc
/// fails such a container too), an absent or empty one means rwm.
fn parse_access(s: Option<&str>) -> Result<u8, ResourceError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(RWM);
    };
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => 0,
        };
    }
    if a == 0 {
        return Err(ResourceError::Invalid {
            resource: "devices.access",
            value: s.to_string(),
            why: "it has none of r, w and m",
        });
    }
    Ok(a)
}

fn number(v: Option<i64>, what: &'static str) -> Result<Option<u32>, ResourceError> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        // Kept below 2^31: the eBPF program compares against a signed imm32.
        Some(n) if n > i64::from(i32::MAX) => Err(ResourceError::Invalid {
            resource: what,
            value: n.to_string(),
            why: "out of range",
        }),
        Some(n) => Ok(Some(n as u32)),
    }
}

/// Normalises the spec's rules (unset type = `a`, unset or -1 number = any,
/// unset access = rwm).
pub fn rules_from_spec(list: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, ResourceError> {
    list.iter()
        .map(|d| {
            let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => DevType::All,
                LinuxDeviceType::C | LinuxDeviceType::U => DevType::Char,
                LinuxDeviceType::B => DevType::Block,
                LinuxDeviceType::P => {
                    return Err(ResourceError::Invalid {
                        resource: "devices.type",
                        value: "p".into(),
                        why: "FIFOs are not devices the cgroup controls; use a, b or c",
                    })
                }
            };
            Ok(DeviceRule {
                allow: d.allow(),
                typ,
                major: number(d.major(), "devices.major")?,
                minor: number(d.minor(), "devices.minor")?,
                access: parse_access(d.access().as_deref())?,
            })
        })
        .collect()
}

/// The state the rules lead to: a default, plus exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub default_allow: bool,
    pub exceptions: Vec<DeviceRule>,
}

/// Replays `rules` from deny-all as the v1 kernel would: a type-`a` rule
/// resets; a rule against the default adds (merges) an exception; a rule
/// agreeing with the default removes its access bits from an identical
/// exception.
pub fn emulate(rules: &[DeviceRule]) -> DeviceState {
    let mut st = DeviceState {
        default_allow: false,
        exceptions: Vec::new(),
    };
    for r in rules {
        if r.is_reset() {
            st.default_allow = r.allow;
            st.exceptions.clear();
            continue;
        }
        let same = |e: &DeviceRule| e.typ == r.typ && e.major == r.major && e.minor == r.minor;
        if r.allow != st.default_allow {
            if let Some(e) = st.exceptions.iter_mut().find(|e| same(e)) {
                e.access |= r.access;
            } else {
                st.exceptions.push(DeviceRule {
                    allow: r.allow,
                    ..r.clone()
                });
            }
        } else {
            for e in st.exceptions.iter_mut().filter(|e| same(e)) {
                e.access &= !r.access;
            }
            st.exceptions.retain(|e| e.access != 0);
        }
    }
    st
}

/// v1 writes: reset to the emulated default, then each exception.
pub fn v1_writes(rules: &[DeviceRule]) -> Vec<FileWrite> {
    let st = emulate(rules);
    let file = |allow: bool| {
        if allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    };
    let mut w = vec![FileWrite::new("devices", file(st.default_allow), "a")];
    for e in &st.exceptions {
        w.push(FileWrite::new("devices", file(e.allow), e.v1_line()));
    }
    w
}

/// Parses a v1 devices.list. The kernel shows `a *:* rwm` alone for an
/// allow-by-default cgroup (its deny exceptions are not listed: `None`,
/// the state is unknown), else each allowed exception.
pub fn parse_v1_list(text: &str) -> Option<DeviceState> {
    let mut st = DeviceState {
        default_allow: false,
        exceptions: Vec::new(),
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut f = line.split_whitespace();
        let (t, mm, acc) = (f.next()?, f.next()?, f.next()?);
        let typ = match t {
            "a" => return None,
            "c" => DevType::Char,
            "b" => DevType::Block,
            _ => return None,
        };
        let (ma, mi) = mm.split_once(':')?;
        let n = |v: &str| -> Option<Option<u32>> {
            if v == "*" {
                Some(None)
            } else {
                v.parse().ok().map(Some)
            }
        };
        let access = parse_access(Some(acc)).ok()?;
        let (major, minor) = (n(ma)?, n(mi)?);
        match st
            .exceptions
            .iter_mut()
            .find(|e| e.typ == typ && e.major == major && e.minor == minor)
        {
            Some(e) => e.access |= access,
            None => st.exceptions.push(DeviceRule {
                allow: true,
                typ,
                major,
                minor,
                access,
            }),
        }
    }
    Some(st)
}

/// v1 writes that take a cgroup from `current` (its devices.list, when
/// known) to what `rules` lead to. Between two deny-by-default states only
/// the differences are written (runc's minimal transition), so a device
/// that stays allowed is never denied, even for a moment; otherwise the
/// list is reset and rebuilt ([`v1_writes`]).
pub fn v1_transition(current: Option<&DeviceState>, rules: &[DeviceRule]) -> Vec<FileWrite> {
    let target = emulate(rules);
    let Some(cur) = current.filter(|c| !c.default_allow && !target.default_allow) else {
        return v1_writes(rules);
    };
    let key =
        |a: &DeviceRule, b: &DeviceRule| a.typ == b.typ && a.major == b.major && a.minor == b.minor;
    let bits_in = |list: &[DeviceRule], r: &DeviceRule| {
        list.iter()
            .filter(|e| key(e, r))
            .fold(0, |a, e| a | e.access)
    };
    let mut w = Vec::new();
    for c in &cur.exceptions {
        let gone = c.access & !bits_in(&target.exceptions, c);
        if gone != 0 {
            let r = DeviceRule {
                access: gone,
                ..c.clone()
            };
            w.push(FileWrite::new("devices", "devices.deny", r.v1_line()));
        }
    }
    for t in &target.exceptions {
        let new = t.access & !bits_in(&cur.exceptions, t);
        if new != 0 {
            let r = DeviceRule {
                access: new,
                ..t.clone()
            };
            w.push(FileWrite::new("devices", "devices.allow", r.v1_line()));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(json: &str) -> Vec<DeviceRule> {
        let l: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).expect("devices json");
        rules_from_spec(&l).expect("rules")
    }

    #[test]
    fn normalised() {
        let r = spec(
            r#"[{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": -1, "access": "rw"}]"#,
        );
        assert!(r[0].is_reset() && !r[0].allow);
        assert_eq!(r[1].v1_line(), "c 1:* rw");
        let l: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow": true, "access": "rx"}]"#).expect("json");
        assert_eq!(rules_from_spec(&l).expect("rx")[0].access, READ);
        let l: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow": true, "access": "ax"}]"#).expect("json");
        assert!(rules_from_spec(&l).is_err());
    }

    #[test]
    fn v1_lines_deny_all_then_allow() {
        let r = spec(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "m"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"},
                {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "r"}]"#,
        );
        let w: Vec<(String, String)> = v1_writes(&r)
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert_eq!(
            w,
            vec![
                ("devices.deny".to_string(), "a".to_string()),
                ("devices.allow".to_string(), "c 1:3 rwm".to_string()),
            ]
        );
    }

    #[test]
    fn transition_between_whitelists_is_minimal() {
        let cur = parse_v1_list("c 1:3 rwm\nc 1:5 rwm\nc *:* m\n").expect("list");
        let r = spec(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"},
                {"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rw"}]"#,
        );
        let w: Vec<(String, String)> = v1_transition(Some(&cur), &r)
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert_eq!(
            w,
            vec![
                ("devices.deny".to_string(), "c 1:5 wm".to_string()),
                ("devices.deny".to_string(), "c *:* m".to_string()),
                ("devices.allow".to_string(), "c 4:1 rw".to_string()),
            ]
        );
        // From allow-all (exceptions unknown): reset and rebuild.
        assert!(parse_v1_list("a *:* rwm\n").is_none());
        assert_eq!(v1_transition(None, &r)[0].value, "a");
    }

    #[test]
    fn allow_all_then_deny() {
        let r = spec(
            r#"[{"allow": true}, {"allow": false, "type": "c", "major": 5, "minor": 1, "access": "w"}]"#,
        );
        let st = emulate(&r);
        assert!(st.default_allow);
        assert_eq!(st.exceptions.len(), 1);
        let w = v1_writes(&r);
        assert_eq!(
            (w[0].file.as_str(), w[0].value.as_str()),
            ("devices.allow", "a")
        );
        assert_eq!(
            (w[1].file.as_str(), w[1].value.as_str()),
            ("devices.deny", "c 5:1 w")
        );
        // No rules at all: deny everything.
        assert_eq!(
            emulate(&[]),
            DeviceState {
                default_allow: false,
                exceptions: vec![]
            }
        );
    }
}

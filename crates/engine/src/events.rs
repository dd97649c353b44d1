//! Events without a daemon: every command appends what it did to
//! `<root>/events.log` (JSON lines, one `write` each, opened O_APPEND so
//! lines of concurrent writers never interleave); `events` reads and
//! follows that file. The record is Docker's event JSON.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The log file under the engine root.
pub fn log_path(root: &Path) -> PathBuf {
    root.join("events.log")
}

/// Who an event is about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in Docker's JSON shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// A new event now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: &[(&str, &str)]) -> Event {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            scope: "local".into(),
            time: nanos.div_euclid(1_000_000_000),
            time_nano: nanos,
        }
    }

    /// Docker's plain line:
    /// `2024-01-02T03:04:05.000000000Z container start ID (image=x, name=y)`.
    pub fn line(&self) -> String {
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let t = crate::rfc3339_ms(self.time_nano / 1_000_000);
        // rfc3339_ms prints milliseconds as nanoseconds; put the real ones.
        let t = match t.split_once('.') {
            Some((head, _)) => format!("{head}.{:09}Z", self.time_nano.rem_euclid(1_000_000_000)),
            None => t,
        };
        let mut s = format!("{t} {} {} {}", self.kind, self.action, self.actor.id);
        if !attrs.is_empty() {
            s.push_str(&format!(" ({})", attrs.join(", ")));
        }
        s
    }
}

/// Appends an event to `<root>/events.log`. Failing to record an event
/// never fails the command that did the work: a warning goes to stderr.
pub fn record(root: &Path, ev: &Event) {
    let path = log_path(root);
    let mut line = serde_json::to_vec(ev).expect("event serialises");
    line.push(b'\n');
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&line));
    if let Err(e) = r {
        eprintln!(
            "berth: warning: could not record the {} {} event in {}: {e}",
            ev.kind,
            ev.action,
            path.display()
        );
    }
}

/// Records a container event (`name` and `image` attributes, plus `extra`).
pub fn container(
    engine: &crate::Engine,
    row: &crate::ContainerRow,
    action: &str,
    extra: &[(&str, &str)],
) {
    let mut attrs: Vec<(&str, &str)> = vec![("name", &row.name), ("image", &row.image)];
    attrs.extend_from_slice(extra);
    record(
        &engine.root,
        &Event::new("container", action, &row.id, &attrs),
    );
}

/// `--filter` of `events`: type=, event= (or action=), container=, image=,
/// network=, volume=, label=; several values of one key match any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    by_key: BTreeMap<String, Vec<String>>,
}

/// The keys `--filter` takes.
pub const FILTER_KEYS: &[&str] = &["type", "event", "container", "image", "network", "volume"];

impl Filter {
    /// Parses `KEY=VALUE` filters; the unknown key is the error.
    pub fn parse(filters: &[String]) -> Result<Filter, String> {
        let mut f = Filter::default();
        for raw in filters {
            let Some((k, v)) = raw.split_once('=') else {
                return Err(raw.clone());
            };
            let k = if k == "action" { "event" } else { k };
            if !FILTER_KEYS.contains(&k) {
                return Err(raw.clone());
            }
            f.by_key.entry(k.into()).or_default().push(v.into());
        }
        Ok(f)
    }

    /// Whether `ev` passes every key.
    pub fn matches(&self, ev: &Event) -> bool {
        self.by_key.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "type" => ev.kind == *v,
                "event" => ev.action == *v,
                "container" | "network" | "volume" => ev.kind == *k && actor_is(ev, v),
                "image" => {
                    (ev.kind == "image" && actor_is(ev, v))
                        || ev.actor.attributes.get("image").is_some_and(|i| i == v)
                }
                _ => false,
            })
        })
    }
}

fn actor_is(ev: &Event, v: &str) -> bool {
    (!v.is_empty() && ev.actor.id.starts_with(v))
        || ev.actor.attributes.get("name").is_some_and(|n| n == v)
}

/// Shows events between `since` and `until` (unix nanoseconds). Without
/// `until`, follows the log (new events as they are recorded) until the
/// output goes away or `until` passes. `since` absent: only new events.
pub fn show(
    root: &Path,
    since: Option<i64>,
    until: Option<i64>,
    filter: &Filter,
    out: &mut dyn FnMut(&Event) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = log_path(root);
    std::fs::create_dir_all(root)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    let mut reader = BufReader::new(f);
    if since.is_none() {
        reader.seek(SeekFrom::End(0))?;
    }
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n > 0 && !line.ends_with('\n') {
            // A line being written: read it whole later.
            reader.seek(SeekFrom::Current(-(n as i64)))?;
        } else if n > 0 {
            let Ok(ev) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            if until.is_some_and(|u| ev.time_nano > u) {
                return Ok(());
            }
            if since.is_none_or(|s| ev.time_nano >= s) && filter.matches(&ev) {
                out(&ev)?;
            }
            continue;
        }
        // At the end of the log.
        match until {
            Some(u) if now() >= u => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `--since`/`--until`: RFC 3339, unix seconds (with fraction), or a
/// duration ago (`10s`, `5m`, `2h`); unix nanoseconds.
pub fn parse_time(s: &str, now_ms: i64) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1e9) as i64);
    }
    if s.contains('T') {
        return parse_rfc3339_nanos(s);
    }
    let t = crate::logs::parse_since(s, now_ms)?;
    parse_rfc3339_nanos(&t)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` into unix
/// nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, o) = rest.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(
            super::parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            super::parse_rfc3339_nanos("2000-02-29T01:00:00+01:00"),
            Some(951_782_400_000_000_000)
        );
        assert_eq!(super::parse_time("12.5", 0), Some(12_500_000_000));
        assert_eq!(super::parse_time("10s", 20_000), Some(10_000_000_000));
    }

    use super::*;

    #[test]
    fn filters_match_docker_keys() {
        let ev = Event::new(
            "container",
            "start",
            "abc123",
            &[("name", "web"), ("image", "bb")],
        );
        let f = |v: &[&str]| Filter::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(f(&["type=container", "event=start"]).unwrap().matches(&ev));
        assert!(f(&["event=stop", "event=start"]).unwrap().matches(&ev));
        assert!(!f(&["event=stop"]).unwrap().matches(&ev));
        assert!(f(&["container=web"]).unwrap().matches(&ev));
        assert!(f(&["container=abc"]).unwrap().matches(&ev));
        assert!(f(&["image=bb"]).unwrap().matches(&ev));
        assert!(!f(&["image=other"]).unwrap().matches(&ev));
        assert_eq!(f(&["bogus=1"]).unwrap_err(), "bogus=1");
    }

    #[test]
    fn plain_line_has_nanoseconds_and_attributes() {
        let mut ev = Event::new(
            "container",
            "die",
            "abc",
            &[("exitCode", "3"), ("name", "x")],
        );
        ev.time_nano = 1_000_000_123;
        assert_eq!(
            ev.line(),
            "1970-01-01T00:00:01.000000123Z container die abc (exitCode=3, name=x)"
        );
    }
}

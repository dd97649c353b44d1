//! `ps --filter`: Docker's filters. Values of one key are alternatives
//! (`status=exited --filter status=created` lists both), different keys
//! must all match, and `label` filters must all match (Docker's rules).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use berth_engine::{db::ContainerRow, inspect, lifecycle, Engine, Status};

/// The keys `ps --filter` takes.
const KEYS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "network", "volume", "health", "before",
    "since",
];

/// Docker's container states (`status=`).
const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Parsed `--filter KEY=VALUE`s.
pub struct PsFilter {
    by_key: BTreeMap<String, Vec<String>>,
    names: Vec<regex::Regex>,
    /// Positions (in creation order) of the `before=` / `since=` containers.
    before: Option<usize>,
    since: Option<usize>,
}

impl PsFilter {
    /// Reads the filters; `list` is every container in creation order
    /// (for `before=`/`since=`).
    pub fn parse(engine: &Engine, raw: &[String], list: &[ContainerRow]) -> Result<PsFilter> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in raw {
            let Some((k, v)) = f.split_once('=') else {
                bail!("invalid filter {f:?}: use KEY=VALUE");
            };
            if !KEYS.contains(&k) {
                bail!("unsupported filter {f:?} (use {}=)", KEYS.join("=, "));
            }
            match k {
                "status" if !STATES.contains(&v) => bail!(
                    "invalid filter {f:?}: the status is one of {}",
                    STATES.join(", ")
                ),
                "exited" if v.parse::<i32>().is_err() => {
                    bail!("invalid filter {f:?}: exited takes an exit code (a number)")
                }
                "health" if !["starting", "healthy", "unhealthy", "none"].contains(&v) => bail!(
                    "invalid filter {f:?}: the health is one of starting, healthy, unhealthy, none"
                ),
                _ => {}
            }
            by_key.entry(k.to_string()).or_default().push(v.to_string());
        }
        let names = by_key
            .get("name")
            .into_iter()
            .flatten()
            .map(|n| {
                regex::Regex::new(n).map_err(|e| {
                    anyhow!("invalid filter \"name={n}\": not a regular expression: {e}")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let position = |key: &str| -> Result<Option<usize>> {
            let Some(refs) = by_key.get(key) else {
                return Ok(None);
            };
            let mut at = None;
            for r in refs {
                let row = lifecycle::find(engine, r)
                    .map_err(|e| anyhow!("invalid filter \"{key}={r}\": {e}"))?;
                let p = list.iter().position(|x| x.id == row.id);
                // Several values: the tightest bound, as Docker keeps the last.
                at = p.or(at);
            }
            Ok(at)
        };
        let before = position("before")?;
        let since = position("since")?;
        Ok(PsFilter {
            by_key,
            names,
            before,
            since,
        })
    }

    /// Docker lists stopped containers too when a status is asked for.
    pub fn implies_all(&self) -> bool {
        self.by_key.contains_key("status")
    }

    /// Whether the container at `pos` (creation order) passes.
    pub fn matches(&self, engine: &Engine, row: &ContainerRow, pos: usize) -> bool {
        if self.before.is_some_and(|b| pos >= b) || self.since.is_some_and(|s| pos <= s) {
            return false;
        }
        let mut doc = None;
        let mut inspect_doc = || {
            doc.get_or_insert_with(|| inspect::inspect(engine, row))
                .clone()
        };
        self.by_key.iter().all(|(k, vals)| match k.as_str() {
            "label" => vals
                .iter()
                .all(|v| inspect::matches_filter(row, &format!("label={v}")) == Some(true)),
            "name" => self
                .names
                .iter()
                .any(|re| re.is_match(&row.name) || re.is_match(&format!("/{}", row.name))),
            "before" | "since" => true,
            "status" => {
                let state = if berth_engine::manage::is_paused(engine, row) {
                    "paused"
                } else {
                    row.status.as_str()
                };
                vals.iter().any(|v| v == state)
            }
            "exited" => {
                row.status == Status::Exited
                    && vals.iter().any(|v| v.parse::<i32>().ok() == row.exit_code)
            }
            "health" => {
                let has_check = berth_engine::create::ContainerConfig::of(row)
                    .is_ok_and(|c| c.health.is_some());
                let h = if has_check {
                    berth_engine::health::state(engine, &row.id)
                        .map(|s| s.status)
                        .unwrap_or_else(|| "starting".into())
                } else {
                    "none".into()
                };
                vals.contains(&h)
            }
            "network" => {
                let eps = berth_engine::networks::of_container(engine, &row.id)
                    .map(|(e, _)| e)
                    .unwrap_or_default();
                let nets = berth_engine::networks::list(engine).unwrap_or_default();
                vals.iter().any(|v| {
                    eps.iter().any(|e| {
                        e.network == *v
                            || nets.iter().any(|n| {
                                n.name == e.network && !v.is_empty() && n.id.starts_with(v.as_str())
                            })
                    })
                })
            }
            "volume" => {
                let d = inspect_doc();
                let mounts = d["Mounts"].as_array().cloned().unwrap_or_default();
                vals.iter().any(|v| {
                    mounts
                        .iter()
                        .any(|m| m["Name"] == v.as_str() || m["Destination"] == v.as_str())
                })
            }
            _ => vals
                .iter()
                .any(|v| inspect::matches_filter(row, &format!("{k}={v}")) == Some(true)),
        })
    }
}

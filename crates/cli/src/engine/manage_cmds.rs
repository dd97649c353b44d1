//! Commands Docker and podman users expect besides the lifecycle: pause,
//! unpause, update, diff, export, commit, events, top with ps options,
//! search, and the `exists` checks.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::{events, lifecycle, manage};
use clap::{ArgAction, Args};

use super::format::print_table;
use super::run::EngineArgs;
use super::template::Format;

/// `pause` / `unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 64m; -1 unlimited).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1 unlimited).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (CFS quota over a 100ms period).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds.
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Most processes (-1 unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000, 0 unset).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Restart policy (no, always, on-failure[:N], unless-stopped).
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Output: plain (A/C/D lines), json, or a Go template over `.Kind`
    /// (A, C or D) and `.Path` (example: `--format '{{.Path}}'`).
    #[arg(long, default_value = "plain")]
    pub format: String,
    pub container: String,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

/// `commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author of the new image.
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// A Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL, ONBUILD); repeatable.
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// Pause the container while committing (Docker's default: true).
    #[arg(short = 'p', long, action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true")]
    pub pause: bool,
    /// Only print the image ID.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub container: String,
    /// Name of the new image (REPOSITORY[:TAG]).
    pub image: Option<String>,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events from this time (RFC 3339, unix seconds, or 10s/5m/2h ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms); without it, follow new events.
    #[arg(long)]
    pub until: Option<String>,
    /// type=, event=, container=, image=, network=, volume= (repeatable).
    #[arg(short = 'f', long)]
    pub filter: Vec<String>,
    /// Output: plain, json (one JSON document per line), or a Go template
    /// over Docker's fields (example: `--format '{{.Action}} {{.Actor.Attributes.name}}'`).
    #[arg(long, default_value = "plain")]
    pub format: String,
}

/// `top`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps(1) (e.g. `-eo pid,comm` or `aux`), as Docker takes
    /// them; without them, the PID and command of each process.
    #[arg(allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

/// `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Most results.
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Output: table, json, a Go template or `table TEMPLATE`
    /// (example: `--format '{{.Name}} {{.StarCount}}'`).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not cut descriptions.
    #[arg(long)]
    pub no_trunc: bool,
    /// TERM, or REGISTRY/TERM.
    pub term: String,
}

/// `... exists NAME`.
#[derive(Debug, Args)]
pub struct ExistsArgs {
    pub name: String,
}

/// `pause`.
pub fn pause(root: &Path, e: &EngineArgs, a: &PauseArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        manage::pause(&engine, c)?;
        println!("{c}");
    }
    Ok(0)
}

/// `unpause`.
pub fn unpause(root: &Path, e: &EngineArgs, a: &PauseArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    for c in &a.containers {
        manage::unpause(&engine, c)?;
        println!("{c}");
    }
    Ok(0)
}

/// `update`.
pub fn update(root: &Path, e: &EngineArgs, a: &UpdateArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let req = manage::UpdateRequest {
        memory: a.memory.clone(),
        memory_swap: a.memory_swap.clone(),
        memory_reservation: a.memory_reservation.clone(),
        cpus: a.cpus.clone(),
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        restart: a.restart.clone(),
    };
    for c in &a.containers {
        manage::update(&engine, c, &req)?;
        println!("{c}");
    }
    Ok(0)
}

/// `diff`.
pub fn diff(root: &Path, e: &EngineArgs, a: &DiffArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    let changes = manage::diff(&engine, &a.container)?;
    match a.format.as_str() {
        "plain" | "table" | "" => {
            let mut out = std::io::stdout().lock();
            for c in &changes {
                let _ = writeln!(out, "{} {}", c.kind.letter(), c.path);
            }
        }
        "json" => {
            // podman's shape.
            let pick = |k: berth_image::layer_diff::ChangeKind| -> Vec<&str> {
                changes
                    .iter()
                    .filter(|c| c.kind == k)
                    .map(|c| c.path.as_str())
                    .collect()
            };
            use berth_image::layer_diff::ChangeKind as K;
            let v = serde_json::json!({
                "changed": pick(K::Changed),
                "added": pick(K::Added),
                "deleted": pick(K::Deleted),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        f => {
            // A Go template or `table TEMPLATE`, one row per change.
            let rows: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| serde_json::json!({"Kind": c.kind.letter().to_string(), "Path": c.path}))
                .collect();
            let text = Format::parse(f).rows(
                "{{.Kind}}\t{{.Path}}",
                &[("Kind", "CHANGE TYPE"), ("Path", "PATH")],
                &rows,
            )?;
            print!("{text}");
        }
    }
    Ok(0)
}

/// Where binary output goes: the file of `-o`, or standard output when
/// that is not a terminal (Docker refuses to write archives to one).
pub fn binary_output(output: Option<&Path>, what: &str) -> Result<Box<dyn Write>> {
    match output {
        Some(p) => {
            let f = std::fs::File::create(p)
                .with_context(|| format!("{what}: create {}", p.display()))?;
            Ok(Box::new(std::io::BufWriter::new(f)))
        }
        None if std::io::stdout().is_terminal() => bail!(
            "{what}: refusing to write an archive to a terminal; use -o FILE or redirect standard output"
        ),
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout()))),
    }
}

/// `export`.
pub fn export(root: &Path, e: &EngineArgs, a: &ExportArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    // The container must exist before an output file is made.
    lifecycle::find(&engine, &a.container)?;
    let mut w = binary_output(a.output.as_deref(), "export")?;
    let r = manage::export(&engine, &a.container, &mut w)
        .map_err(anyhow::Error::from)
        .and_then(|()| w.flush().context("export: write the archive"));
    if r.is_err() {
        if let Some(p) = &a.output {
            let _ = std::fs::remove_file(p);
        }
    }
    r?;
    Ok(0)
}

/// `events`.
pub fn events(root: &Path, a: &EventsArgs) -> Result<i32> {
    let now = berth_engine::now_ms();
    let time = |flag: &str, s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                events::parse_time(v, now).ok_or_else(|| {
                    anyhow::anyhow!(
                        "events: invalid {flag} {v:?} (RFC 3339, unix seconds, or 10s/5m/2h ago)"
                    )
                })
            })
            .transpose()
    };
    let since = time("--since", &a.since)?;
    let until = time("--until", &a.until)?;
    let filter = events::Filter::parse(&a.filter).map_err(|f| {
        anyhow::anyhow!(
            "events: unsupported filter {f:?} (use {}=VALUE)",
            events::FILTER_KEYS.join("=, ")
        )
    })?;
    // Docker's `--format`: `json` (or `{{json .}}`), or a Go template over
    // its event message's fields.
    let format = match a.format.as_str() {
        "plain" | "" => None,
        "json" | "{{json .}}" => Some(Format::Json),
        f => match Format::parse(f) {
            Format::Json => Some(Format::Json),
            Format::Template(t) => Some(Format::Template(t)),
            Format::Table(_) => {
                bail!("events: --format table is not supported (use plain, json or a Go template)")
            }
        },
    };
    let tpl = match &format {
        // Checked before anything is read, so a bad template fails at once.
        Some(Format::Template(t)) => Some(super::template::Parsed::new(t)?),
        _ => None,
    };
    let mut out = std::io::stdout();
    let mut failed = None;
    let r = events::show(root, since, until, &filter, &mut |ev| {
        let line = match (&format, &tpl) {
            (Some(Format::Json), _) => serde_json::to_string(ev).expect("event serialises"),
            (_, Some(t)) => match t.render(&event_view(ev)) {
                Ok(l) => l,
                Err(e) => {
                    let msg = format!("events: {e:#}");
                    failed = Some(e.context(format!("events: {} {}", ev.kind, ev.action)));
                    return Err(std::io::Error::other(msg));
                }
            },
            _ => ev.line(),
        };
        writeln!(out, "{line}")?;
        out.flush()
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match r {
        Ok(()) => Ok(0),
        // The reader went away (`| head`): done.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(anyhow::Error::new(e).context("events: read the event log")),
    }
}

/// What an event template sees: Docker's `events.Message` fields
/// (`.Type`, `.Action`, `.Actor.ID`, `.Actor.Attributes`, `.Scope`,
/// `.Time` in seconds, `.TimeNano`, and the older `.Status`, `.ID`,
/// `.From`, which Docker fills for container and image events).
pub fn event_view(ev: &events::Event) -> serde_json::Value {
    let legacy = matches!(ev.kind.as_str(), "container" | "image");
    let from = if ev.kind == "container" {
        ev.actor
            .attributes
            .get("image")
            .cloned()
            .unwrap_or_default()
    } else {
        String::new()
    };
    serde_json::json!({
        "Type": ev.kind,
        "Action": ev.action,
        "Actor": {"ID": ev.actor.id, "Attributes": ev.actor.attributes},
        "Scope": ev.scope,
        "Time": ev.time,
        "TimeNano": ev.time_nano,
        "Status": if legacy { ev.action.as_str() } else { "" },
        "ID": if legacy { ev.actor.id.as_str() } else { "" },
        "From": from,
    })
}

/// `top CONTAINER [ps OPTIONS]`: without options, PID and command; with
/// them, the host's ps(1) output limited to the container's processes
/// (Docker's way: the PID column is found in ps's header).
pub fn top(root: &Path, e: &EngineArgs, a: &TopArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    if a.ps_options.is_empty() {
        let rows: Vec<Vec<String>> = berth_engine::ops::top(&engine, &a.container)?
            .into_iter()
            .map(|(pid, cmd)| vec![pid.to_string(), cmd])
            .collect();
        print_table(&["PID", "COMMAND"], &rows);
        return Ok(0);
    }
    let pids: Vec<String> = berth_engine::ops::top(&engine, &a.container)?
        .into_iter()
        .map(|(pid, _)| pid.to_string())
        .collect();
    let o = std::process::Command::new("ps")
        .args(&a.ps_options)
        .output()
        .context("top: run ps")?;
    if !o.status.success() {
        bail!(
            "top: ps {} failed: {}",
            a.ps_options.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!(
            "top: ps {} prints no PID column; add pid to its output (e.g. -o pid,comm)",
            a.ps_options.join(" ")
        );
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .is_some_and(|p| pids.iter().any(|x| x == p))
        {
            let _ = writeln!(out, "{l}");
        }
    }
    Ok(0)
}

/// `search`: the registry's `/v1/search` (Docker Hub's API); a registry
/// without it (the distribution registry serves only `/v2/`) is an error
/// that says so.
pub fn search(root: &Path, a: &SearchArgs) -> Result<i32> {
    let (domain, term) = match a.term.split_once('/') {
        Some((d, t)) if d.contains('.') || d.contains(':') || d == "localhost" => (d, t),
        _ => ("docker.io", a.term.as_str()),
    };
    let opts = berth_image::registry::RegistryOptions::new(root);
    let client = berth_image::registry::Client::connect(domain, &opts)
        .with_context(|| format!("search {domain}"))?;
    let q = berth_image::registry::query_escape(term);
    let path = format!("/v1/search?q={q}&n={}", a.limit);
    let resp = client
        .request(
            "GET",
            &path,
            "",
            &[],
            berth_image::registry::Body::Empty,
            "search",
        )
        .with_context(|| format!("search {domain}"))?;
    if resp.status() == 404 || resp.status() == 405 {
        bail!(
            "search: registry {domain} has no search API (GET /v1/search answered {}); it serves only the v2 API, which cannot search: pull by full name instead",
            resp.status()
        );
    }
    if resp.status() != 200 {
        bail!(
            "search: registry {domain} answered {} to GET /v1/search",
            resp.status()
        );
    }
    let text = resp
        .into_string()
        .with_context(|| format!("search: read the answer of {domain}"))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("search: the answer of {domain} is not JSON"))?;
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let results: Vec<_> = results.into_iter().take(a.limit).collect();
    let format = Format::parse(&a.format);
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|r| search_row(domain, r, a.no_trunc))
        .collect();
    print!(
        "{}",
        format.rows(
            "{{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}",
            SEARCH_HEADERS,
            &rows
        )?
    );
    Ok(0)
}

/// Column names Docker gives `search` fields (podman's names too).
const SEARCH_HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
    ("Index", "INDEX"),
    ("Stars", "STARS"),
    ("Official", "OFFICIAL"),
    ("Automated", "AUTOMATED"),
];

/// A `search` row for templates: Docker's fields (`.Name`,
/// `.Description`, `.StarCount`, `.IsOfficial` and `.IsAutomated` as
/// `[OK]` or nothing) and podman's (`.Index`, `.Stars`, `.Official`,
/// `.Automated`). The name carries the registry, as podman prints it;
/// the description is cut to 45 characters unless `no_trunc` (Docker).
fn search_row(domain: &str, r: &serde_json::Value, no_trunc: bool) -> serde_json::Value {
    let ok = |k: &str| {
        if r[k].as_bool() == Some(true) {
            "[OK]"
        } else {
            ""
        }
    };
    let desc = r["description"]
        .as_str()
        .unwrap_or_default()
        .replace('\n', " ");
    let desc = if no_trunc {
        desc
    } else {
        super::views::ellipsis(&desc, 45)
    };
    let stars = r["star_count"].as_u64().unwrap_or(0);
    serde_json::json!({
        "Name": format!("{domain}/{}", r["name"].as_str().unwrap_or_default()),
        "Description": desc,
        "StarCount": stars.to_string(),
        "IsOfficial": ok("is_official"),
        "IsAutomated": ok("is_automated"),
        "Index": domain,
        "Stars": stars,
        "Official": ok("is_official"),
        "Automated": ok("is_automated"),
    })
}

/// `container exists`: 0 when it exists, 1 when not (podman).
pub fn container_exists(root: &Path, e: &EngineArgs, a: &ExistsArgs) -> Result<i32> {
    let engine = e.engine(root)?;
    Ok(if manage::exists(&engine, &a.name)? {
        0
    } else {
        1
    })
}

/// `image exists`: 0 when it exists, 1 when not (podman).
pub fn image_exists(root: &Path, a: &ExistsArgs) -> Result<i32> {
    let store = super::images::open(root)?;
    match store.lookup(&a.name) {
        Ok(_) => Ok(0),
        Err(berth_image::store::LookupError::NotFound(_)) => Ok(1),
        Err(e) => Err(e.into()),
    }
}

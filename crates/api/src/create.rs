//! `POST /containers/create`: Docker's container config (Config,
//! HostConfig, NetworkingConfig) as a `berth create` command line.
//! Fields berth cannot honour are refused by name, never dropped.

use serde_json::Value;

use crate::reply::ApiError;

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

fn positive(v: &Value) -> Option<i64> {
    v.as_i64().filter(|n| *n > 0)
}

/// A duration in nanoseconds as a Go duration berth parses.
fn dur(ns: i64) -> String {
    if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{ns}ns")
    }
}

struct Args(Vec<String>);

impl Args {
    fn opt(&mut self, k: &str, v: impl Into<String>) {
        self.0.push(k.into());
        self.0.push(v.into());
    }
    fn flag(&mut self, k: &str, on: bool) {
        if on {
            self.0.push(k.into());
        }
    }
}

/// `Healthcheck`: Test `["CMD-SHELL", s]`, `["CMD", ...]`, `["NONE"]`, or
/// empty (the image's); times in nanoseconds.
fn health(a: &mut Args, h: &Value) -> Result<(), ApiError> {
    if !h.is_object() {
        return Ok(());
    }
    let test = strings(&h["Test"]).unwrap_or_default();
    match test.first().map(String::as_str) {
        None => {}
        Some("NONE") => a.flag("--no-healthcheck", true),
        Some("CMD-SHELL") => a.opt("--health-cmd", test[1..].join(" ")),
        Some("CMD") => a.opt(
            "--health-cmd",
            serde_json::to_string(&test[1..]).unwrap_or_default(),
        ),
        Some(t) => {
            return Err(ApiError::bad(format!(
                "invalid Healthcheck.Test {t:?}: use NONE, CMD or CMD-SHELL"
            )))
        }
    }
    for (k, flag) in [
        ("Interval", "--health-interval"),
        ("Timeout", "--health-timeout"),
        ("StartPeriod", "--health-start-period"),
    ] {
        if let Some(ns) = positive(&h[k]) {
            a.opt(flag, dur(ns));
        }
    }
    if let Some(n) = positive(&h["Retries"]) {
        a.opt("--health-retries", n.to_string());
    }
    Ok(())
}

fn ports(a: &mut Args, hc: &Value) {
    for (port, binds) in hc["PortBindings"].as_object().into_iter().flatten() {
        let binds = binds.as_array().cloned().unwrap_or_default();
        if binds.is_empty() {
            a.opt("--publish", port.clone());
        }
        for b in binds {
            let ip = b["HostIp"].as_str().unwrap_or_default();
            let hp = b["HostPort"].as_str().unwrap_or_default();
            let spec = match (ip.is_empty(), hp.is_empty()) {
                (true, true) => port.clone(),
                (true, false) => format!("{hp}:{port}"),
                (false, _) => format!("{ip}:{hp}:{port}"),
            };
            a.opt("--publish", spec);
        }
    }
}

/// `HostConfig.Mounts` as `--mount` specs.
fn mounts(a: &mut Args, hc: &Value) -> Result<(), ApiError> {
    for m in hc["Mounts"].as_array().into_iter().flatten() {
        let kind = m["Type"].as_str().unwrap_or("volume");
        let target = text(&m["Target"])
            .ok_or_else(|| ApiError::bad("HostConfig.Mounts: a mount has no Target"))?;
        let mut spec = format!("type={kind}");
        if let Some(s) = text(&m["Source"]) {
            spec.push_str(&format!(",source={s}"));
        }
        spec.push_str(&format!(",target={target}"));
        if m["ReadOnly"].as_bool() == Some(true) {
            spec.push_str(",readonly");
        }
        if let Some(p) = text(&m["BindOptions"]["Propagation"]) {
            spec.push_str(&format!(",bind-propagation={p}"));
        }
        a.opt("--mount", spec);
    }
    Ok(())
}

fn network(a: &mut Args, body: &Value, hc: &Value) -> Result<(), ApiError> {
    let mode = hc["NetworkMode"].as_str().unwrap_or("default");
    match mode {
        "" | "default" | "bridge" => {}
        n => a.opt("--network", n),
    }
    let eps = body["NetworkingConfig"]["EndpointsConfig"].as_object();
    let mut aliases = Vec::new();
    for (name, ep) in eps.into_iter().flatten() {
        if !matches!(mode, "" | "default" | "bridge") && name != mode {
            return Err(ApiError::bad(format!(
                "NetworkingConfig: endpoint {name} is not the container's network {mode} (connect it after create)"
            )));
        }
        for al in strings(&ep["Aliases"]).unwrap_or_default() {
            if !al.is_empty() && !aliases.contains(&al) {
                aliases.push(al);
            }
        }
        if let Some(ip) = text(&ep["IPAMConfig"]["IPv4Address"]) {
            a.opt("--ip", ip);
        }
    }
    for al in aliases {
        a.opt("--network-alias", al);
    }
    for d in strings(&hc["Dns"]).unwrap_or_default() {
        a.opt("--dns", d);
    }
    for d in strings(&hc["DnsSearch"]).unwrap_or_default() {
        a.opt("--dns-search", d);
    }
    for d in strings(&hc["DnsOptions"]).unwrap_or_default() {
        a.opt("--dns-option", d);
    }
    for h in strings(&hc["ExtraHosts"]).unwrap_or_default() {
        a.opt("--add-host", h);
    }
    if hc["PublishAllPorts"].as_bool() == Some(true) {
        a.flag("--publish-all", true);
    }
    for p in body["ExposedPorts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|x| x.0)
    {
        a.opt("--expose", p.clone());
    }
    ports(a, hc);
    Ok(())
}

fn resources(a: &mut Args, hc: &Value) {
    if let Some(m) = positive(&hc["Memory"]) {
        a.opt("--memory", format!("{m}b"));
    }
    if let Some(m) = hc["MemorySwap"].as_i64().filter(|m| *m != 0) {
        a.opt(
            "--memory-swap",
            if m < 0 { "-1".into() } else { format!("{m}b") },
        );
    }
    if let Some(m) = positive(&hc["MemoryReservation"]) {
        a.opt("--memory-reservation", format!("{m}b"));
    }
    if let Some(n) = positive(&hc["NanoCpus"]) {
        a.opt("--cpus", format!("{}", n as f64 / 1e9));
    }
    if let Some(n) = positive(&hc["CpuShares"]) {
        a.opt("--cpu-shares", n.to_string());
    }
    if let Some(n) = positive(&hc["CpuPeriod"]) {
        a.opt("--cpu-period", n.to_string());
    }
    if let Some(n) = positive(&hc["CpuQuota"]) {
        a.opt("--cpu-quota", n.to_string());
    }
    if let Some(c) = text(&hc["CpusetCpus"]) {
        a.opt("--cpuset-cpus", c);
    }
    if let Some(n) = positive(&hc["PidsLimit"]) {
        a.opt("--pids-limit", n.to_string());
    }
    if let Some(n) = positive(&hc["ShmSize"]) {
        a.opt("--shm-size", format!("{n}b"));
    }
    for u in hc["Ulimits"].as_array().into_iter().flatten() {
        if let Some(n) = text(&u["Name"]) {
            a.opt(
                "--ulimit",
                format!(
                    "{n}={}:{}",
                    u["Soft"].as_i64().unwrap_or(0),
                    u["Hard"].as_i64().unwrap_or(0)
                ),
            );
        }
    }
}

fn security(a: &mut Args, hc: &Value) {
    a.flag("--privileged", hc["Privileged"].as_bool() == Some(true));
    a.flag("--read-only", hc["ReadonlyRootfs"].as_bool() == Some(true));
    a.flag("--init", hc["Init"].as_bool() == Some(true));
    for c in strings(&hc["CapAdd"]).unwrap_or_default() {
        a.opt("--cap-add", c);
    }
    for c in strings(&hc["CapDrop"]).unwrap_or_default() {
        a.opt("--cap-drop", c);
    }
    for s in strings(&hc["SecurityOpt"]).unwrap_or_default() {
        a.opt("--security-opt", s);
    }
    for g in strings(&hc["GroupAdd"]).unwrap_or_default() {
        a.opt("--group-add", g);
    }
    for (k, v) in hc["Sysctls"].as_object().into_iter().flatten() {
        a.opt(
            "--sysctl",
            format!("{k}={}", v.as_str().unwrap_or_default()),
        );
    }
    for d in hc["Devices"].as_array().into_iter().flatten() {
        if let Some(h) = text(&d["PathOnHost"]) {
            let c = text(&d["PathInContainer"]).unwrap_or(h);
            let p = text(&d["CgroupPermissions"]).unwrap_or("rwm");
            a.opt("--device", format!("{h}:{c}:{p}"));
        }
    }
    for (k, flag) in [
        ("IpcMode", "--ipc"),
        ("PidMode", "--pid"),
        ("UTSMode", "--uts"),
    ] {
        if let Some(m) = text(&hc[k]) {
            a.opt(flag, m);
        }
    }
}

/// The `berth create` command line for Docker's create body.
pub fn create_args(
    name: Option<&str>,
    body: &Value,
    link_hosts: &[String],
) -> Result<Vec<String>, ApiError> {
    let Some(image) = text(&body["Image"]) else {
        return Err(ApiError::bad("create: the body has no Image"));
    };
    let mut a = Args(vec!["create".into(), "--pull".into(), "never".into()]);
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        a.opt("--name", n.trim_start_matches('/'));
    }
    for e in strings(&body["Env"]).unwrap_or_default() {
        a.opt("--env", e);
    }
    if let Some(w) = text(&body["WorkingDir"]) {
        a.opt("--workdir", w);
    }
    if let Some(u) = text(&body["User"]) {
        a.opt("--user", u);
    }
    if let Some(h) = text(&body["Hostname"]) {
        a.opt("--hostname", h);
    }
    if let Some(s) = text(&body["StopSignal"]) {
        a.opt("--stop-signal", s);
    }
    if let Some(t) = body["StopTimeout"].as_i64().filter(|t| *t >= 0) {
        a.opt("--stop-timeout", t.to_string());
    }
    for (k, v) in body["Labels"].as_object().into_iter().flatten() {
        a.opt("--label", format!("{k}={}", v.as_str().unwrap_or_default()));
    }
    health(&mut a, &body["Healthcheck"])?;
    let hc = &body["HostConfig"];
    for b in strings(&hc["Binds"]).unwrap_or_default() {
        a.opt("--volume", b);
    }
    for v in strings(&hc["VolumesFrom"]).unwrap_or_default() {
        a.opt("--volumes-from", v);
    }
    // Config.Volumes: anonymous volumes (a path not already mounted).
    let binds = strings(&hc["Binds"]).unwrap_or_default();
    for p in body["Volumes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|x| x.0)
    {
        let taken = binds
            .iter()
            .any(|b| b.split(':').nth(1) == Some(p.as_str()))
            || hc["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["Target"] == p.as_str());
        if !taken {
            a.opt("--volume", p.clone());
        }
    }
    mounts(&mut a, hc)?;
    for (p, o) in hc["Tmpfs"].as_object().into_iter().flatten() {
        match o.as_str().filter(|o| !o.is_empty()) {
            Some(o) => a.opt("--tmpfs", format!("{p}:{o}")),
            None => a.opt("--tmpfs", p.clone()),
        }
    }
    network(&mut a, body, hc)?;
    resources(&mut a, hc);
    security(&mut a, hc);
    if let Some(p) = text(&hc["RestartPolicy"]["Name"]).filter(|s| *s != "no") {
        let n = hc["RestartPolicy"]["MaximumRetryCount"]
            .as_i64()
            .unwrap_or(0);
        a.opt(
            "--restart",
            if p == "on-failure" && n > 0 {
                format!("{p}:{n}")
            } else {
                p.into()
            },
        );
    }
    match text(&hc["LogConfig"]["Type"]) {
        None | Some("json-file" | "k8s-file") => {}
        Some(d) => a.opt("--log-driver", d),
    }
    for (k, v) in hc["LogConfig"]["Config"].as_object().into_iter().flatten() {
        a.opt(
            "--log-opt",
            format!("{k}={}", v.as_str().unwrap_or_default()),
        );
    }
    // Legacy links: `/etc/hosts` lines for the linked containers, as
    // Docker writes them (resolved by the caller).
    for h in link_hosts {
        a.opt("--add-host", h.clone());
    }
    let ep = strings(&body["Entrypoint"]);
    let mut cmd = strings(&body["Cmd"]);
    if let Some(ep) = &ep {
        a.opt("--entrypoint", ep.first().cloned().unwrap_or_default());
        if ep.len() > 1 {
            let mut c = ep[1..].to_vec();
            c.extend(cmd.take().unwrap_or_default());
            cmd = Some(c);
        }
    }
    a.flag("--rm", hc["AutoRemove"].as_bool() == Some(true));
    a.flag("--tty", body["Tty"].as_bool() == Some(true));
    let open_stdin = body["OpenStdin"].as_bool() == Some(true);
    a.flag("--interactive", open_stdin);
    a.flag(
        "--stdin-once",
        open_stdin && body["StdinOnce"].as_bool() == Some(true),
    );
    let mut a = a.0;
    a.push(image.into());
    a.extend(cmd.unwrap_or_default());
    Ok(a)
}

/// `HostConfig.Links` (`container[:alias]`) as (container, alias).
pub fn links(body: &Value) -> Vec<(String, String)> {
    strings(&body["HostConfig"]["Links"])
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let (c, a) = l.split_once(':').unwrap_or((&l, &l));
            let c = c.trim_start_matches('/').to_string();
            // Docker's `/name:/self/alias` form: the last part.
            let a = a.rsplit('/').next().unwrap_or(a).to_string();
            (c, a)
        })
        .collect()
}

//! From parsed Kubernetes objects to what `kube play` makes: pods
//! (`pod create` requests), their containers (`run` options), volumes and
//! host paths to check. Pure but for paths under the engine's root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::spec::{self, Container, PodSpec, Quantity};
use super::{invalid, KubeError, Object};
use crate::pods::PodCreate;
use crate::{Engine, RunOptions};

/// The label on the volumes made for `emptyDir`s: the pod's name
/// (`kube down` removes them with the pod, as podman does).
pub const EMPTYDIR_LABEL: &str = "io.berth.kube.emptydir";

/// Flags of `kube play` that apply to every pod.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--network`: the pods' network (default: berth's).
    pub network: Option<String>,
}

/// A `hostPath` volume's `type` check (Kubernetes' HostPathType).
#[derive(Debug, Clone, PartialEq)]
pub struct HostPathCheck {
    pub path: PathBuf,
    /// `""`, `DirectoryOrCreate`, `Directory`, `FileOrCreate`, `File`,
    /// `Socket`, `CharDevice`, `BlockDevice`.
    pub kind: String,
    /// Where the type was given (for errors).
    pub at: String,
}

/// One pod to make.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub create: PodCreate,
    /// Run to completion, in order, before `containers` start.
    pub init: Vec<RunOptions>,
    pub containers: Vec<RunOptions>,
    /// (image, pull policy: always|missing|never).
    pub images: Vec<(String, String)>,
    pub host_paths: Vec<HostPathCheck>,
    /// Volumes made for `emptyDir`s (labelled [`EMPTYDIR_LABEL`]).
    pub empty_dirs: Vec<String>,
    /// Named volumes of `persistentVolumeClaim`s (made when missing, kept).
    pub claims: Vec<String>,
    /// Directories made inside volumes for `subPath` mounts.
    pub sub_dirs: Vec<PathBuf>,
}

/// Everything a file asks for.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub pods: Vec<PodPlan>,
    /// `kind: PersistentVolumeClaim` documents: named volumes.
    pub claims: Vec<String>,
}

/// The plan of `objects`.
pub fn plan(engine: &Engine, objects: Vec<Object>, o: &PlanOptions) -> Result<Plan, KubeError> {
    let mut out = Plan::default();
    for (i, obj) in objects.into_iter().enumerate() {
        match obj {
            Object::Pod(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                let at = format!("document {} (Pod {name})", i + 1);
                out.pods
                    .push(pod(engine, &at, "spec", &name, &p.metadata, &p.spec, o)?);
            }
            Object::Deployment(d) => {
                let dname = d.metadata.name.clone().unwrap_or_default();
                let at = format!("document {} (Deployment {dname})", i + 1);
                let replicas = d.spec.replicas.unwrap_or(1);
                let mut meta = spec::ObjectMeta {
                    labels: d.spec.template.metadata.labels.clone(),
                    annotations: d.spec.template.metadata.annotations.clone(),
                    ..Default::default()
                };
                for (k, v) in &d.metadata.labels {
                    meta.labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for n in 0..replicas {
                    // podman 4.3's names for a Deployment's pods.
                    let name = format!("{dname}-pod-{n}");
                    out.pods.push(pod(
                        engine,
                        &at,
                        "spec.template.spec",
                        &name,
                        &meta,
                        &d.spec.template.spec,
                        o,
                    )?);
                }
            }
            Object::Claim(c) => out.claims.push(c.metadata.name.unwrap_or_default()),
        }
    }
    let mut seen = BTreeSet::new();
    for p in &out.pods {
        if !seen.insert(p.name.clone()) {
            return Err(KubeError::Failed(format!(
                "two objects make a pod named {}: give them different metadata.name",
                p.name
            )));
        }
    }
    Ok(out)
}

fn restart_policy(s: Option<&str>, at: &str, path: &str) -> Result<String, KubeError> {
    Ok(match s {
        None | Some("Always") => "always",
        Some("OnFailure") => "on-failure",
        Some("Never") => "no",
        Some(other) => {
            return Err(invalid(
                at,
                format!("{path}.restartPolicy: {other:?} is not Always, OnFailure or Never"),
            ))
        }
    }
    .to_string())
}

fn pod(
    engine: &Engine,
    at: &str,
    path: &str,
    name: &str,
    meta: &spec::ObjectMeta,
    s: &PodSpec,
    o: &PlanOptions,
) -> Result<PodPlan, KubeError> {
    crate::names::check_name(name).map_err(|e| invalid(at, format!("pod name {name:?}: {e}")))?;
    if s.containers.is_empty() {
        return Err(invalid(
            at,
            format!("{path}.containers: at least one container is needed"),
        ));
    }
    let labels: Vec<String> = meta
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let restart = restart_policy(s.restart_policy.as_deref(), at, path)?;
    let mut plan = PodPlan {
        name: name.to_string(),
        create: PodCreate {
            name: Some(name.to_string()),
            publish: Vec::new(),
            network: o.network.clone(),
            share: s
                .share_process_namespace
                .unwrap_or(false)
                .then(|| "+pid".to_string()),
            hostname: Some(s.hostname.clone().unwrap_or_else(|| name.to_string())),
            labels: labels.clone(),
            // Kubernetes: the host's user namespace unless `hostUsers:
            // false` (then a range of the pod's own), whatever the
            // engine's default for `pod create`.
            userns: Some(if s.host_users == Some(false) {
                "auto".into()
            } else {
                "host".into()
            }),
        },
        init: Vec::new(),
        containers: Vec::new(),
        images: Vec::new(),
        host_paths: Vec::new(),
        empty_dirs: Vec::new(),
        claims: Vec::new(),
        sub_dirs: Vec::new(),
    };
    // The pod's volumes by name.
    let mut volumes: BTreeMap<&str, &spec::Volume> = BTreeMap::new();
    for (i, v) in s.volumes.iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        let kinds = [
            v.host_path.is_some(),
            v.empty_dir.is_some(),
            v.persistent_volume_claim.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(invalid(
                at,
                format!("{vp}: give exactly one of hostPath, emptyDir, persistentVolumeClaim (the volume types berth supports)"),
            ));
        }
        if volumes.insert(&v.name, v).is_some() {
            return Err(invalid(at, format!("{vp}.name: {} is given twice", v.name)));
        }
        if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return Err(invalid(
                    at,
                    format!("{vp}.hostPath.path: {:?} is not absolute", h.path),
                ));
            }
            let kind = h.kind.clone().unwrap_or_default();
            const KINDS: [&str; 8] = [
                "",
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ];
            if !KINDS.contains(&kind.as_str()) {
                return Err(invalid(
                    at,
                    format!("{vp}.hostPath.type: unknown type {kind:?}"),
                ));
            }
            plan.host_paths.push(HostPathCheck {
                path: PathBuf::from(&h.path),
                kind,
                at: format!("{at}: {vp}.hostPath"),
            });
        }
        if let Some(e) = &v.empty_dir {
            if e.medium.as_deref().is_some_and(|m| !m.is_empty()) {
                return Err(invalid(
                    at,
                    format!("{vp}.emptyDir.medium: not supported by berth (a disk-backed emptyDir is; remove medium)"),
                ));
            }
            plan.empty_dirs.push(empty_dir_volume(name, &v.name));
        }
        if let Some(c) = &v.persistent_volume_claim {
            crate::volumes::check_name(&c.claim_name)
                .map_err(|e| invalid(at, format!("{vp}.persistentVolumeClaim.claimName: {e}")))?;
            if !plan.claims.contains(&c.claim_name) {
                plan.claims.push(c.claim_name.clone());
            }
        }
    }
    let ctx = Ctx {
        engine,
        at,
        pod: name,
        spec: s,
        volumes: &volumes,
        labels: &labels,
        annotations: &meta.annotations,
    };
    let mut names = BTreeSet::new();
    for (i, c) in s.init_containers.iter().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        if !names.insert(c.name.clone()) {
            return Err(invalid(at, format!("{cp}.name: {} is given twice", c.name)));
        }
        let r = ctx.container(&mut plan, &cp, c, "no")?;
        plan.init.push(r);
    }
    for (i, c) in s.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        if !names.insert(c.name.clone()) {
            return Err(invalid(at, format!("{cp}.name: {} is given twice", c.name)));
        }
        let r = ctx.container(&mut plan, &cp, c, &restart)?;
        plan.containers.push(r);
    }
    Ok(plan)
}

/// The volume name of the pod's `emptyDir` volume `vol`.
pub fn empty_dir_volume(pod: &str, vol: &str) -> String {
    format!("{pod}-{vol}")
}

struct Ctx<'a> {
    engine: &'a Engine,
    at: &'a str,
    pod: &'a str,
    spec: &'a PodSpec,
    volumes: &'a BTreeMap<&'a str, &'a spec::Volume>,
    labels: &'a [String],
    annotations: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn err(&self, msg: String) -> KubeError {
        invalid(self.at, msg)
    }

    fn container(
        &self,
        plan: &mut PodPlan,
        cp: &str,
        c: &Container,
        restart: &str,
    ) -> Result<RunOptions, KubeError> {
        crate::names::check_name(&c.name).map_err(|e| self.err(format!("{cp}.name: {e}")))?;
        if c.image.is_empty() {
            return Err(self.err(format!("{cp}.image: missing")));
        }
        let pull = match c.image_pull_policy.as_deref() {
            None | Some("IfNotPresent") => "missing",
            Some("Always") => "always",
            Some("Never") => "never",
            Some(other) => {
                return Err(self.err(format!(
                    "{cp}.imagePullPolicy: {other:?} is not Always, IfNotPresent or Never"
                )))
            }
        };
        if !plan.images.iter().any(|(i, _)| i == &c.image) {
            plan.images.push((c.image.clone(), pull.to_string()));
        }
        let mut r = RunOptions {
            name: Some(format!("{}-{}", self.pod, c.name)),
            image: c.image.clone(),
            workdir: c.working_dir.clone(),
            interactive: c.stdin,
            tty: c.tty,
            restart: Some(restart.to_string()),
            labels: self.labels.to_vec(),
            cgroup_parent: self.engine.cgroup_parent.clone(),
            pod: Some(self.pod.to_string()),
            ..Default::default()
        };
        // podman's mapping: command replaces the Entrypoint, args the Cmd.
        // berth's entrypoint is one word: the rest of command goes before
        // args (the same argv).
        match (&c.command, &c.args) {
            (Some(cmd), args) => {
                r.entrypoint = Some(cmd.first().cloned().unwrap_or_default());
                r.cmd = cmd.iter().skip(1).cloned().collect();
                r.cmd.extend(args.iter().flatten().cloned());
            }
            (None, Some(args)) => r.cmd = args.clone(),
            (None, None) => {}
        }
        // The object's annotations go on every container (as podman).
        r.extra.annotations = self
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.env(&mut r, cp, c)?;
        for (i, p) in c.ports.iter().enumerate() {
            let Some(hp) = p.host_port else {
                // As podman 4.3: a containerPort alone publishes nothing.
                continue;
            };
            let proto = match p.protocol.as_deref() {
                None | Some("TCP") => "tcp",
                Some("UDP") => "udp",
                Some(other) => {
                    return Err(self.err(format!(
                    "{cp}.ports[{i}].protocol: {other} is not supported by berth (TCP and UDP are)"
                )))
                }
            };
            let ip = p
                .host_ip
                .as_deref()
                .map(|ip| format!("{ip}:"))
                .unwrap_or_default();
            plan.create
                .publish
                .push(format!("{ip}{hp}:{}/{proto}", p.container_port));
        }
        self.mounts(plan, &mut r, cp, c)?;
        self.resources(&mut r, cp, c)?;
        self.security(&mut r, cp, c)?;
        if let Some(t) = self.spec.termination_grace_period_seconds {
            r.extra.stop_timeout = Some(t);
        }
        Ok(r)
    }

    fn env(&self, r: &mut RunOptions, cp: &str, c: &Container) -> Result<(), KubeError> {
        for (i, e) in c.env.iter().enumerate() {
            let ep = format!("{cp}.env[{i}]");
            if e.name.is_empty() || e.name.contains('=') {
                return Err(self.err(format!("{ep}.name: {:?} is not a variable name", e.name)));
            }
            let value = match (&e.value, &e.value_from) {
                (_, Some(from)) => {
                    let Some(f) = &from.field_ref else {
                        return Err(self.err(format!(
                            "{ep}.valueFrom: not supported by berth (configMapKeyRef, secretKeyRef \
                             and resourceFieldRef need a cluster; give value instead)"
                        )));
                    };
                    match f.field_path.as_str() {
                        "metadata.name" => self.pod.to_string(),
                        "metadata.namespace" => "default".to_string(),
                        other => {
                            return Err(self.err(format!(
                            "{ep}.valueFrom.fieldRef.fieldPath: {other} is not supported by berth \
                                 (metadata.name and metadata.namespace are; give value instead)"
                        )))
                        }
                    }
                }
                (Some(v), None) => v.clone(),
                (None, None) => String::new(),
            };
            r.env.push(format!("{}={value}", e.name));
        }
        Ok(())
    }

    fn mounts(
        &self,
        plan: &mut PodPlan,
        r: &mut RunOptions,
        cp: &str,
        c: &Container,
    ) -> Result<(), KubeError> {
        for (i, m) in c.volume_mounts.iter().enumerate() {
            let mp = format!("{cp}.volumeMounts[{i}]");
            let Some(v) = self.volumes.get(m.name.as_str()) else {
                return Err(self.err(format!(
                    "{mp}.name: no volume named {} in the pod's volumes",
                    m.name
                )));
            };
            if !m.mount_path.starts_with('/') || m.mount_path.contains(':') {
                return Err(self.err(format!(
                    "{mp}.mountPath: {:?} must be an absolute path without ':'",
                    m.mount_path
                )));
            }
            let sub = match m.sub_path.as_deref() {
                None | Some("") => None,
                Some(s) => {
                    let bad =
                        s.starts_with('/') || s.split('/').any(|p| p == "..") || s.contains(':');
                    if bad {
                        return Err(self.err(format!(
                            "{mp}.subPath: {s:?} must be a relative path inside the volume"
                        )));
                    }
                    Some(s)
                }
            };
            let mut ro = m.read_only;
            // The source: a host path (bind) or a named volume.
            let source = if let Some(h) = &v.host_path {
                match sub {
                    Some(s) => {
                        // Made when missing, as the kubelet does.
                        let d = format!("{}/{s}", h.path.trim_end_matches('/'));
                        plan.sub_dirs.push(PathBuf::from(&d));
                        d
                    }
                    None => h.path.clone(),
                }
            } else {
                let vol = if v.empty_dir.is_some() {
                    empty_dir_volume(self.pod, &v.name)
                } else {
                    let claim = v.persistent_volume_claim.as_ref().expect("one type");
                    ro |= claim.read_only;
                    claim.claim_name.clone()
                };
                match sub {
                    Some(s) => {
                        // A subPath of a volume: a bind of its directory
                        // there (made at play, as the kubelet does).
                        let d = crate::volume_store::volume_dir(self.engine, &vol)
                            .join("_data")
                            .join(s);
                        plan.sub_dirs.push(d.clone());
                        d.to_string_lossy().into_owned()
                    }
                    None => vol,
                }
            };
            let opts = if ro { ":ro" } else { "" };
            r.volumes.push(format!("{source}:{}{opts}", m.mount_path));
        }
        Ok(())
    }

    fn resources(&self, r: &mut RunOptions, cp: &str, c: &Container) -> Result<(), KubeError> {
        let rp = format!("{cp}.resources");
        if let Some(l) = &c.resources.limits {
            if let Some(m) = &l.memory {
                r.memory = Some(bytes(m, &format!("{rp}.limits.memory"), self)?.to_string());
            }
            if let Some(q) = &l.cpu {
                let milli = millicores(q, &format!("{rp}.limits.cpu"), self)?;
                r.cpus = Some(format!("{}", milli as f64 / 1000.0));
            }
        }
        if let Some(l) = &c.resources.requests {
            if let Some(m) = &l.memory {
                r.extra.memory_reservation =
                    Some(bytes(m, &format!("{rp}.requests.memory"), self)?.to_string());
            }
            if let Some(q) = &l.cpu {
                // The kubelet's rule: shares = milliCPU * 1024 / 1000, at least 2.
                let milli = millicores(q, &format!("{rp}.requests.cpu"), self)?;
                r.cpu_shares = Some((milli * 1024 / 1000).max(2));
            }
        }
        Ok(())
    }

    fn security(&self, r: &mut RunOptions, cp: &str, c: &Container) -> Result<(), KubeError> {
        let pod = self.spec.security_context.as_ref();
        let own = c.security_context.as_ref();
        let sp = format!("{cp}.securityContext");
        let user = own
            .and_then(|s| s.run_as_user)
            .or(pod.and_then(|s| s.run_as_user));
        let group = own
            .and_then(|s| s.run_as_group)
            .or(pod.and_then(|s| s.run_as_group));
        let non_root = own
            .and_then(|s| s.run_as_non_root)
            .or(pod.and_then(|s| s.run_as_non_root))
            .unwrap_or(false);
        match (user, group) {
            (Some(u), Some(g)) => r.user = Some(format!("{u}:{g}")),
            (Some(u), None) => r.user = Some(u.to_string()),
            (None, Some(_)) => {
                return Err(self.err(format!(
                    "{sp}.runAsGroup: berth needs runAsUser with it (add runAsUser)"
                )))
            }
            (None, None) => {}
        }
        if non_root && user.unwrap_or(0) == 0 {
            return Err(self.err(format!(
                "{sp}.runAsNonRoot: berth checks it against runAsUser only: give a non-zero runAsUser"
            )));
        }
        let Some(s) = own else {
            return Ok(());
        };
        if let Some(caps) = &s.capabilities {
            r.cap_add = caps.add.clone();
            r.cap_drop = caps.drop.clone();
        }
        r.privileged = s.privileged.unwrap_or(false);
        r.read_only = s.read_only_root_filesystem.unwrap_or(false);
        if s.allow_privilege_escalation == Some(false) {
            r.security_opt.push("no-new-privileges".into());
        }
        Ok(())
    }
}

/// A Kubernetes quantity (`128Mi`, `1G`, `500m`, `1e3`, `2`) as a number.
pub fn quantity(q: &Quantity) -> Option<f64> {
    let s = match q {
        Quantity::Int(n) => return Some(*n as f64),
        Quantity::Float(f) => return Some(*f),
        Quantity::Text(s) => s.trim(),
    };
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (suffix, mult) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suffix) {
            return num
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|n| n * mult);
        }
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn bytes(q: &Quantity, path: &str, c: &Ctx<'_>) -> Result<u64, KubeError> {
    match quantity(q) {
        Some(n) if n >= 1.0 => Ok(n.ceil() as u64),
        _ => Err(c.err(format!(
            "{path}: {q:?} is not a positive quantity (e.g. 128Mi, 1G)"
        ))),
    }
}

fn millicores(q: &Quantity, path: &str, c: &Ctx<'_>) -> Result<u64, KubeError> {
    match quantity(q) {
        Some(n) if n > 0.0 => Ok(((n * 1000.0).round() as u64).max(1)),
        _ => Err(c.err(format!(
            "{path}: {q:?} is not a positive CPU quantity (e.g. 500m, 2)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let t = |s: &str| quantity(&Quantity::Text(s.into()));
        assert_eq!(t("128Mi"), Some(134217728.0));
        assert_eq!(t("1G"), Some(1e9));
        assert_eq!(t("500m"), Some(0.5));
        assert_eq!(t("2"), Some(2.0));
        assert_eq!(t("1e3"), Some(1000.0));
        assert_eq!(t("x"), None);
        assert_eq!(quantity(&Quantity::Int(3)), Some(3.0));
    }
}

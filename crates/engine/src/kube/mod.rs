//! Kubernetes YAML: `kube play` (Pods, Deployments, PersistentVolumeClaims
//! as berth pods, containers and volumes), `kube down`, and `generate kube`
//! (YAML for running pods and containers). podman 4.3's mapping is the
//! reference: a Pod's containers are named `<pod>-<container>`, a
//! Deployment's replicas are pods `<deployment>-pod-N`, `command` replaces
//! the image's Entrypoint and `args` its Cmd, `hostPort`s are published by
//! the pod, init containers run to completion (then are removed) before
//! the others start.
//!
//! Parsing is strict: every field of every object is named in
//! [`spec`]; any other is refused with its path
//! (`spec.containers[0].livenessProbe`), before anything is made.

pub mod generate;
mod plan;
pub mod play;
pub mod spec;

pub use plan::{plan, HostPathCheck, Plan, PlanOptions, PodPlan};

use serde::Deserialize;

/// Errors of `kube play`, `kube down` and `generate kube`.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("not valid YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    /// `at`: where (document and field path); `msg`: what is wrong.
    #[error("{at}: {msg}")]
    Invalid { at: String, msg: String },
    #[error("{0}")]
    Failed(String),
}

pub(crate) fn invalid(at: impl Into<String>, msg: impl Into<String>) -> KubeError {
    KubeError::Invalid {
        at: at.into(),
        msg: msg.into(),
    }
}

/// One YAML document of a file, with its kind.
#[derive(Debug)]
pub enum Object {
    Pod(spec::Pod),
    Deployment(spec::Deployment),
    Claim(spec::Claim),
}

/// The documents of `text` (multi-document YAML; empty documents are
/// skipped), each checked against the fields berth supports.
pub fn parse(text: &str) -> Result<Vec<Object>, KubeError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = serde_yaml_ng::Value::deserialize(doc).map_err(KubeError::Yaml)?;
        if v.is_null() {
            continue;
        }
        let n = i + 1;
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| invalid(format!("document {n}"), "kind: missing"))?
            .to_string();
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let at = format!("document {n} ({kind} {name})");
        let o = match kind.as_str() {
            "Pod" => Object::Pod(typed(v, &at)?),
            "Deployment" => Object::Deployment(typed(v, &at)?),
            "PersistentVolumeClaim" => Object::Claim(typed(v, &at)?),
            other => {
                return Err(invalid(
                    format!("document {n}"),
                    format!(
                        "kind {other} is not supported by berth (Pod, Deployment and \
                         PersistentVolumeClaim are)"
                    ),
                ))
            }
        };
        if name.is_empty() {
            return Err(invalid(at, "metadata.name: missing"));
        }
        out.push(o);
    }
    if out.is_empty() {
        return Err(KubeError::Failed(
            "no Kubernetes object in the YAML (expected a Pod, Deployment or \
             PersistentVolumeClaim)"
                .into(),
        ));
    }
    Ok(out)
}

/// Deserializes `v`; an error names the field path.
fn typed<T: serde::de::DeserializeOwned>(
    v: serde_yaml_ng::Value,
    at: &str,
) -> Result<T, KubeError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's "unknown field `x`, expected one of ..." (the path is
        // the object's): the field's own path, without the list.
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or(rest);
            let full = if path == "." || path.is_empty() {
                field.to_string()
            } else if path.ends_with(field) {
                path
            } else {
                format!("{path}.{field}")
            };
            return invalid(
                at,
                format!("{full}: field not supported by berth (remove it to play this file)"),
            );
        }
        let path = if path == "." { String::new() } else { path };
        invalid(at, format!("{path}: {inner}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named_by_path() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: i\n    livenessProbe: {}\n";
        let e = parse(y).unwrap_err().to_string();
        assert!(
            e.contains("spec.containers[0].livenessProbe: field not supported"),
            "{e}"
        );
        let y = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: []\n  nodeName: x\n";
        let e = parse(y).unwrap_err().to_string();
        assert!(e.contains("spec.nodeName: field not supported"), "{e}");
        let y = "kind: Service\nmetadata: {name: s}\n";
        assert!(parse(y).unwrap_err().to_string().contains("kind Service"));
    }

    #[test]
    fn type_errors_name_the_path() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: i\n    ports:\n    - containerPort: http\n";
        let e = parse(y).unwrap_err().to_string();
        assert!(
            e.contains("spec.containers[0].ports[0].containerPort"),
            "{e}"
        );
    }
}

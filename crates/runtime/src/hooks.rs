//! Running hooks (config.md "POSIX-platform Hooks"): the hook gets the
//! container state on stdin, its own args and env, and is killed after its
//! timeout.

use crate::config::HookSpec;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path:?} could not start: {source}")]
    Start {
        kind: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {path:?} failed: {status}{stderr}")]
    Failed {
        kind: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook {path:?} timed out after {secs}s and was killed")]
    Timeout {
        kind: &'static str,
        path: String,
        secs: u64,
    },
}

/// Where a hook runs and what environment it gets when it names none.
#[derive(Default)]
struct Context<'a> {
    /// The hook's working directory; `None` keeps the caller's.
    cwd: Option<PathBuf>,
    /// The environment of a hook without `env`; `None` is an empty one.
    env: Option<&'a [String]>,
}

/// The hooks the runtime runs in its own namespaces work in the bundle
/// directory (runc runs them from there: it changes into the bundle).
fn runtime_context(state_json: &[u8]) -> Context<'static> {
    let bundle = serde_json::from_slice::<serde_json::Value>(state_json)
        .ok()
        .and_then(|v| v.get("bundle")?.as_str().map(PathBuf::from))
        .filter(|p| p.is_dir());
    Context {
        cwd: bundle,
        env: None,
    }
}

/// Run `hooks` (of a kind the runtime runs in its own namespaces) in order,
/// stopping at the first failure.
pub fn run_hooks(
    kind: &'static str,
    hooks: &[HookSpec],
    state_json: &[u8],
) -> Result<(), HookError> {
    let ctx = runtime_context(state_json);
    for h in hooks {
        run_hook(kind, h, state_json, &ctx)?;
    }
    Ok(())
}

/// Run the createContainer or startContainer hooks inside the container:
/// a hook that sets no `env` inherits the container process's environment
/// (runc sets the process environment up before running them). `cwd` is
/// the hooks' working directory (`None` keeps the caller's): runc runs
/// createContainer hooks in the container's rootfs (it changes into
/// `config.Rootfs` before them, libcontainer/rootfs_linux.go).
pub fn run_container_hooks(
    kind: &'static str,
    hooks: &[HookSpec],
    state_json: &[u8],
    process_env: &[String],
    cwd: Option<&Path>,
) -> Result<(), HookError> {
    let ctx = Context {
        cwd: cwd.map(Path::to_path_buf),
        env: Some(process_env),
    };
    for h in hooks {
        run_hook(kind, h, state_json, &ctx)?;
    }
    Ok(())
}

/// Run every hook, logging failures instead of stopping (poststart and
/// poststop failures are warnings, config.md "Lifecycle").
pub fn run_hooks_warn(kind: &'static str, hooks: &[HookSpec], state_json: &[u8]) {
    let ctx = runtime_context(state_json);
    for h in hooks {
        if let Err(e) = run_hook(kind, h, state_json, &ctx) {
            tracing::warn!("{e}");
        }
    }
}

fn run_hook(
    kind: &'static str,
    h: &HookSpec,
    state_json: &[u8],
    ctx: &Context<'_>,
) -> Result<(), HookError> {
    let path = h.path.display().to_string();
    let mut cmd = Command::new(&h.path);
    if let Some(a0) = h.args.first() {
        cmd.arg0(a0);
        cmd.args(&h.args[1..]);
    }
    if let Some(dir) = &ctx.cwd {
        cmd.current_dir(dir);
    }
    cmd.env_clear();
    let env = match (h.env.is_empty(), ctx.env) {
        (true, Some(inherited)) => inherited,
        _ => &h.env,
    };
    for e in env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Start {
        kind,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin.
        let _ = stdin.write_all(state_json);
    }
    let deadline = h.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(source) => return Err(HookError::Start { kind, path, source }),
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout {
                    kind,
                    path,
                    secs: h.timeout.unwrap_or(0),
                });
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let stderr = stderr.trim();
    Err(HookError::Failed {
        kind,
        path,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(args: &[&str], timeout: Option<u64>) -> HookSpec {
        HookSpec {
            path: PathBuf::from("/bin/sh"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["X=1".into()],
            timeout,
        }
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let script = format!("cat > {} ; echo $X >> {}", out.display(), out.display());
        run_hooks(
            "test",
            &[hook(&["sh", "-c", &script], None)],
            b"{\"id\":\"c\"}",
        )
        .expect("runs");
        assert_eq!(
            std::fs::read_to_string(out).expect("out"),
            "{\"id\":\"c\"}1\n"
        );
    }

    #[test]
    fn failing_hook_is_an_error_with_stderr() {
        let e = run_hooks(
            "test",
            &[hook(&["sh", "-c", "echo boom >&2; exit 3"], None)],
            b"",
        )
        .expect_err("fails");
        assert!(e.to_string().contains("boom"), "{e}");
    }

    #[test]
    fn slow_hook_times_out() {
        let e = run_hooks("test", &[hook(&["sh", "-c", "sleep 30"], Some(1))], b"")
            .expect_err("times out");
        assert!(matches!(e, HookError::Timeout { .. }));
    }
}

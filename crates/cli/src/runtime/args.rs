//! runc's command line, flag for flag. Flags may come before or after the
//! container ID, as with runc, and global flags anywhere.
//!
//! Parsed from tables ([`GLOBAL`], [`COMMANDS`]) with `lexopt` rather than
//! clap: the runtime starts for every container, and building clap's model
//! of all fifteen commands cost more start-up time and memory than the rest
//! of a `run` in user space. The tables also make the help text.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

mod table;
use table::*;

#[derive(Debug)]
pub struct Cli {
    pub global: Global,
    pub cmd: Cmd,
}

#[derive(Debug, Clone)]
pub struct Global {
    /// Directory for container state.
    pub root: PathBuf,
    /// `--root` was not given: `root` is the default, `/run/berth` or,
    /// rootless, `$XDG_RUNTIME_DIR/berth-runtime` (see [`default_root`]).
    pub root_default: RootDefault,
    /// Log file (errors and debug output go there too).
    pub log: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: String,
    pub debug: bool,
    /// Refused by `dispatch` (not supported yet).
    pub systemd_cgroup: bool,
    /// `true`, `false` or `auto`.
    pub rootless: Option<String>,
    /// Refused by `dispatch` (not supported yet).
    pub criu: Option<String>,
}

/// Where the state root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootDefault {
    /// `--root`.
    Given,
    /// `/run/berth`.
    System,
    /// `$XDG_RUNTIME_DIR/berth-runtime`.
    Xdg,
}

/// runc's default state root (main.go, `shouldHonorXDGRuntimeDir`):
/// `$XDG_RUNTIME_DIR/berth-runtime` when XDG_RUNTIME_DIR is set and the
/// caller is not root, or is root in a user namespace with USER other than
/// root; else `/run/berth`.
pub fn default_root() -> (PathBuf, RootDefault) {
    let system = (PathBuf::from("/run/berth"), RootDefault::System);
    let xdg = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => return system,
    };
    let honor = berth_runtime::rootless::euid_rootless()
        || (berth_runtime::rootless::in_user_namespace()
            && std::env::var_os("USER").is_none_or(|u| u != "root"));
    if honor {
        (xdg.join("berth-runtime"), RootDefault::Xdg)
    } else {
        system
    }
}

#[derive(Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

#[derive(Debug)]
pub enum Cmd {
    Create(CreateArgs),
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: String,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Run {
        create: CreateArgs,
        detach: bool,
        keep: bool,
    },
    List {
        format: String,
        quiet: bool,
    },
    Spec {
        bundle: PathBuf,
        rootless: bool,
        hardened: bool,
    },
    Features,
    Exec(ExecArgs),
    Ps {
        id: String,
        format: String,
        ps_args: Vec<String>,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Update(UpdateArgs),
    Events {
        id: String,
        stats: bool,
        interval: String,
    },
    /// Refused by `dispatch` (not supported yet), whatever its arguments.
    Checkpoint,
    /// Refused by `dispatch` (not supported yet), whatever its arguments.
    Restore,
}

#[derive(Debug, Clone)]
pub struct ExecArgs {
    pub id: String,
    pub command: Vec<String>,
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub cap: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: u32,
    pub cgroup: Vec<String>,
    pub ignore_paused: bool,
}

#[derive(Debug, Clone)]
pub struct UpdateArgs {
    pub id: String,
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
}

/// What a command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help`, `-h` or `help [COMMAND]`: this text on stdout.
    Help(String),
    /// `--version` or `-v`.
    Version,
}

/// A command line that cannot be parsed; the message says what to do.
#[derive(Debug)]
pub struct ArgError(String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The flags given, by long name: every value of each (bare flags have one
/// empty value per occurrence).
#[derive(Default)]
struct Given {
    values: HashMap<&'static str, Vec<String>>,
}

impl Given {
    fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }

    /// The last value of a flag (runc: a repeated flag's last value wins).
    fn last(&self, long: &str) -> Option<String> {
        self.values.get(long).and_then(|v| v.last().cloned())
    }

    fn all(&self, long: &str) -> Vec<String> {
        self.values.get(long).cloned().unwrap_or_default()
    }

    fn path(&self, long: &str) -> Option<PathBuf> {
        self.last(long).map(PathBuf::from)
    }

    fn number<T: std::str::FromStr>(&self, long: &str) -> Result<Option<T>, ArgError> {
        self.last(long)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ArgError(format!(
                        "--{long}: {v:?} is not a valid number for this flag"
                    ))
                })
            })
            .transpose()
    }

    fn choice(&self, long: &str, default: &str, allowed: &[&str]) -> Result<String, ArgError> {
        let v = self.last(long).unwrap_or_else(|| default.to_owned());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(ArgError(format!(
                "--{long}: {v:?} is not one of {}",
                allowed.join(", ")
            )))
        }
    }
}

fn text(s: OsString, what: &str) -> Result<String, ArgError> {
    s.into_string()
        .map_err(|s| ArgError(format!("{what} is not valid UTF-8: {s:?}")))
}

fn lex_err(e: lexopt::Error) -> ArgError {
    ArgError(e.to_string())
}

/// Parses a command line (without the program name).
pub fn parse<I>(args: I) -> Result<Parsed, ArgError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = lexopt::Parser::from_args(args);
    let mut given = Given::default();
    let mut cmd: Option<&'static CmdSpec> = None;
    let mut operands: Vec<String> = Vec::new();
    let mut help = false;
    while let Some(arg) = p.next().map_err(lex_err)? {
        let (long, short) = match arg {
            lexopt::Arg::Long(l) => (Some(l.to_owned()), None),
            lexopt::Arg::Short(c) => (None, Some(c)),
            lexopt::Arg::Value(v) => {
                let v = text(v, "an argument")?;
                let Some(c) = cmd else {
                    if v == "help" {
                        help = true;
                        continue;
                    }
                    cmd = Some(find_command(&v).ok_or_else(|| {
                        ArgError(format!(
                            "unknown command {v:?}; see `berth-runtime --help` for the commands"
                        ))
                    })?);
                    continue;
                };
                operands.push(v);
                // After the ID, exec's command and ps's arguments are taken
                // verbatim, flags included (runc: flags end at the ID);
                // a leading `--` is dropped.
                let trailing = match c.operands {
                    Operands::Trailing => true,
                    Operands::IdTrailing => operands.len() == 1,
                    _ => false,
                };
                if trailing {
                    let mut raw = p.raw_args().map_err(lex_err)?;
                    let _ = raw.next_if(|a| a == "--");
                    for rest in raw {
                        operands.push(text(rest, "an argument")?);
                    }
                }
                continue;
            }
        };
        if long.as_deref() == Some("help") || short == Some('h') {
            help = true;
            continue;
        }
        if cmd.is_none() && (long.as_deref() == Some("version") || short == Some('v')) {
            return Ok(Parsed::Version);
        }
        let tables = cmd.map(|c| c.flags).unwrap_or(&[]);
        let spec = std::iter::once(GLOBAL)
            .chain(tables.iter().copied())
            .flat_map(|t| t.iter())
            .find(|f| match (&long, short) {
                (Some(l), _) => f.long == l,
                (None, Some(s)) => f.short == Some(s),
                _ => false,
            });
        let shown = match (&long, short) {
            (Some(l), _) => format!("--{l}"),
            (_, Some(s)) => format!("-{s}"),
            _ => String::new(),
        };
        let Some(f) = spec else {
            let where_ = match cmd {
                Some(c) => format!("`{}`; see `berth-runtime {} --help`", c.name, c.name),
                None => "berth-runtime; see `berth-runtime --help`".to_owned(),
            };
            return Err(ArgError(format!("unknown flag {shown} for {where_}")));
        };
        let value = if f.long == "rootless" {
            // runc's --rootless takes a value; a bare one means true.
            match p.optional_value() {
                Some(v) => text(v, "--rootless")?,
                None => match p
                    .raw_args()
                    .map_err(lex_err)?
                    .next_if(|a| a == "true" || a == "false" || a == "auto")
                {
                    Some(v) => text(v, "--rootless")?,
                    None => "true".to_owned(),
                },
            }
        } else if f.value.is_some() {
            let v = p.value().map_err(|_| {
                ArgError(format!("{shown} needs a value ({})", f.value.unwrap_or("")))
            })?;
            text(v, &shown)?
        } else {
            // (Only a long flag can carry `=value`: after a short one,
            // lexopt's optional value is the rest of its cluster.)
            if let Some(v) = long.is_some().then(|| p.optional_value()).flatten() {
                return Err(ArgError(format!(
                    "{shown} takes no value (got {:?})",
                    v.to_string_lossy()
                )));
            }
            String::new()
        };
        given.values.entry(f.long).or_default().push(value);
    }
    if help {
        return Ok(Parsed::Help(help_text(cmd)));
    }
    let Some(c) = cmd else {
        return Err(ArgError(
            "no command given; see `berth-runtime --help` for the commands".into(),
        ));
    };
    build(c, &given, operands).map(|c| Parsed::Run(Box::new(c)))
}

fn build(c: &CmdSpec, g: &Given, mut ops: Vec<String>) -> Result<Cli, ArgError> {
    let (root, root_default) = match g.path("root") {
        Some(r) => (r, RootDefault::Given),
        None => default_root(),
    };
    let global = Global {
        root,
        root_default,
        log: g.path("log"),
        log_format: g.choice("log-format", "text", &["text", "json"])?,
        debug: g.has("debug"),
        systemd_cgroup: g.has("systemd-cgroup"),
        rootless: g.last("rootless"),
        criu: g.last("criu"),
    };
    let usage = || format!("usage: berth-runtime {}", c.usage);
    match c.operands {
        Operands::None if !ops.is_empty() => {
            return Err(ArgError(format!(
                "`{}` takes no arguments (got {:?}); {}",
                c.name,
                ops[0],
                usage()
            )))
        }
        Operands::Id | Operands::IdSignal | Operands::IdTrailing if ops.is_empty() => {
            return Err(ArgError(format!(
                "`{}` needs a container ID; {}",
                c.name,
                usage()
            )))
        }
        Operands::Id if ops.len() > 1 => {
            return Err(ArgError(format!(
                "`{}` takes one container ID, got {:?}; {}",
                c.name,
                ops,
                usage()
            )))
        }
        Operands::IdSignal if ops.len() > 2 => {
            return Err(ArgError(format!(
                "`kill` takes an ID and one signal, got {ops:?}; {}",
                usage()
            )))
        }
        _ => {}
    }
    let id = if matches!(c.operands, Operands::None | Operands::Trailing) {
        String::new()
    } else {
        ops.remove(0)
    };
    let create = |id: String| -> Result<CreateArgs, ArgError> {
        Ok(CreateArgs {
            id,
            bundle: g.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            pid_file: g.path("pid-file"),
            console_socket: g.path("console-socket"),
            no_pivot: g.has("no-pivot"),
            no_new_keyring: g.has("no-new-keyring"),
            preserve_fds: g.number("preserve-fds")?.unwrap_or(0),
        })
    };
    let cmd = match c.name {
        "create" => Cmd::Create(create(id)?),
        "start" => Cmd::Start { id },
        "state" => Cmd::State { id },
        "kill" => Cmd::Kill {
            id,
            signal: ops.pop().unwrap_or_else(|| "SIGTERM".into()),
            all: g.has("all"),
        },
        "delete" => Cmd::Delete {
            id,
            force: g.has("force"),
        },
        "run" => Cmd::Run {
            create: create(id)?,
            detach: g.has("detach"),
            keep: g.has("keep"),
        },
        "list" => Cmd::List {
            format: g.choice("format", "table", &["table", "json"])?,
            quiet: g.has("quiet"),
        },
        "spec" => Cmd::Spec {
            bundle: g.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            rootless: g.has("rootless"),
            hardened: g.has("hardened"),
        },
        "features" => Cmd::Features,
        "exec" => Cmd::Exec(ExecArgs {
            id,
            command: ops,
            process: g.path("process"),
            tty: g.has("tty"),
            detach: g.has("detach"),
            pid_file: g.path("pid-file"),
            console_socket: g.path("console-socket"),
            env: g.all("env"),
            cwd: g.path("cwd"),
            user: g.last("user"),
            additional_gids: g
                .all("additional-gids")
                .iter()
                .map(|v| {
                    v.parse().map_err(|_| {
                        ArgError(format!("--additional-gids: {v:?} is not a group ID"))
                    })
                })
                .collect::<Result<_, _>>()?,
            cap: g.all("cap"),
            no_new_privs: g.has("no-new-privs"),
            apparmor: g.last("apparmor"),
            process_label: g.last("process-label"),
            preserve_fds: g.number("preserve-fds")?.unwrap_or(0),
            cgroup: g.all("cgroup"),
            ignore_paused: g.has("ignore-paused"),
        }),
        "ps" => Cmd::Ps {
            id,
            format: g.choice("format", "table", &["table", "json"])?,
            ps_args: ops,
        },
        "pause" => Cmd::Pause { id },
        "resume" => Cmd::Resume { id },
        "update" => Cmd::Update(UpdateArgs {
            id,
            resources: g.path("resources"),
            blkio_weight: g.number("blkio-weight")?,
            cpu_period: g.number("cpu-period")?,
            cpu_quota: g.number("cpu-quota")?,
            cpu_rt_period: g.number("cpu-rt-period")?,
            cpu_rt_runtime: g.number("cpu-rt-runtime")?,
            cpu_share: g.number("cpu-share")?,
            cpuset_cpus: g.last("cpuset-cpus"),
            cpuset_mems: g.last("cpuset-mems"),
            memory: g.last("memory"),
            memory_reservation: g.last("memory-reservation"),
            memory_swap: g.last("memory-swap"),
            pids_limit: g.number("pids-limit")?,
        }),
        "events" => Cmd::Events {
            id,
            stats: g.has("stats"),
            interval: g.last("interval").unwrap_or_else(|| "5s".into()),
        },
        "checkpoint" => Cmd::Checkpoint,
        "restore" => Cmd::Restore,
        other => unreachable!("command {other} is in COMMANDS but not built"),
    };
    Ok(Cli { global, cmd })
}

fn flag_lines(out: &mut String, flags: &[Flag]) {
    for f in flags {
        let mut left = match f.short {
            Some(s) => format!("-{s}, --{}", f.long),
            None => format!("    --{}", f.long),
        };
        if let Some(v) = f.value {
            left.push(' ');
            left.push_str(v);
        }
        out.push_str(&format!("  {left:<34} {}\n", f.help));
    }
}

/// The help text of the program, or of one command.
fn help_text(cmd: Option<&CmdSpec>) -> String {
    let mut out = String::new();
    match cmd {
        Some(c) => {
            out.push_str(&format!(
                "berth-runtime {}: {}\n\nUsage: berth-runtime [GLOBAL FLAGS] {}\n",
                c.name, c.about, c.usage
            ));
            if !c.flags.is_empty() {
                out.push_str("\nFlags:\n");
                for t in c.flags {
                    flag_lines(&mut out, t);
                }
            }
        }
        None => {
            out.push_str(
                "berth's OCI runtime, command-line compatible with runc.\n\n\
                 Usage: berth-runtime [GLOBAL FLAGS] COMMAND [FLAGS] ARGS\n\nCommands:\n",
            );
            for c in COMMANDS {
                out.push_str(&format!("  {:<11} {}\n", c.name, c.about));
            }
            out.push_str(
                "\n`berth-runtime COMMAND --help` shows a command's flags.\n\n\
                 Example:\n  berth-runtime spec && berth-runtime run --bundle . mycontainer\n",
            );
        }
    }
    out.push_str("\nGlobal flags (before or after the command):\n");
    flag_lines(&mut out, GLOBAL);
    out.push_str("  -h, --help                         this help\n");
    if cmd.is_none() {
        out.push_str("  -v, --version                      the version\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        match parse(args.iter().copied()) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e.to_string(),
            other => panic!("{args:?} should fail: {other:?}"),
        }
    }

    #[test]
    fn create_flags_before_and_after_the_id_and_globals_anywhere() {
        let c = cli(&[
            "--root",
            "/r",
            "create",
            "--bundle=/b",
            "c1",
            "--pid-file",
            "/p",
            "--no-pivot",
            "--log-format",
            "json",
            "--preserve-fds",
            "2",
        ]);
        assert_eq!(c.global.root, PathBuf::from("/r"));
        assert_eq!(c.global.log_format, "json");
        let Cmd::Create(a) = c.cmd else {
            panic!("{:?}", c.cmd)
        };
        assert_eq!(a.id, "c1");
        assert_eq!(a.bundle, PathBuf::from("/b"));
        assert_eq!(a.pid_file, Some(PathBuf::from("/p")));
        assert!(a.no_pivot && !a.no_new_keyring);
        assert_eq!(a.preserve_fds, 2);
    }

    #[test]
    fn defaults() {
        let c = cli(&["run", "-d", "x"]);
        assert_eq!(c.global.root, PathBuf::from("/run/berth"));
        assert_eq!(c.global.log_format, "text");
        let Cmd::Run {
            create,
            detach,
            keep,
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(create.bundle, PathBuf::from("."));
        assert!(detach && !keep);
    }

    #[test]
    fn exec_command_keeps_its_own_flags() {
        let c = cli(&[
            "exec", "-t", "--env", "A=1", "-e", "B=2", "c1", "sh", "-c", "echo -e",
        ]);
        let Cmd::Exec(e) = c.cmd else { panic!() };
        assert!(e.tty);
        assert_eq!(e.env, ["A=1", "B=2"]);
        assert_eq!(e.command, ["sh", "-c", "echo -e"]);
        let c = cli(&["exec", "c1", "-t", "sh"]);
        let Cmd::Exec(e) = c.cmd else { panic!() };
        assert!(!e.tty, "flags end at the ID, as in runc");
        assert_eq!(e.command, ["-t", "sh"]);
        let c = cli(&["exec", "c1", "--", "ls", "-l"]);
        let Cmd::Exec(e) = c.cmd else { panic!() };
        assert_eq!(e.command, ["ls", "-l"]);
    }

    #[test]
    fn kill_signal_ps_args_and_short_clusters() {
        let c = cli(&["kill", "-a", "c1", "KILL"]);
        let Cmd::Kill { id, signal, all } = c.cmd else {
            panic!()
        };
        assert_eq!((id.as_str(), signal.as_str(), all), ("c1", "KILL", true));
        let c = cli(&["kill", "c1"]);
        let Cmd::Kill { signal, .. } = c.cmd else {
            panic!()
        };
        assert_eq!(signal, "SIGTERM");
        let c = cli(&["ps", "--format", "json", "c1"]);
        let Cmd::Ps {
            format, ps_args, ..
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(format, "json");
        assert!(ps_args.is_empty());
        for args in [
            &["ps", "c1", "-o", "pid"][..],
            &["ps", "c1", "--", "-o", "pid"],
        ] {
            let c = cli(args);
            let Cmd::Ps { ps_args, .. } = c.cmd else {
                panic!()
            };
            assert_eq!(ps_args, ["-o", "pid"]);
        }
        let c = cli(&["exec", "-td", "c1", "sh"]);
        let Cmd::Exec(e) = c.cmd else { panic!() };
        assert!(e.tty && e.detach);
    }

    #[test]
    fn rootless_forms() {
        assert_eq!(
            cli(&["--rootless", "list"]).global.rootless.as_deref(),
            Some("true")
        );
        assert_eq!(
            cli(&["--rootless", "false", "list"])
                .global
                .rootless
                .as_deref(),
            Some("false")
        );
        assert_eq!(
            cli(&["--rootless=auto", "list"]).global.rootless.as_deref(),
            Some("auto")
        );
        assert_eq!(cli(&["list"]).global.rootless, None);
    }

    #[test]
    fn update_numbers_and_aliases() {
        let c = cli(&["update", "--pids-limit", "15", "--memory", "48m", "c1"]);
        let Cmd::Update(u) = c.cmd else { panic!() };
        assert_eq!(u.pids_limit, Some(15));
        assert_eq!(u.memory.as_deref(), Some("48m"));
        assert!(matches!(
            cli(&["ls", "-q"]).cmd,
            Cmd::List { quiet: true, .. }
        ));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert!(err(&["frobnicate"]).contains("unknown command \"frobnicate\""));
        assert!(err(&["create", "--bogus", "x"]).contains("unknown flag --bogus for `create`"));
        assert!(err(&["start"]).contains("needs a container ID"));
        assert!(err(&["start", "a", "b"]).contains("takes one container ID"));
        assert!(err(&["create", "--bundle"]).contains("--bundle needs a value"));
        assert!(err(&["update", "--pids-limit", "many", "c"]).contains("not a valid number"));
        assert!(err(&["list", "--format", "xml"]).contains("not one of table, json"));
        assert!(err(&["delete", "--force=yes", "c"]).contains("takes no value"));
        assert!(err(&[]).contains("no command given"));
    }

    #[test]
    fn help_and_version() {
        let Ok(Parsed::Help(h)) = parse(["--help"]) else {
            panic!()
        };
        assert!(h.contains("create") && h.contains("--root"));
        let Ok(Parsed::Help(h)) = parse(["exec", "--help"]) else {
            panic!()
        };
        assert!(h.contains("--process") && h.contains("--root"));
        let Ok(Parsed::Help(h)) = parse(["help", "kill"]) else {
            panic!()
        };
        assert!(h.contains("--all"));
        assert!(matches!(parse(["--version"]), Ok(Parsed::Version)));
        // Every command in the table builds.
        for c in COMMANDS {
            let args: Vec<&str> = match c.operands {
                Operands::None | Operands::Trailing => vec![c.name],
                _ => vec![c.name, "id"],
            };
            assert!(matches!(parse(args), Ok(Parsed::Run(_))), "{}", c.name);
        }
    }
}

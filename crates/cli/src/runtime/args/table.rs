//! The tables runc's command line is parsed from and its help is made
//! from: the global flags and, per command, its operands and flags.

/// One flag: `--long`, maybe `-s`, with a value named `value` or none.
pub(super) struct Flag {
    pub(super) long: &'static str,
    pub(super) short: Option<char>,
    pub(super) value: Option<&'static str>,
    pub(super) help: &'static str,
}

const fn flag(long: &'static str, short: Option<char>, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        value: None,
        help,
    }
}

const fn opt(
    long: &'static str,
    short: Option<char>,
    value: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short,
        value: Some(value),
        help,
    }
}

pub(super) const GLOBAL: &[Flag] = &[
    opt(
        "root",
        None,
        "DIR",
        "directory for container state (default /run/berth; tmpfs recommended)",
    ),
    opt(
        "log",
        None,
        "FILE",
        "log file (errors and debug output go there too)",
    ),
    opt(
        "log-format",
        None,
        "FORMAT",
        "log format: text (default) or json",
    ),
    flag("debug", None, "debug logging"),
    flag(
        "systemd-cgroup",
        None,
        "use systemd to manage cgroups (not supported by berth yet)",
    ),
    opt(
        "rootless",
        None,
        "true|false|auto",
        "rootless mode: cgroups best effort (default auto: when not root or in a user namespace); bare --rootless means true",
    ),
    opt(
        "criu",
        None,
        "PATH",
        "path to criu (checkpoint/restore is not supported by berth yet)",
    ),
];

pub(super) const CREATE_FLAGS: &[Flag] = &[
    opt(
        "bundle",
        Some('b'),
        "DIR",
        "path to the bundle (directory with config.json; default .)",
    ),
    opt(
        "pid-file",
        None,
        "FILE",
        "write the container's pid to this file",
    ),
    opt(
        "console-socket",
        None,
        "SOCKET",
        "unix socket that receives the pty master (SCM_RIGHTS)",
    ),
    flag(
        "no-pivot",
        None,
        "use MS_MOVE + chroot instead of pivot_root",
    ),
    flag(
        "no-new-keyring",
        None,
        "do not create a new session keyring",
    ),
    opt(
        "preserve-fds",
        None,
        "N",
        "pass N extra descriptors (3..3+N) to the container",
    ),
];

pub(super) const RUN_FLAGS: &[Flag] = &[
    flag("detach", Some('d'), "do not wait for the container"),
    flag("keep", None, "keep the container after it exits"),
];

pub(super) const EXEC_FLAGS: &[Flag] = &[
    opt(
        "process",
        Some('p'),
        "FILE",
        "a process.json (runtime-spec \"process\" object) to run",
    ),
    flag("tty", Some('t'), "allocate a pseudo-TTY"),
    flag("detach", Some('d'), "do not wait for the process"),
    opt(
        "pid-file",
        None,
        "FILE",
        "write the process's pid to this file",
    ),
    opt(
        "console-socket",
        None,
        "SOCKET",
        "unix socket that receives the pty master",
    ),
    opt(
        "env",
        Some('e'),
        "KEY=VALUE",
        "extra environment variable, repeatable",
    ),
    opt("cwd", None, "DIR", "working directory inside the container"),
    opt("user", Some('u'), "UID[:GID]", "user to run as"),
    opt(
        "additional-gids",
        Some('g'),
        "GID",
        "additional group ID, repeatable",
    ),
    opt("cap", Some('c'), "CAP", "add a capability, repeatable"),
    flag("no-new-privs", None, "set no_new_privs"),
    opt("apparmor", None, "PROFILE", "AppArmor profile"),
    opt("process-label", None, "LABEL", "SELinux label"),
    opt(
        "preserve-fds",
        None,
        "N",
        "pass N extra descriptors (3..3+N) to the process",
    ),
    opt(
        "cgroup",
        None,
        "PATH",
        "join a sub-cgroup (not supported by berth yet)",
    ),
    flag(
        "ignore-paused",
        None,
        "ignore paused state (not supported by berth yet)",
    ),
];

pub(super) const UPDATE_FLAGS: &[Flag] = &[
    opt(
        "resources",
        Some('r'),
        "FILE",
        "resources.json (runtime-spec linux.resources); - for stdin",
    ),
    opt("blkio-weight", None, "N", "block IO weight (10-1000)"),
    opt("cpu-period", None, "US", "CPU CFS period"),
    opt("cpu-quota", None, "US", "CPU CFS quota"),
    opt("cpu-rt-period", None, "US", "CPU realtime period"),
    opt("cpu-rt-runtime", None, "US", "CPU realtime runtime"),
    opt("cpu-share", None, "N", "CPU shares (relative weight)"),
    opt("cpuset-cpus", None, "LIST", "CPUs to run on"),
    opt("cpuset-mems", None, "LIST", "memory nodes to use"),
    opt(
        "memory",
        None,
        "SIZE",
        "memory limit in bytes (or with a k, m, g suffix)",
    ),
    opt("memory-reservation", None, "SIZE", "memory soft limit"),
    opt("memory-swap", None, "SIZE", "memory plus swap limit"),
    opt("pids-limit", None, "N", "maximum number of processes"),
];

pub(super) const FORMAT_FLAG: Flag = opt("format", Some('f'), "FORMAT", "table (default) or json");

/// How a command takes its operands.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Operands {
    None,
    /// The container ID.
    Id,
    /// The container ID and an optional signal.
    IdSignal,
    /// The container ID, then everything after it verbatim.
    IdTrailing,
    /// Everything verbatim.
    Trailing,
}

pub(super) struct CmdSpec {
    pub(super) name: &'static str,
    pub(super) alias: Option<&'static str>,
    pub(super) usage: &'static str,
    pub(super) about: &'static str,
    pub(super) operands: Operands,
    pub(super) flags: &'static [&'static [Flag]],
}

pub(super) const COMMANDS: &[CmdSpec] = &[
    CmdSpec {
        name: "create",
        alias: None,
        usage: "create [FLAGS] ID",
        about: "create a container, blocked before its program until `start`",
        operands: Operands::Id,
        flags: &[CREATE_FLAGS],
    },
    CmdSpec {
        name: "start",
        alias: None,
        usage: "start ID",
        about: "start a created container",
        operands: Operands::Id,
        flags: &[],
    },
    CmdSpec {
        name: "state",
        alias: None,
        usage: "state ID",
        about: "print a container's state as JSON",
        operands: Operands::Id,
        flags: &[],
    },
    CmdSpec {
        name: "kill",
        alias: None,
        usage: "kill [--all] ID [SIGNAL]",
        about: "send a signal (name or number, default SIGTERM) to a container",
        operands: Operands::IdSignal,
        flags: &[&[flag(
            "all",
            Some('a'),
            "signal every process of the container",
        )]],
    },
    CmdSpec {
        name: "delete",
        alias: None,
        usage: "delete [--force] ID",
        about: "delete a container and everything it holds",
        operands: Operands::Id,
        flags: &[&[flag("force", Some('f'), "kill a running container first")]],
    },
    CmdSpec {
        name: "run",
        alias: None,
        usage: "run [FLAGS] ID",
        about: "create and start a container; in the foreground, wait for it",
        operands: Operands::Id,
        flags: &[CREATE_FLAGS, RUN_FLAGS],
    },
    CmdSpec {
        name: "list",
        alias: Some("ls"),
        usage: "list [--format table|json] [--quiet]",
        about: "list containers",
        operands: Operands::None,
        flags: &[&[FORMAT_FLAG, flag("quiet", Some('q'), "only IDs")]],
    },
    CmdSpec {
        name: "spec",
        alias: None,
        usage: "spec [--bundle DIR] [--rootless] [--hardened]",
        about: "write a default config.json for a new bundle",
        operands: Operands::None,
        flags: &[&[
            opt("bundle", Some('b'), "DIR", "where to write config.json (default .)"),
            flag("rootless", None, "a spec for running without root"),
            flag(
                "hardened",
                None,
                "berth's hardened defaults: default seccomp profile, Docker's default capabilities, podman's masked and read-only paths, no_new_privs",
            ),
        ]],
    },
    CmdSpec {
        name: "features",
        alias: None,
        usage: "features",
        about: "print what this runtime supports (runtime-spec features.md)",
        operands: Operands::None,
        flags: &[],
    },
    CmdSpec {
        name: "exec",
        alias: None,
        usage: "exec [FLAGS] ID [COMMAND [ARG...]]",
        about: "run a new process inside a container",
        operands: Operands::IdTrailing,
        flags: &[EXEC_FLAGS],
    },
    CmdSpec {
        name: "ps",
        alias: None,
        usage: "ps [--format table|json] ID [PS_ARGS...]",
        about: "list a container's processes (table: ps(1) with PS_ARGS, default -ef)",
        operands: Operands::IdTrailing,
        flags: &[&[FORMAT_FLAG]],
    },
    CmdSpec {
        name: "pause",
        alias: None,
        usage: "pause ID",
        about: "freeze every process of a container",
        operands: Operands::Id,
        flags: &[],
    },
    CmdSpec {
        name: "resume",
        alias: None,
        usage: "resume ID",
        about: "thaw a paused container",
        operands: Operands::Id,
        flags: &[],
    },
    CmdSpec {
        name: "update",
        alias: None,
        usage: "update [FLAGS] ID",
        about: "change a container's resource limits live",
        operands: Operands::Id,
        flags: &[UPDATE_FLAGS],
    },
    CmdSpec {
        name: "events",
        alias: None,
        usage: "events [--stats] [--interval DURATION] ID",
        about: "print container statistics and OOM events as JSON",
        operands: Operands::Id,
        flags: &[&[
            flag("stats", None, "print one statistics object and exit"),
            opt(
                "interval",
                None,
                "DURATION",
                "interval between statistics, e.g. 5s, 500ms (default 5s)",
            ),
        ]],
    },
    CmdSpec {
        name: "checkpoint",
        alias: None,
        usage: "checkpoint ...",
        about: "checkpoint a container (not supported by berth yet)",
        operands: Operands::Trailing,
        flags: &[],
    },
    CmdSpec {
        name: "restore",
        alias: None,
        usage: "restore ...",
        about: "restore a container (not supported by berth yet)",
        operands: Operands::Trailing,
        flags: &[],
    },
];

pub(super) fn find_command(name: &str) -> Option<&'static CmdSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.alias == Some(name))
}

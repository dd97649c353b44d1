//! The same everyday commands through podman 4.3 (runc, an isolated store)
//! and through `berth`, comparing exit codes and key outputs. Table
//! driven: a new command is one line in [`CASES`]. The whole test runs in
//! a network and mount namespace it creates (`unshare -n -m`, the test
//! binary re-run inside), so no host bridge, route or mount is touched;
//! every container also runs with `--network none`.

mod callers_support;
use callers_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const INNER: &str = "BERTH_COMPAT_INNER";

/// What is compared besides the exit code.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    /// Only the exit code.
    Code,
    /// stdout, byte for byte.
    Out,
    /// stdout's lines, in any order (podman works in parallel).
    Sorted,
    /// stdout is one 64-hex ID on each side.
    Id,
    /// The sorted `Names` of `ps -a --format json`.
    PsNames,
    /// These fields of `inspect`'s first document (dotted paths).
    Json(&'static [&'static str]),
    /// The content of the host file `{out}` that the command wrote.
    OutFile,
    /// The number of stdout lines.
    Count,
    /// The sorted member names of the tar `{out}` the command wrote,
    /// without each engine's own files (podman's `run/.containerenv` and
    /// `etc/mtab`; berth's `etc/resolv.conf` under `--network none`, see
    /// docs/cli.md).
    TarList,
    /// A deliberate difference (docs/cli.md): both outputs are shown in
    /// the report, neither is required to match.
    Differs(&'static str),
}

/// One command line: `{img}` is the busybox image, `{in}` a host file
/// with known content, `{out}` a fresh host path per engine. `run` and
/// `create` get `--network none --cgroup-parent <the test's>` added.
struct Case {
    args: &'static [&'static str],
    cmp: Cmp,
}

const fn c(args: &'static [&'static str], cmp: Cmp) -> Case {
    Case { args, cmp }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    c(&["run", "--rm", "{img}", "echo", "hello"], Cmp::Out),
    c(&["run", "--rm", "{img}", "sh", "-c", "exit 1"], Cmp::Code),
    c(&["run", "--rm", "{img}", "sh", "-c", "exit 42"], Cmp::Code),
    c(&["run", "--rm", "{img}", "/etc"], Cmp::Code),
    c(&["run", "--rm", "{img}", "no-such-command"], Cmp::Code),
    c(&["run", "--rm", "{img}", "/no/such/file"], Cmp::Code),
    c(&["run", "--rm", "--no-such-flag", "{img}"], Cmp::Code),
    c(&["run", "--rm", "{img}", "sh", "-c", "sleep 60 & kill -9 $!; wait $!"], Cmp::Code),
    c(&["run", "-d", "--name", "k1", "{img}", "sleep", "300"], Cmp::Id),
    c(&["kill", "k1"], Cmp::Code),
    c(&["wait", "k1"], Cmp::Out),
    c(&["inspect", "k1"], Cmp::Json(&["State.Status", "State.ExitCode"])),
    c(&["rm", "k1"], Cmp::Out),
    c(&["run", "--rm", "-e", "FOO=bar", "{img}", "sh", "-c", "echo $FOO"], Cmp::Out),
    c(&["run", "--rm", "-w", "/tmp", "{img}", "pwd"], Cmp::Out),
    c(&["run", "--rm", "--user", "nobody", "{img}", "id", "-u"], Cmp::Out),
    c(&["run", "--rm", "--hostname", "box", "{img}", "hostname"], Cmp::Out),
    c(&["run", "--rm", "--entrypoint", "echo", "{img}", "via-entrypoint"], Cmp::Out),
    c(&["run", "--rm", "{img}", "sh", "-c", "echo to-err >&2"], Cmp::Out),
    c(&["run", "--rm", "{img}", "cat", "/proc/self/net/dev"], Cmp::Code),
    c(&["ps", "-a", "-q"], Cmp::Out),
    c(&["run", "--name", "c1", "{img}", "sh", "-c", "echo logged"], Cmp::Out),
    c(&["logs", "c1"], Cmp::Out),
    c(&["ps", "-a", "--format", "json"], Cmp::PsNames),
    c(&["inspect", "c1"], Cmp::Json(&["State.Status", "State.ExitCode", "State.Running", "Config.Cmd"])),
    c(&["create", "--name", "cr", "{img}", "echo", "created"], Cmp::Id),
    c(&["inspect", "cr"], Cmp::Json(&["State.Status", "State.Running"])),
    c(&["start", "-a", "cr"], Cmp::Out),
    c(&["run", "-d", "--name", "d1", "{img}", "sleep", "300"], Cmp::Id),
    c(&["exec", "d1", "echo", "in-exec"], Cmp::Out),
    c(&["exec", "d1", "sh", "-c", "exit 3"], Cmp::Code),
    c(&["exec", "d1", "no-such-command"], Cmp::Code),
    c(&["exec", "-d", "d1", "sleep", "1"], Cmp::Id),
    c(&["exec", "-e", "X=1", "-w", "/tmp", "d1", "sh", "-c", "echo $X $PWD"], Cmp::Out),
    c(&["inspect", "d1"], Cmp::Json(&["State.Status", "State.Running", "Config.Cmd"])),
    c(&["exec", "d1", "sh", "-c", "echo $PATH $HOME"], Cmp::Out),
    c(&["cp", "{in}", "d1:/tmp/copied"], Cmp::Code),
    c(&["exec", "d1", "cat", "/tmp/copied"], Cmp::Out),
    c(&["cp", "d1:/tmp/copied", "{out}"], Cmp::OutFile),
    c(&["cp", "d1:/no/such", "{out}"], Cmp::Code),
    c(&["rename", "d1", "d2"], Cmp::Code),
    c(&["ps", "-a", "--format", "json"], Cmp::PsNames),
    c(&["stop", "-t", "1", "d2"], Cmp::Code),
    c(&["wait", "d2"], Cmp::Out),
    c(&["inspect", "d2"], Cmp::Json(&["State.Status", "State.ExitCode", "State.Running"])),
    c(&["rm", "d2"], Cmp::Out),
    c(&["rm", "c1", "cr"], Cmp::Sorted),
    c(&["rm", "no-such-container"], Cmp::Code),
    c(&["inspect", "no-such-container"], Cmp::Differs("inspect of nothing exits 1 as Docker's (podman 125)")),
    c(&["ps", "-a", "-q"], Cmp::Out),
    c(&["volume", "create", "vol1"], Cmp::Out),
    c(&["volume", "ls", "-q"], Cmp::Out),
    c(&["run", "--rm", "-v", "vol1:/data", "{img}", "sh", "-c", "echo kept > /data/f"], Cmp::Code),
    c(&["run", "--rm", "-v", "vol1:/data", "{img}", "cat", "/data/f"], Cmp::Out),
    c(&["volume", "rm", "vol1"], Cmp::Out),
    c(&["volume", "ls", "-q"], Cmp::Out),
    c(&["volume", "rm", "no-such-volume"], Cmp::Code),
    c(&["tag", "{img}", "localhost/extra:1"], Cmp::Code),
    c(&["run", "--rm", "localhost/extra:1", "echo", "tagged"], Cmp::Out),
    c(&["rmi", "localhost/extra:1"], Cmp::Code),
    c(&["rmi", "localhost/no-such:1"], Cmp::Code),
    c(&["run", "--rm", "--network", "none", "{img}", "cat", "/sys/class/net/lo/operstate"], Cmp::Out),
    c(&["run", "--rm", "--network", "none", "--dns", "10.0.0.1", "{img}", "true"], Cmp::Code),
    c(&["volume", "create", "vol2"], Cmp::Out),
    c(&["create", "--name", "vu", "-v", "vol2:/d", "{img}", "true"], Cmp::Id),
    c(&["volume", "rm", "-f", "vol2"], Cmp::Out),
    c(&["ps", "-a", "-q"], Cmp::Out),
    c(&["run", "-d", "--name", "t1", "{img}", "sh", "-c", "mkdir /t; echo x > /t/f; sleep 300"], Cmp::Id),
    c(&["exec", "t1", "test", "-f", "/t/f"], Cmp::Code),
    c(&["cp", "t1:/t", "-"], Cmp::Code),
    c(&["rm", "-f", "t1"], Cmp::Out),
    // pause/unpause, diff, commit, history, exists, top, export, update.
    c(&["run", "-d", "--name", "p1", "{img}", "sh", "-c", "mkdir /dd; echo x > /dd/f; rm /bin/ls; sleep 300"], Cmp::Id),
    c(&["exec", "p1", "test", "-f", "/dd/f"], Cmp::Code),
    c(&["pause", "p1"], Cmp::Code),
    c(&["inspect", "p1"], Cmp::Json(&["State.Status", "State.Paused"])),
    c(&["inspect", "-f", "{{.State.Running}}", "p1"], Cmp::Differs("a paused container is Running in Docker's inspect; podman says false")),
    c(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"], Cmp::Out),
    c(&["pause", "p1"], Cmp::Code),
    c(&["unpause", "p1"], Cmp::Code),
    c(&["inspect", "p1"], Cmp::Json(&["State.Status", "State.Paused"])),
    c(&["unpause", "p1"], Cmp::Code),
    c(&["diff", "p1"], Cmp::Differs("podman lists C /etc for the hosts and resolv.conf files it writes; berth, as dockerd, leaves its own bind-mounted /etc files out")),
    c(&["container", "exists", "p1"], Cmp::Code),
    c(&["container", "exists", "no-such-container"], Cmp::Code),
    c(&["commit", "-q", "p1", "localhost/committed:1"], Cmp::Id),
    c(&["image", "exists", "localhost/committed:1"], Cmp::Code),
    c(&["image", "exists", "localhost/no-such:1"], Cmp::Code),
    c(&["run", "--rm", "localhost/committed:1", "cat", "/dd/f"], Cmp::Out),
    c(&["run", "--rm", "localhost/committed:1", "test", "-e", "/bin/ls"], Cmp::Code),
    c(&["history", "-q", "localhost/committed:1"], Cmp::Count),
    c(&["images", "--format", "{{.Repository}}:{{.Tag}}"], Cmp::Sorted),
    c(&["top", "p1"], Cmp::Differs("top without ps options: podman's ps -ef columns, berth's PID COMMAND")),
    c(&["update", "--cpu-shares", "512", "p1"], Cmp::Code),
    c(&["inspect", "p1"], Cmp::Differs("after update --cpu-shares 512 podman 4.3's inspect still says 0; berth, as Docker, shows 512")),
    c(&["export", "-o", "{out}", "p1"], Cmp::TarList),
    c(&["rm", "-f", "p1"], Cmp::Out),
    c(&["rmi", "localhost/committed:1"], Cmp::Code),
    // --format templates.
    c(&["run", "-d", "--name", "f1", "--label", "a=1", "{img}", "sleep", "300"], Cmp::Id),
    c(&["inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Config.Labels.a}} {{index .Config.Labels \"a\"}} {{json .Config.Cmd}} {{.Config.Image}} {{len .Config.Labels}}", "f1"], Cmp::Out),
    c(&["inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}} {{if .State.Running}}up{{end}} {{upper .State.Status}} {{join .Config.Cmd \"+\"}}", "f1"], Cmp::Out),
    c(&["ps", "--format", "{{.Names}} {{.Image}} {{.Command}}"], Cmp::Differs("ps {{.Command}}: Docker's quoted, cut command; podman prints it bare")),
    c(&["ps", "--format", "{{.Names}} {{.Image}}"], Cmp::Out),
    c(&["ps", "--filter", "label=a=1", "--format", "{{.Names}}"], Cmp::Out),
    c(&["ps", "-a", "--filter", "status=running", "--format", "{{.Names}}"], Cmp::Out),
    c(&["volume", "create", "--label", "v=1", "vol3"], Cmp::Out),
    c(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"], Cmp::Out),
    c(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels.v}}", "vol3"], Cmp::Out),
    c(&["volume", "rm", "vol3"], Cmp::Out),
    c(&["network", "create", "cnet"], Cmp::Out),
    c(&["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "cnet"], Cmp::Out),
    c(&["network", "ls", "--format", "{{.Name}}"], Cmp::Differs("the default network is berth (podman: podman)")),
    c(&["network", "rm", "cnet"], Cmp::Out),
    c(&["rm", "-f", "f1"], Cmp::Out),
    // run flags.
    c(&["run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=512:1024", "{img}", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], Cmp::Out),
    c(&["run", "--rm", "{img}", "test", "-e", "/etc/resolv.conf"], Cmp::Differs("--network none: berth (as Docker) still gives /etc/resolv.conf, podman none")),
    c(&["run", "--rm", "--shm-size", "8m", "{img}", "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"], Cmp::Out),
    c(&["run", "--rm", "--sysctl", "kernel.msgmax=8192", "{img}", "cat", "/proc/sys/kernel/msgmax"], Cmp::Out),
    c(&["run", "--rm", "--group-add", "1234", "{img}", "id", "-G"], Cmp::Out),
    c(&["run", "--rm", "--cap-drop", "ALL", "{img}", "grep", "CapEff", "/proc/self/status"], Cmp::Out),
    c(&["run", "--rm", "--cap-drop", "all", "--cap-add", "chown", "{img}", "grep", "CapEff", "/proc/self/status"], Cmp::Out),
    c(&["run", "--rm", "--oom-score-adj", "100", "{img}", "cat", "/proc/self/oom_score_adj"], Cmp::Out),
    c(&["create", "--name", "s1", "--stop-signal", "SIGUSR1", "{img}", "true"], Cmp::Id),
    c(&["inspect", "-f", "{{.Config.StopSignal}}", "s1"], Cmp::Differs("Config.StopSignal is Docker's name (SIGUSR1); podman 4.3 prints the number")),
    c(&["rm", "s1"], Cmp::Out),
    // Healthchecks.
    c(&["run", "-d", "--name", "h1", "--health-cmd", "true", "--health-interval", "1h", "{img}", "sleep", "300"], Cmp::Id),
    c(&["healthcheck", "run", "h1"], Cmp::Out),
    c(&["inspect", "h1"], Cmp::Json(&["State.Health.Status", "State.Health.FailingStreak"])),
    c(&["run", "-d", "--name", "h2", "--health-cmd", "false", "--health-retries", "1", "--health-interval", "1h", "{img}", "sleep", "300"], Cmp::Id),
    c(&["healthcheck", "run", "h2"], Cmp::Out),
    c(&["inspect", "h2"], Cmp::Json(&["State.Health.Status"])),
    c(&["healthcheck", "run", "no-such-container"], Cmp::Code),
    c(&["rm", "-f", "h1", "h2"], Cmp::Sorted),
];

/// One engine's command line and its private paths.
struct Engine {
    name: &'static str,
    base: Vec<String>,
    envs: Vec<(String, PathBuf)>,
    cgroup: String,
    out_dir: PathBuf,
}

impl Engine {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.base[0]);
        c.args(&self.base[1..]);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null());
        c
    }

    fn run(&self, args: &[String]) -> Output {
        run(&format!("{} {args:?}", self.name), self.cmd().args(args), T)
    }

    fn expand(&self, case: &Case, img: &str, input: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for (i, a) in case.args.iter().enumerate() {
            out.push(match *a {
                "{img}" => img.to_string(),
                "{in}" => input.display().to_string(),
                "{out}" => self.out_dir.join("out").display().to_string(),
                other => other.to_string(),
            });
            if i == 0 && matches!(*a, "run" | "create") {
                if !case.args.contains(&"--network") {
                    out.extend(["--network".into(), "none".into()]);
                }
                out.extend(["--cgroup-parent".into(), self.cgroup.clone()]);
            }
        }
        out
    }
}

fn podman(dir: &Path, cgroup: &str) -> Engine {
    for sub in ["root", "runroot", "tmp", "net", "volumes", "out"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    let (_, nofile) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let (_, nproc) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .expect("getrlimit");
    let d = dir.display();
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={}:{nofile}\", \"nproc={n}:{n}\"]\n\
             netns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{d}/events.log\"\nlock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\n\
             volume_path = \"{d}/volumes\"\n[network]\nnetwork_config_dir = \"{d}/net\"\n",
            nofile.min(1024),
            n = nproc.min(32768)
        ),
    )
    .expect("containers.conf");
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n"
        ),
    )
    .expect("storage.conf");
    std::fs::write(
        dir.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .expect("registries.conf");
    let p = |s: &str| dir.join(s).display().to_string();
    Engine {
        name: "podman",
        base: vec![
            "podman".into(),
            "--root".into(),
            p("root"),
            "--runroot".into(),
            p("runroot"),
            "--tmpdir".into(),
            p("tmp"),
            "--network-config-dir".into(),
            p("net"),
            "--storage-driver".into(),
            "vfs".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--runtime".into(),
            "runc".into(),
        ],
        envs: vec![
            ("CONTAINERS_CONF".into(), dir.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF".into(), dir.join("storage.conf")),
            (
                "CONTAINERS_REGISTRIES_CONF".into(),
                dir.join("registries.conf"),
            ),
        ],
        cgroup: format!("{cgroup}-podman"),
        out_dir: dir.join("out"),
    }
}

fn berth(dir: &Path, cgroup: &str) -> Engine {
    std::fs::create_dir_all(dir.join("out")).expect("mkdir");
    Engine {
        name: "berth",
        base: vec![
            env!("CARGO_BIN_EXE_berth").into(),
            "--root".into(),
            dir.join("root").display().to_string(),
            "--runroot".into(),
            dir.join("run").display().to_string(),
        ],
        // Its own subordinate id files: the host's /etc/subuid untouched.
        envs: vec![
            ("BERTH_SUBUID_FILE".into(), dir.join("subuid")),
            ("BERTH_SUBGID_FILE".into(), dir.join("subgid")),
        ],
        cgroup: format!("{cgroup}-berth"),
        out_dir: dir.join("out"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_id(s: &str) -> bool {
    let s = s.trim();
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn ps_names(o: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let mut names: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn field(o: &Output, path: &str) -> Value {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    path.split('.').fold(v[0].clone(), |v, k| v[k].clone())
}

/// What one side showed, for the comparison and the report.
fn shown(e: &Engine, cmp: Cmp, o: &Output) -> String {
    match cmp {
        Cmp::Code => String::new(),
        Cmp::Out => text(&o.stdout),
        Cmp::Sorted => {
            let t = text(&o.stdout);
            let mut l: Vec<&str> = t.lines().collect();
            l.sort_unstable();
            l.join("\n")
        }
        Cmp::Id => format!("id:{}", is_id(&text(&o.stdout))),
        Cmp::PsNames => format!("{:?}", ps_names(o)),
        Cmp::Json(paths) => paths
            .iter()
            .map(|p| format!("{p}={}", field(o, p)))
            .collect::<Vec<_>>()
            .join(" "),
        Cmp::OutFile => std::fs::read_to_string(e.out_dir.join("out")).unwrap_or_default(),
        Cmp::Count => text(&o.stdout).lines().count().to_string(),
        Cmp::TarList => tar_list(&e.out_dir.join("out")),
        Cmp::Differs(_) => text(&o.stdout),
    }
}

/// The sorted member names of a tar (`./` and trailing slashes dropped),
/// without the files each engine adds of its own.
fn tar_list(p: &Path) -> String {
    let o = Command::new("tar").arg("-tf").arg(p).output();
    let Ok(o) = o else {
        return "no tar".into();
    };
    let t = text(&o.stdout);
    let mut names: Vec<&str> = t
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/'))
        .filter(|l| {
            !l.is_empty() && !matches!(*l, "run/.containerenv" | "etc/mtab" | "etc/resolv.conf")
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join("\n")
}

fn cleanup(e: &Engine) {
    let _ = e.run(&["rm".into(), "-af".into(), "-t".into(), "0".into()]);
    let ids = e.run(&["ps".into(), "-aq".into()]);
    for id in text(&ids.stdout).split_whitespace() {
        let _ = e.run(&["rm".into(), "-f".into(), id.into()]);
    }
    for l in ["/sys/fs/cgroup"].iter().flat_map(|r| {
        std::fs::read_dir(r)
            .map(|d| d.flatten().map(|x| x.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    }) {
        let dir = l.join(e.cgroup.trim_start_matches('/'));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for sub in rd.flatten() {
                if sub.path().is_dir() {
                    let _ = std::fs::remove_dir(sub.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// The host side: re-runs this test inside `unshare -n -m`.
#[test]
fn podman_and_berth_agree() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    if let Err(e) = check_root_and_busybox() {
        eprintln!("SKIP: {e}");
        return;
    }
    if find_tool("podman", &["/usr/bin/podman"]).is_none()
        || find_tool("runc", &["/usr/sbin/runc", "/usr/bin/runc"]).is_none()
    {
        eprintln!("SKIP: podman and runc are needed (apt-get install podman runc)");
        return;
    }
    let me = std::env::current_exe().expect("test binary");
    let o = run(
        "unshare -n -m",
        Command::new("unshare")
            .args(["-n", "-m", "--propagation", "private", "--"])
            .arg(me)
            .args([
                "podman_and_berth_agree",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INNER, "1"),
        Duration::from_secs(900),
    );
    eprintln!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "the comparison failed (see above)");
}

/// Inside the namespaces: every case through both engines.
fn inner() {
    let lo = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(lo.is_ok_and(|s| s.success()), "lo up in the test namespace");
    let dir = tempfile::Builder::new()
        .prefix("berth-compat-")
        .tempdir()
        .expect("tempdir");
    let cgroup = format!("/{}", unique("berth-test-compat"));
    let engines = [
        podman(&dir.path().join("podman"), &cgroup),
        berth(&dir.path().join("berth"), &cgroup),
    ];
    let rootfs = dir.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let tar = dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    let img = "localhost/bb:1";
    let tar_s = tar.display().to_string();
    let loaded = [
        engines[0].run(&[
            "import".into(),
            "--change".into(),
            "CMD [\"/bin/sh\"]".into(),
            tar_s.clone(),
            img.into(),
        ]),
        engines[1].run(&[
            "import".into(),
            tar_s,
            img.into(),
            "--cmd".into(),
            r#"["/bin/sh"]"#.into(),
        ]),
    ];
    for (e, o) in engines.iter().zip(&loaded) {
        assert!(o.status.success(), "{} import: {}", e.name, text(&o.stderr));
    }
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "copied in\n").expect("input");

    let mut report = Vec::new();
    let mut differ = Vec::new();
    for case in CASES {
        let mut seen = Vec::new();
        for e in &engines {
            let _ = std::fs::remove_file(e.out_dir.join("out"));
            let o = e.run(&e.expand(case, img, &input));
            seen.push((o.status.code(), shown(e, case.cmp, &o)));
        }
        let known = match case.cmp {
            Cmp::Differs(why) => Some(why),
            _ => None,
        };
        let agree = known.is_some() || seen[0] == seen[1];
        let line = format!(
            "{:<3} {:<70} podman {:>4} berth {:>4}{}",
            if known.is_some() {
                "doc"
            } else if agree {
                "ok"
            } else {
                "DIFF"
            },
            case.args.join(" "),
            seen[0].0.map_or("sig".into(), |c| c.to_string()),
            seen[1].0.map_or("sig".into(), |c| c.to_string()),
            if let Some(why) = known {
                format!(
                    "\n      deliberate: {why}\n      podman: {:?}\n      berth:  {:?}",
                    seen[0].1, seen[1].1
                )
            } else if agree {
                String::new()
            } else {
                format!(
                    "\n      podman: {:?}\n      berth:  {:?}",
                    seen[0].1, seen[1].1
                )
            }
        );
        if !agree {
            differ.push(line.clone());
        }
        report.push(line);
    }
    for e in &engines {
        cleanup(e);
    }
    let _ = unmount_under(dir.path());
    eprintln!(
        "podman vs berth, {} commands:\n{}",
        CASES.len(),
        report.join("\n")
    );
    assert!(
        differ.is_empty(),
        "berth and podman differ:\n{}",
        differ.join("\n")
    );
}

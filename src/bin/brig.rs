//! brig: the runtime CLI, runc-compatible. Argument parsing and dispatch only.

use anyhow::{bail, Context, Result};
use brig::container::{self, create, run, Store};
use brig::logging::{self, Format};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "brig",
    about = "An OCI container runtime",
    disable_version_flag = true
)]
struct Cli {
    /// Print the version, as runc does (`brig version X`, commit, spec)
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Directory for container state [default: /run/brig, or
    /// $XDG_RUNTIME_DIR/brig when rootless]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (errors and debug lines)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug lines
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (not supported yet)
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (auto: rootless unless root of the host's user namespace)
    #[arg(long = "rootless", id = "rootless_mode", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct CreateArgs {
    /// Bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's init pid to this file
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for ramdisk roots)
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not give the container its own session keyring
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many fds (from 3 on) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Container id
    id: String,
}

impl CreateArgs {
    fn options(&self, rootless: bool) -> create::Options {
        create::Options {
            rootless,
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec an unprivileged user can run: a user namespace mapping
        /// the caller to root, no network namespace, no cgroup limits
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container: set it up and leave its init waiting for start
    Create(CreateArgs),
    /// Start a created container's program
    Start { id: String },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal to a container (default SIGTERM)
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container
    Delete {
        /// Kill the container first if it is running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it in the foreground
    Run {
        /// Do not wait: leave the container running
        #[arg(short, long)]
        detach: bool,
        /// Keep the container (state, cgroup) after it exits, for delete
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run another process in a running container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1), e.g. -- -o pid,comm
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a running container's resources
    Update(UpdateArgs),
    /// Resource statistics and OOM notifications
    Events {
        /// Print one stats object and exit
        #[arg(long)]
        stats: bool,
        /// How often to print stats, e.g. 5s or 500ms
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// What this build of brig supports, as JSON
    Features,
    /// List containers
    List {
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
}

#[derive(Args)]
struct ExecArgs {
    /// The process as OCI process JSON (instead of COMMAND)
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    detach: bool,
    /// Write the process's pid to this file
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Environment variables, KEY=VALUE
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory in the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// uid[:gid] to run as
    #[arg(short, long)]
    user: Option<String>,
    /// Extra groups
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Extra capabilities (CAP_NAME)
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// AppArmor profile
    #[arg(long)]
    apparmor: Option<String>,
    /// SELinux process label
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// Pass this many fds (from 3 on) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Put the process in an existing sub-cgroup of the container's:
    /// [CONTROLLER[,CONTROLLER...]:]PATH, repeatable per controller
    #[arg(long)]
    cgroup: Vec<String>,
    /// Exec even into a paused container (the process waits, frozen, until
    /// it is resumed)
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    id: String,
    /// The command and its arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl ExecArgs {
    /// --process JSON, or the container's own process with the inline
    /// command and flags on top (runc's rules).
    fn process(&self, store: &Store) -> Result<oci_spec::runtime::Process> {
        if let Some(path) = &self.process {
            return Ok(container::exec::read_process(path)?);
        }
        if self.command.is_empty() {
            bail!("exec: give a COMMAND or --process FILE");
        }
        let mut p = container::exec::container_process(store, &self.id)?;
        let mut v = serde_json::to_value(&p)?;
        v["args"] = serde_json::json!(self.command);
        v["terminal"] = serde_json::json!(self.tty);
        // --env K=V replaces the container's K, as runc's does.
        let mut env: Vec<String> = p.env().clone().unwrap_or_default();
        for e in &self.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            match env
                .iter_mut()
                .find(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == key)
            {
                Some(slot) => slot.clone_from(e),
                None => env.push(e.clone()),
            }
        }
        v["env"] = serde_json::json!(env);
        if let Some(cwd) = &self.cwd {
            v["cwd"] = serde_json::json!(cwd);
        }
        if let Some(user) = &self.user {
            let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
            v["user"]["uid"] = serde_json::json!(uid
                .parse::<u32>()
                .with_context(|| format!("--user {user:?}"))?);
            v["user"]["gid"] = serde_json::json!(gid
                .parse::<u32>()
                .with_context(|| format!("--user {user:?}"))?);
        }
        if !self.additional_gids.is_empty() {
            v["user"]["additionalGids"] = serde_json::json!(self.additional_gids);
        }
        for cap in &self.cap {
            for set in ["bounding", "effective", "permitted", "ambient"] {
                if let Some(list) = v["capabilities"][set].as_array_mut() {
                    list.push(serde_json::json!(cap));
                } else {
                    v["capabilities"][set] = serde_json::json!([cap]);
                }
            }
        }
        if self.no_new_privs {
            v["noNewPrivileges"] = serde_json::json!(true);
        }
        if let Some(a) = &self.apparmor {
            v["apparmorProfile"] = serde_json::json!(a);
        }
        if let Some(l) = &self.process_label {
            v["selinuxLabel"] = serde_json::json!(l);
        }
        p = brig::spec::capabilities::from_value(v, "").context("exec: the resulting process")?;
        Ok(p)
    }
}

#[derive(Args)]
struct UpdateArgs {
    /// LinuxResources JSON from a file, or - for stdin
    #[arg(short, long)]
    resources: Option<String>,
    #[arg(long = "memory", allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    id: String,
}

/// "512m", "1g", "1024" or "-1", as runc's memory flags take them.
fn bytes(flag: &str, v: &str) -> Result<i64> {
    if v.trim() == "-1" {
        return Ok(-1);
    }
    let lower = v.trim().to_ascii_lowercase();
    let s = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, shift) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 10),
        Some('m') => (&s[..s.len() - 1], 20),
        Some('g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| anyhow::anyhow!("--{flag} {v:?}: not a size like 512m or 1g"))
}

impl UpdateArgs {
    /// The JSON given with --resources, with the single-value flags on top.
    fn resources(&self) -> Result<serde_json::Value> {
        let mut r: serde_json::Value = match self.resources.as_deref() {
            Some("-") => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                serde_json::from_str(&s).context("--resources -: not LinuxResources JSON")?
            }
            Some(path) => serde_json::from_str(
                &std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
            )
            .with_context(|| format!("{path}: not LinuxResources JSON"))?,
            None => serde_json::json!({}),
        };
        let mut set = |section: &str, key: &str, v: serde_json::Value| {
            if r.get(section).is_none() {
                r[section] = serde_json::json!({});
            }
            r[section][key] = v;
        };
        for (flag, key, v) in [
            ("memory", "limit", &self.memory),
            (
                "memory-reservation",
                "reservation",
                &self.memory_reservation,
            ),
            ("memory-swap", "swap", &self.memory_swap),
        ] {
            if let Some(v) = v {
                set("memory", key, bytes(flag, v)?.into());
            }
        }
        if let Some(v) = self.cpu_shares {
            set("cpu", "shares", v.into());
        }
        if let Some(v) = self.cpu_quota {
            set("cpu", "quota", v.into());
        }
        if let Some(v) = self.cpu_period {
            set("cpu", "period", v.into());
        }
        if let Some(v) = self.cpu_rt_period {
            set("cpu", "realtimePeriod", v.into());
        }
        if let Some(v) = self.cpu_rt_runtime {
            set("cpu", "realtimeRuntime", v.into());
        }
        if let Some(v) = &self.cpuset_cpus {
            set("cpu", "cpus", v.clone().into());
        }
        if let Some(v) = &self.cpuset_mems {
            set("cpu", "mems", v.clone().into());
        }
        if let Some(v) = self.pids_limit {
            set("pids", "limit", v.into());
        }
        if let Some(v) = self.blkio_weight {
            set("blockIO", "weight", v.into());
        }
        Ok(r)
    }
}

fn main() {
    // Before anything else, clap included (its parse is much of a start-up,
    // and the first image's work is thrown away): this may execute brig
    // afresh. brig_entry usually has, before the C library started; this is
    // where what it left goes on. The error waits until the log is set up.
    let early = quick_look();
    let sealed = if early {
        brig::linux::sealed_exe::ensure()
    } else {
        Ok(())
    };
    let mut cli = Cli::parse();
    if cli.version {
        print_version();
        return;
    }
    let format = match cli.log_format {
        LogFormat::Text => Format::Text,
        LogFormat::Json => Format::Json,
    };
    logging::init(cli.log.clone(), format, cli.debug);
    // A log runc could not open fails the command before it does anything.
    if let Err(e) = logging::check_file() {
        logging::error(&e);
        std::process::exit(1);
    }
    let Some(command) = cli.command.take() else {
        logging::error("no command given (see brig --help)");
        std::process::exit(1);
    };
    // A command line the quick look got wrong still gets the protection.
    let sealed = if command.enters_container() && !early {
        brig::linux::sealed_exe::ensure()
    } else {
        sealed
    };
    if let Err(e) = sealed {
        logging::error(&format!("{e:#}"));
        std::process::exit(1);
    }
    // runc's exec exits 255 when exec itself fails, so that a caller can
    // tell that from the process exiting 1.
    let failed = if matches!(command, Command::Exec(_)) {
        255
    } else {
        1
    };
    match dispatch(cli, command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the outermost context first, then each cause.
            logging::error(&format!("{e:#}"));
            std::process::exit(failed);
        }
    }
}

/// What brig_entry's look at argv found: create, run or exec. This call is
/// also what links early_reexec, and with it the entry point, into brig
/// (`tests/escapes.rs::brig_starts_at_its_early_reexec_entry` checks).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn quick_look() -> bool {
    brig::linux::early_reexec::argv_enters_container()
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn quick_look() -> bool {
    false
}

impl Command {
    /// Commands that start a process inside a container, which must not run
    /// from a writable host binary (CVE-2019-5736).
    fn enters_container(&self) -> bool {
        matches!(
            self,
            Command::Create(_) | Command::Run { .. } | Command::Exec(_)
        )
    }
}

fn write_spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let mut text = brig::spec::default_spec_json(true);
    if rootless {
        let mut spec: serde_json::Value = serde_json::from_str(&text)?;
        brig::spec::to_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        text = serde_json::to_string_pretty(&spec)? + "\n";
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// runc's lines: name and version, commit, the runtime spec's version.
fn print_version() {
    println!("brig version {}", env!("CARGO_PKG_VERSION"));
    println!("commit: {}", env!("BRIG_COMMIT"));
    println!("spec: {}", brig::spec::OCI_VERSION);
}

fn dispatch(cli: Cli, command: Command) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported yet: brig manages cgroups through the filesystem only");
    }
    let rootless = brig::rootless::mode(cli.rootless.as_deref())?;
    if let Command::Spec { bundle, rootless } = &command {
        return write_spec(bundle, *rootless).map(|_| 0);
    }
    let root = match &cli.root {
        Some(r) => r.clone(),
        None if rootless => brig::rootless::state_root()?,
        None => PathBuf::from("/run/brig"),
    };
    let store = Store::new(&root);
    match command {
        Command::Spec { .. } => {}
        Command::Create(a) => {
            let o = a.options(rootless);
            let created = create::load(&a.id, &o)
                .and_then(|bundle| {
                    create::create(&store, &a.id, bundle, &o, create::Mode::Create, None)
                })
                .with_context(|| format!("creating container {:?}", a.id))?;
            logging::debug(&format!(
                "container {} created, init pid {}",
                a.id, created.init.pid
            ));
        }
        Command::Start { id } => container::start::start(&store, &id)
            .with_context(|| format!("starting container {id:?}"))?,
        Command::State { id } => {
            let v = container::state::state(&store, &id)?;
            print_json(&v)?;
        }
        Command::Kill { all, id, signal } => container::kill::kill(&store, &id, &signal, all)
            .with_context(|| format!("killing container {id:?}"))?,
        Command::Delete { force, id } => container::delete::delete(&store, &id, force)
            .with_context(|| format!("deleting container {id:?}"))?,
        Command::Run {
            detach,
            keep,
            create,
        } => {
            let o = run::Options {
                create: create.options(rootless),
                detach,
                keep,
                kill_after: None,
            };
            return run::run(&store, &create.id, &o)
                .with_context(|| format!("running container {:?}", create.id));
        }
        Command::Exec(a) => {
            let process = a
                .process(&store)
                .with_context(|| format!("exec in container {:?}", a.id))?;
            let o = container::exec::Options {
                process,
                detach: a.detach,
                pid_file: a.pid_file.clone(),
                console_socket: a.console_socket.clone(),
                preserve_fds: a.preserve_fds,
                sub_cgroups: container::exec::parse_sub_cgroups(&a.cgroup)?,
                ignore_paused: a.ignore_paused,
            };
            return container::exec::exec(&store, &a.id, &o)
                .with_context(|| format!("exec in container {:?}", a.id));
        }
        Command::Pause { id } => container::pause::pause(&store, &id)
            .with_context(|| format!("pausing container {id:?}"))?,
        Command::Resume { id } => container::pause::resume(&store, &id)
            .with_context(|| format!("resuming container {id:?}"))?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = container::ps::pids(&store, &id)?;
            match format.as_str() {
                "json" => print_json_line(&serde_json::json!(pids))?,
                "table" => {
                    let table = container::ps::table(&pids, &ps_args)?;
                    std::io::stdout().lock().write_all(table.as_bytes())?;
                }
                f => bail!("unknown ps format {f:?} (table or json)"),
            }
        }
        Command::Update(a) => {
            let json = a.resources()?;
            let r = container::update::parse(&json.to_string(), "--resources")?;
            container::update::update(&store, &a.id, &r)
                .with_context(|| format!("updating container {:?}", a.id))?;
        }
        Command::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    container::events::stats(&store, &id)?
                )?;
            } else {
                let every = humantime::parse_duration(&interval)
                    .with_context(|| format!("--interval {interval:?}"))?;
                container::events::stream(&store, &id, every, &mut std::io::stdout().lock())?;
            }
        }
        Command::Features => print_json(&container::features::features())?,
        Command::List { quiet, format } => {
            let items = container::list::list(&store)?;
            let mut out = std::io::stdout().lock();
            match (quiet, format.as_str()) {
                (true, _) => {
                    for v in &items {
                        writeln!(out, "{}", v["id"].as_str().unwrap_or(""))?;
                    }
                }
                (false, "json") => writeln!(out, "{}", container::list::json_line(&items)?)?,
                (false, "table") => out.write_all(container::list::table(&items).as_bytes())?,
                (false, f) => bail!("unknown list format {f:?} (table or json)"),
            }
        }
    }
    Ok(0)
}

/// On one line, as runc writes `list` and `ps` (tools read it line-wise).
fn print_json_line(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

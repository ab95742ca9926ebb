//! brig: the runtime CLI, runc-compatible. Argument parsing and dispatch only.

use anyhow::{bail, Context, Result};
use brig::container::{self, create, run, Store};
use brig::logging::{self, Format};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "brig", version, about = "An OCI container runtime")]
struct Cli {
    /// Directory for container state
    #[arg(long, global = true, default_value = "/run/brig")]
    root: PathBuf,
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
    /// Rootless mode: true, false or auto (only false/auto as root for now)
    #[arg(long = "rootless", id = "rootless_mode", global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[command(subcommand)]
    command: Command,
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
    fn options(&self) -> create::Options {
        create::Options {
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
        #[command(flatten)]
        create: CreateArgs,
    },
    /// List containers
    #[command(alias = "ps-list")]
    List {
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => Format::Text,
        LogFormat::Json => Format::Json,
    };
    logging::init(cli.log.clone(), format, cli.debug);
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the outermost context first, then each cause.
            logging::error(&format!("{e:#}"));
            std::process::exit(1);
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported yet: brig manages cgroups through the filesystem only");
    }
    match cli.rootless.as_deref() {
        None | Some("false") => {}
        Some("auto") if nix::unistd::geteuid().is_root() => {}
        Some(v) => bail!("--rootless {v}: rootless mode is not supported yet"),
    }
    let store = Store::new(&cli.root);
    match cli.command {
        Command::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            std::fs::write(&path, brig::spec::default_spec_json(true))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Command::Create(a) => {
            let created = create::create(&store, &a.id, &a.options(), create::Mode::Create, None)
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
        Command::Run { detach, create } => {
            let o = run::Options {
                create: create.options(),
                detach,
            };
            return run::run(&store, &create.id, &o)
                .with_context(|| format!("running container {:?}", create.id));
        }
        Command::List { quiet, format } => {
            let items = container::list::list(&store)?;
            let mut out = std::io::stdout().lock();
            match (quiet, format.as_str()) {
                (true, _) => {
                    for v in &items {
                        writeln!(out, "{}", v["id"].as_str().unwrap_or(""))?;
                    }
                }
                (false, "json") => print_json(&serde_json::Value::Array(items))?,
                (false, "table") => out.write_all(container::list::table(&items).as_bytes())?,
                (false, f) => bail!("unknown list format {f:?} (table or json)"),
            }
        }
    }
    Ok(0)
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

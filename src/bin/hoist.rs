//! hoist: the image tool of brig. Argument parsing and dispatch only.

use anyhow::Result;
use brig::image::config::Overrides;
use brig::image::layout::Platform;
use brig::image::pull::PullOptions;
use brig::image::registry;
use brig::image::store::Store;
use brig::image::{commands, UnpackOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hoist",
    version,
    about = "Pull OCI and Docker images and turn them into runtime bundles"
)]
struct Cli {
    /// The content store (default: $HOIST_STORE, else /var/lib/hoist).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options of everything that may pull.
#[derive(Args)]
struct PullArgs {
    /// The platform to choose from an image index, OS/ARCH[/VARIANT]
    /// (default: linux/<this machine's architecture>).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Allow plain HTTP and unverified TLS for the registry.
    #[arg(long)]
    insecure: bool,
    /// Credentials USER:PASSWORD for the registry.
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// The auth file to read credentials from (default: $REGISTRY_AUTH_FILE,
    /// containers' auth.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
}

impl PullArgs {
    fn options(&self) -> Result<PullOptions> {
        Ok(PullOptions {
            platform: match &self.platform {
                Some(p) => Platform::parse(p)?,
                None => Platform::host(),
            },
            registry: registry::Options {
                insecure: self.insecure,
                creds: self.creds.clone(),
                auth_file: self.authfile.clone(),
                ..Default::default()
            },
            quiet: self.quiet,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Unpack an image into a runtime bundle (rootfs/ and config.json).
    Unpack {
        /// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG],
        /// docker://REF, or a plain reference (the store, else its registry)
        source: String,
        /// The bundle directory to create (absent or empty).
        bundle: PathBuf,
        /// The process args, replacing Entrypoint + Cmd (repeat for each arg).
        #[arg(long = "args", value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
        /// An environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Make rootfs an overlay mount of layers unpacked once in the store
        /// (take it down with `hoist unmount BUNDLE`).
        #[arg(long)]
        overlay: bool,
        #[command(flatten)]
        pull: PullArgs,
    },
    /// Take down the overlay rootfs of a bundle made with `unpack --overlay`.
    Unmount { bundle: PathBuf },
    /// Copy an image into the store: from a registry (docker://REF or a plain
    /// reference) or from oci:, oci-archive: or docker-archive:.
    Pull {
        source: String,
        /// The name to store a local image under (default: its annotation
        /// or RepoTag).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        pull: PullArgs,
    },
    /// List the images in the store.
    Images {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove images from the store (and blobs no other image uses).
    Rmi {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print an image's manifest and config as JSON.
    Inspect {
        name: String,
        /// The platform to choose from an image index.
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("hoist: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let store_dir = Store::dir_from(cli.store.as_deref());
    match cli.cmd {
        Cmd::Unpack {
            source,
            bundle,
            args,
            env,
            overlay,
            pull,
        } => brig::image::unpack(
            &source,
            &bundle,
            &UnpackOptions {
                overrides: Overrides { args, env },
                pull: pull.options()?,
                store: store_dir,
                overlay,
            },
        )?,
        Cmd::Unmount { bundle } => brig::image::overlay::unmount_bundle(&bundle)?,
        Cmd::Pull { source, name, pull } => {
            let name = commands::pull(&store_dir, &source, name.as_deref(), &pull.options()?)?;
            println!("{name}");
        }
        Cmd::Images { quiet, format } => {
            let out = commands::images(&store_dir, quiet, &format)?;
            print!("{out}");
        }
        Cmd::Rmi { names } => commands::rmi(&store_dir, &names)?,
        Cmd::Inspect { name, platform } => {
            let platform = match platform {
                Some(p) => Platform::parse(&p)?,
                None => Platform::host(),
            };
            let v = commands::inspect(&store_dir, &name, &platform)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}

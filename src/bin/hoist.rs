//! hoist: the image tool of brig. Argument parsing and dispatch only.

use anyhow::Result;
use brig::image::config::Overrides;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hoist",
    version,
    about = "Turn OCI images into runtime bundles"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Unpack an image into a runtime bundle (rootfs/ and config.json).
    Unpack {
        /// oci:DIR[:TAG] or oci-archive:FILE[:TAG]
        source: String,
        /// The bundle directory to create (absent or empty).
        bundle: PathBuf,
        /// The process args, replacing Entrypoint + Cmd (repeat for each arg).
        #[arg(long = "args", value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
        /// An environment variable KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("hoist: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Unpack {
            source,
            bundle,
            args,
            env,
        } => brig::image::unpack(&source, &bundle, &Overrides { args, env })?,
    }
    Ok(())
}

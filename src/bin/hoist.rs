//! hoist: the image tool of brig. Argument parsing and dispatch only.

use anyhow::Result;
use brig::build::{self, BuildOptions};
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
    /// Build an image from a Dockerfile and a context directory.
    Build {
        /// The build context.
        context: PathBuf,
        /// The Dockerfile (default: CONTEXT/Dockerfile).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Name the image NAME[:TAG] in the store (repeatable).
        #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
        tags: Vec<String>,
        /// A build argument KEY=VALUE (repeatable).
        #[arg(long = "build-arg", value_name = "KEY=VALUE")]
        build_args: Vec<String>,
        /// Build up to this stage.
        #[arg(long)]
        target: Option<String>,
        /// Run every step, ignoring the cache.
        #[arg(long)]
        no_cache: bool,
        /// The network of RUN steps: host (default) or none.
        #[arg(long, default_value = "host", value_name = "host|none")]
        network: String,
        /// A named context for FROM, COPY --from and RUN --mount from=:
        /// NAME=DIR or NAME=docker-image://REF (or oci:DIR, oci-archive:FILE...)
        /// (repeatable).
        #[arg(long = "build-context", value_name = "NAME=DIR|docker-image://REF")]
        build_contexts: Vec<String>,
        /// Reuse the cache entries of type=local,src=DIR (an OCI layout) or
        /// type=registry,ref=REF (repeatable).
        #[arg(
            long = "cache-from",
            value_name = "type=local,src=DIR|type=registry,ref=REF"
        )]
        cache_from: Vec<String>,
        /// Export this build's cache entries to type=local,dest=DIR or
        /// type=registry,ref=REF (repeatable).
        #[arg(
            long = "cache-to",
            value_name = "type=local,dest=DIR|type=registry,ref=REF"
        )]
        cache_to: Vec<String>,
        /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR
        /// (repeatable); never in a layer, the history or the cache key.
        #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
        secrets: Vec<String>,
        /// Also write the image as type=oci|oci-archive|docker-archive|bundle,dest=PATH
        /// (repeatable).
        #[arg(long = "output", short = 'o', value_name = "type=...,dest=PATH")]
        outputs: Vec<String>,
        #[command(flatten)]
        pull: PullArgs,
    },
    /// Push an image of the store to a registry.
    Push {
        /// The image in the store.
        name: String,
        /// Where to: docker://HOST/REPO:TAG (default: NAME's own registry).
        dest: Option<String>,
        #[command(flatten)]
        pull: PullArgs,
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
    if matches!(cli.cmd, Cmd::Build { .. }) {
        // RUN steps enter containers: never from a writable hoist binary
        // (CVE-2019-5736). This may execute hoist afresh.
        brig::linux::sealed_exe::ensure()?;
    }
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
        Cmd::Build {
            context,
            file,
            tags,
            build_args,
            target,
            no_cache,
            network,
            build_contexts,
            cache_from,
            cache_to,
            secrets,
            outputs,
            pull,
        } => {
            let quiet = pull.quiet;
            let build = if nix::unistd::geteuid().is_root() {
                brig::build::build
            } else {
                brig::build::build_unprivileged
            };
            let digest = build(&BuildOptions {
                exec: build::exec::Options {
                    dockerfile: file.unwrap_or_else(|| context.join("Dockerfile")),
                    context,
                    build_args: build_args
                        .iter()
                        .map(|kv| match kv.split_once('=') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            // Docker takes a bare KEY from the environment.
                            None => (kv.clone(), std::env::var(kv).unwrap_or_default()),
                        })
                        .collect(),
                    target,
                    no_cache,
                    network: match network.as_str() {
                        "host" => build::Network::Host,
                        "none" => build::Network::None,
                        other => anyhow::bail!("--network {other}: want host or none"),
                    },
                    pull: pull.options()?,
                    quiet,
                    secrets: secrets
                        .iter()
                        .map(|s| build::mounts::parse_secret(s))
                        .collect::<Result<_, _>>()?,
                    build_contexts: build_contexts
                        .iter()
                        .map(|c| build::exec::BuildContext::parse(c))
                        .collect::<Result<_, _>>()?,
                    cache_from: cache_from
                        .iter()
                        .map(|c| build::cache::CacheRef::parse(c, "--cache-from"))
                        .collect::<Result<_, _>>()?,
                },
                cache_to: cache_to
                    .iter()
                    .map(|c| build::cache::CacheRef::parse(c, "--cache-to"))
                    .collect::<Result<_, _>>()?,
                tags,
                outputs: outputs
                    .iter()
                    .map(|o| build::Output::parse(o))
                    .collect::<Result<_, _>>()?,
                store: store_dir,
            })?;
            if quiet {
                println!("{digest}");
            } else {
                println!("--> {digest}");
            }
        }
        Cmd::Push { name, dest, pull } => {
            let store = Store::open(&store_dir)?;
            let full = brig::image::reference::Reference::parse(&name)?.to_string();
            let dest = dest.unwrap_or_else(|| format!("docker://{full}"));
            let digest = brig::image::push::push(
                &store,
                &full,
                &dest,
                &pull.options()?.registry,
                pull.quiet,
            )?;
            println!("{digest}");
        }
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

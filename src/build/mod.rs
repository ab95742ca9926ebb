//! hoist build: Dockerfiles into images. The Dockerfile is parsed
//! (parse.rs, with vars.rs for substitution), each stage executed step by
//! step (exec.rs: RUN in a brig container on an overlay of the stage's
//! layers, COPY/ADD from the context filtered by ignore.rs), each step's
//! changes committed as a layer (commit.rs) or found in the cache
//! (cache.rs, also exported and imported there), and the result stored,
//! tagged and exported (export.rs).

pub mod cache;
pub mod commit;
pub mod copy;
pub mod exec;
pub mod export;
pub mod ignore;
pub mod mounts;
pub mod parse;
pub mod run_step;
pub mod vars;

use crate::error::{Error, IoContext, Result};
use crate::image::layout::{Descriptor, OCI_MANIFEST};
use crate::image::reference::Reference;
use crate::image::store::Store;
use exec::{Builder, Image};
use serde_json::json;
use std::path::{Path, PathBuf};

pub use run_step::Network;

/// Where a build's image goes besides the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Oci(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
    Bundle(PathBuf),
}

impl Output {
    /// `type=oci|oci-archive|docker-archive|bundle,dest=PATH`, as
    /// `--output` takes it.
    pub fn parse(s: &str) -> Result<Output> {
        let (mut kind, mut dest) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("type", t)) => kind = Some(t.to_string()),
                Some(("dest", d)) => dest = Some(PathBuf::from(d)),
                _ => {
                    return Err(Error::Other(format!(
                        "--output {s}: want type=oci|oci-archive|docker-archive|bundle,dest=PATH"
                    )))
                }
            }
        }
        let dest = dest.ok_or_else(|| Error::Other(format!("--output {s}: no dest=PATH")))?;
        match kind.as_deref() {
            Some("oci") => Ok(Output::Oci(dest)),
            Some("oci-archive") => Ok(Output::OciArchive(dest)),
            Some("docker-archive") => Ok(Output::DockerArchive(dest)),
            Some("bundle") => Ok(Output::Bundle(dest)),
            other => Err(Error::Other(format!(
                "--output {s}: unknown type {other:?} (oci, oci-archive, docker-archive, bundle)"
            ))),
        }
    }
}

pub struct BuildOptions {
    pub exec: exec::Options,
    pub tags: Vec<String>,
    pub outputs: Vec<Output>,
    pub store: PathBuf,
    /// `--cache-to`: where this build's cache entries go.
    pub cache_to: Vec<cache::CacheRef>,
}

/// `hoist build` by an unprivileged user: the whole build runs as root of a
/// user namespace (over the user's subordinate ids when it has them, else
/// its own id alone) with a mount namespace of its own, where it may mount
/// the steps' overlays; RUN containers nest in it. Returns what [`build`]
/// returns.
pub fn build_unprivileged(o: &BuildOptions) -> Result<String> {
    use crate::linux::idmap;
    let (uid, gid) = match idmap::subordinate_maps()? {
        Some(maps) => maps,
        None => idmap::own_maps()?,
    };
    // Ctrl-C is the build's to act on; this side waits for it to finish.
    crate::interrupt::install()?;
    idmap::run_in_userns(&uid, &gid, nix::sched::CloneFlags::CLONE_NEWNS, || build(o))
}

/// Stores the built image's config and manifest; returns the manifest's
/// descriptor.
fn store_image(store: &Store, img: &Image) -> Result<Descriptor> {
    let mut config = img.config.clone();
    config["created"] = json!(exec::now());
    write_manifest(store, &config, &img.layers)
}

/// Stores `config` and an image manifest of it and `layers`; returns the
/// manifest's descriptor.
pub(crate) fn write_manifest(
    store: &Store,
    config: &serde_json::Value,
    layers: &[exec::Layer],
) -> Result<Descriptor> {
    let cbytes = serde_json::to_vec(config).map_err(|e| Error::Other(e.to_string()))?;
    let cdesc = store.write_bytes(&cbytes, "application/vnd.oci.image.config.v1+json")?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": cdesc,
        "layers": layers.iter().map(|l| &l.desc).collect::<Vec<_>>(),
    });
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    store.write_bytes(&mbytes, OCI_MANIFEST)
}

/// `hoist build`: returns the image's manifest digest.
pub fn build(o: &BuildOptions) -> Result<String> {
    let text = std::fs::read_to_string(&o.exec.dockerfile).at(&o.exec.dockerfile)?;
    let file = parse::parse(&text, &o.exec.file_label())?;
    let tags: Vec<String> = o
        .tags
        .iter()
        .map(|t| Reference::parse(t).map(|r| r.to_string()))
        .collect::<Result<_>>()?;
    for out in &o.outputs {
        let p = match out {
            Output::Oci(p)
            | Output::OciArchive(p)
            | Output::DockerArchive(p)
            | Output::Bundle(p) => p,
        };
        if matches!(out, Output::Bundle(_))
            && p.exists()
            && std::fs::read_dir(p)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(Error::Other(format!(
                "--output {}: already exists and is not empty",
                p.display()
            )));
        }
    }
    // Ctrl-C stops the build at the next step (a running RUN is stopped),
    // so that its mounts and scratch files are cleaned up on the way out.
    crate::interrupt::install()?;
    let store = Store::open(&o.store)?;
    let _lock = store.lock_shared()?;
    let mut builder = Builder::new(&store, &o.exec, &file)?;
    let img = builder.build()?;
    crate::interrupt::check()?;
    let mdesc = store_image(&store, &img)?;
    for t in &tags {
        store.tag(t, &mdesc)?;
    }
    for to in &o.cache_to {
        cache::export(
            &store,
            &builder.keys(),
            to,
            &o.exec.pull.registry,
            o.exec.quiet,
        )?;
    }
    drop(_lock);
    let name = tags
        .first()
        .cloned()
        .unwrap_or_else(|| format!("localhost/hoist-build:{}", &mdesc.digest[7..19]));
    for out in &o.outputs {
        crate::interrupt::check()?;
        match out {
            Output::Oci(p) => export::to_oci_layout(&store, &mdesc, &name, p)?,
            Output::OciArchive(p) => export::to_oci_archive(&store, &mdesc, &name, p)?,
            Output::DockerArchive(p) => {
                let names = if tags.is_empty() {
                    vec![name.clone()]
                } else {
                    tags.clone()
                };
                export::to_docker_archive(&store, &mdesc, &names, p)?
            }
            Output::Bundle(p) => bundle(&store, &mdesc, &name, &tags, p)?,
        }
    }
    Ok(mdesc.digest)
}

/// The image as a runtime bundle, through `hoist unpack`.
fn bundle(
    store: &Store,
    mdesc: &Descriptor,
    name: &str,
    tags: &[String],
    dest: &Path,
) -> Result<()> {
    // unpack reads images by name: an untagged build is named for as long
    // as it takes.
    let temp = tags.is_empty();
    if temp {
        store.tag(name, mdesc)?;
    }
    let r = crate::image::unpack(
        name,
        dest,
        &crate::image::UnpackOptions {
            store: store.dir.clone(),
            ..Default::default()
        },
    );
    if temp {
        let _ = store.untag(name);
    }
    r
}

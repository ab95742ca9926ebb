//! Copying an image into the store: from a registry (`hoist pull`) or from
//! a local layout or archive. The manifest is chosen (by platform, from an
//! index), the config and layers fetched concurrently and verified, and only
//! then the manifest stored and named: a failed pull names nothing and
//! leaves no blob it brought.

use super::layer::Compression;
use super::layout::{
    pick_platform, Descriptor, Index, Layout, Manifest, Platform, DOCKER_LIST, OCI_INDEX,
};
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{self, Client};
use super::store::Store;
use super::CONFIG_TYPES;
use crate::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many blobs are fetched (or pushed) at once.
const PARALLEL: usize = 3;

#[derive(Clone)]
pub struct PullOptions {
    pub platform: Platform,
    pub registry: registry::Options,
    pub quiet: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            registry: registry::Options::default(),
            quiet: false,
        }
    }
}

/// Something blobs can be read from.
pub trait Fetch: Sync {
    fn fetch(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;
}

impl Fetch for Layout {
    fn fetch(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let path = self.blob_path(&desc.digest)?;
        Ok(Box::new(File::open(&path).at(&path)?))
    }
}

impl Fetch for Client {
    fn fetch(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        self.blob(&desc.digest)
    }
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Pulls `reference` from its registry into the store; returns the name it
/// is stored under and its manifest's descriptor.
pub fn pull_registry(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
) -> Result<(String, Descriptor)> {
    let r = Reference::parse(reference)?;
    let name = r.to_string();
    let client = Client::new(&r, &opts.registry)?;
    let (mut bytes, mut mt, mut digest) = client.manifest(r.reference())?;
    if is_index(&mt) {
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(format!("{name}: image index {digest}: {e}")))?;
        let pick = pick_platform(&index, &opts.platform).ok_or_else(|| {
            Error::Other(format!(
                "{name}: no image for {} in index {digest}",
                opts.platform
            ))
        })?;
        (bytes, mt, digest) = client.manifest(&pick.digest)?;
        if is_index(&mt) {
            return Err(Error::Unsupported(format!(
                "{name}: nested image index {digest}"
            )));
        }
    }
    let mdesc = Descriptor {
        media_type: mt,
        size: bytes.len() as u64,
        digest,
        platform: None,
        annotations: Default::default(),
    };
    import(store, &client, &name, &mdesc, &bytes, opts.quiet)?;
    Ok((name, mdesc))
}

/// Copies the image manifest `mdesc` (whose bytes are `mbytes`) and all it
/// refers to from `src` into the store, and names it `name`. On failure
/// the blobs this call added are removed again.
pub fn import(
    store: &Store,
    src: &dyn Fetch,
    name: &str,
    mdesc: &Descriptor,
    mbytes: &[u8],
    quiet: bool,
) -> Result<()> {
    import_as(store, src, name, Some(name), mdesc, mbytes, quiet)
}

/// [`import`], naming the image `tag` only if given (`hoist build` keeps
/// base images from layouts and archives in the store without a name);
/// `label` names it in messages.
pub fn import_as(
    store: &Store,
    src: &dyn Fetch,
    label: &str,
    tag: Option<&str>,
    mdesc: &Descriptor,
    mbytes: &[u8],
    quiet: bool,
) -> Result<()> {
    let name = label;
    let added = Mutex::new(Vec::new());
    let lock = store.lock_shared()?;
    let r = import_locked(store, src, name, tag, mdesc, mbytes, quiet, &added);
    drop(lock);
    if r.is_err() {
        let added = added.into_inner().unwrap_or_else(|p| p.into_inner());
        // Best effort: the error being reported matters more.
        let _ = store.discard(&added);
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn import_locked(
    store: &Store,
    src: &dyn Fetch,
    name: &str,
    tag: Option<&str>,
    mdesc: &Descriptor,
    mbytes: &[u8],
    quiet: bool,
    added: &Mutex<Vec<String>>,
) -> Result<()> {
    let ctx = |e: Error| Error::Other(format!("{name}: {e}"));
    let manifest: Manifest = serde_json::from_slice(mbytes)
        .map_err(|e| ctx(Error::Other(format!("manifest {}: {e}", mdesc.digest))))?;
    if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
        return Err(ctx(Error::Unsupported(format!(
            "manifest {}: config media type \"{}\"",
            mdesc.digest, manifest.config.media_type
        ))));
    }
    for l in &manifest.layers {
        Compression::from_media_type(&l.media_type)
            .map_err(|e| ctx(Error::Other(format!("layer {}: {e}", l.digest))))?;
    }

    let progress = Progress::new(quiet);
    let blobs: Vec<(&str, &Descriptor)> = std::iter::once(("config", &manifest.config))
        .chain(manifest.layers.iter().map(|l| ("layer", l)))
        .collect();
    each_parallel(&blobs, |(what, desc)| {
        fetch_one(store, src, what, desc, &progress, added)
    })
    .map_err(ctx)?;

    let config: serde_json::Value = store.layout().json_blob(&manifest.config).map_err(ctx)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    if diff_ids != manifest.layers.len() {
        return Err(ctx(Error::Other(format!(
            "config {} lists {diff_ids} diff_ids for {} layers",
            manifest.config.digest,
            manifest.layers.len()
        ))));
    }
    let m = Descriptor {
        platform: None,
        annotations: Default::default(),
        ..mdesc.clone()
    };
    if store.write_blob(&m, mbytes, &mut |_| {}).map_err(ctx)? {
        added
            .lock()
            .map_err(|_| Error::Other("lock poisoned".into()))?
            .push(m.digest.clone());
    }
    if let Some(tag) = tag {
        store.tag(tag, &m).map_err(ctx)?;
    }
    progress.note(&format!("{name}: stored as {}", m.digest));
    Ok(())
}

/// How many times a blob whose bytes do not verify is fetched in all. A
/// wrong blob is usually a registry's corrupt copy and will be wrong again,
/// but a cache, a proxy or a resumed transfer spliced wrongly can be right
/// the second time: one more fetch from scratch, then the digest is named.
const VERIFY_TRIES: u32 = 2;

/// A source reader that remembers whether it failed: a failure of the
/// source (already retried by it) is final, one of verification is not.
struct Watched<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.inner.read(buf);
        if matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        r
    }
}

/// Runs `f` on every item, PARALLEL at a time (blob transfers: the
/// network is the wait, not the CPU); the first error stops the items not
/// yet started and is returned.
pub(crate) fn each_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                if first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                    break;
                }
                if let Err(e) = f(item) {
                    if let Ok(mut slot) = first_err.lock() {
                        slot.get_or_insert(e);
                    }
                    break;
                }
            });
        }
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fetch_one(
    store: &Store,
    src: &dyn Fetch,
    what: &str,
    desc: &Descriptor,
    progress: &Progress,
    added: &Mutex<Vec<String>>,
) -> Result<()> {
    let bar = progress.start(what, &desc.digest, desc.size);
    if store.has_blob(&desc.digest)? {
        progress.finish(bar, "already present");
        return Ok(());
    }
    let mut tries = 1;
    let fresh = loop {
        let mut r = Watched {
            inner: src.fetch(desc)?,
            failed: false,
        };
        match store.write_blob(desc, &mut r, &mut |n| progress.advance(bar, n)) {
            Ok(fresh) => break fresh,
            Err(e) if r.failed || tries >= VERIFY_TRIES => {
                return Err(if tries > 1 {
                    Error::Other(format!("{e} (fetched {tries} times)"))
                } else {
                    e
                })
            }
            Err(_) => tries += 1,
        }
    };
    if fresh {
        added
            .lock()
            .map_err(|_| Error::Other("lock poisoned".into()))?
            .push(desc.digest.clone());
    }
    progress.finish(bar, "done");
    Ok(())
}

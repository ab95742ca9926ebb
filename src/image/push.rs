//! `hoist push NAME docker://HOST/REPO:TAG`: a stored image up to a
//! registry. Config and layers go first (three at a time; those the
//! repository already has are skipped), then the manifest, byte for byte
//! as stored so its digest stays the same, under the tag. A registry
//! accepts a manifest only once everything it refers to is there, so a
//! failed push never leaves a tag pointing at half an image.

use super::layout::{Descriptor, Index, Manifest};
use super::progress::{Counted, Progress};
use super::pull::is_index;
use super::reference::Reference;
use super::registry::{self, Client};
use super::store::Store;
use crate::error::{Error, IoContext, Result};
use std::fs::File;

/// Pushes the stored image `name` (a full reference in the store) to
/// `dest` (`docker://HOST/REPO[:TAG]` or a plain reference); returns the
/// digest of the manifest pushed.
pub fn push(
    store: &Store,
    name: &str,
    dest: &str,
    opts: &registry::Options,
    quiet: bool,
) -> Result<String> {
    let target = dest.strip_prefix("docker://").unwrap_or(dest);
    let r = Reference::parse(target)?;
    let where_to = r.to_string();
    let local = |e: Error| Error::Other(format!("pushing {name} to {where_to}: {e}"));
    // The store's lock keeps gc from taking blobs away while they upload.
    let _lock = store.lock_shared().map_err(local)?;
    let mdesc = store.lookup(name).map_err(local)?.ok_or_else(|| {
        local(Error::Other(format!(
            "image \"{name}\" is not in the store"
        )))
    })?;
    push_descriptor(store, &mdesc, &r, opts, quiet)?;
    Ok(mdesc.digest)
}

/// Pushes the manifest or index `mdesc` of the store, and all it refers
/// to, to `r` (the caller holds the store's lock).
pub fn push_descriptor(
    store: &Store,
    mdesc: &Descriptor,
    r: &Reference,
    opts: &registry::Options,
    quiet: bool,
) -> Result<()> {
    let client = Client::new(r, opts)?;
    let progress = Progress::new(quiet);
    push_manifest(
        store,
        &client,
        &r.repo_name(),
        mdesc,
        r.reference(),
        &progress,
        0,
    )?;
    progress.note(&format!("{r}: pushed {}", mdesc.digest));
    Ok(())
}

/// Pushes what `desc` refers to, then `desc` itself under `reference`. The
/// manifests of an index go by digest; only those the store has are in
/// the index as pushed, so an index with missing ones is refused.
fn push_manifest(
    store: &Store,
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    reference: &str,
    progress: &Progress,
    depth: usize,
) -> Result<()> {
    let local = |e: Error| Error::Other(format!("{repo}@{}: {e}", desc.digest));
    if depth > 4 {
        return Err(local(Error::Other(
            "image indexes nested too deeply".into(),
        )));
    }
    let bytes = store.layout().raw_blob(desc).map_err(local)?;
    let media_type = if desc.media_type.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from))
            .unwrap_or_default()
    } else {
        desc.media_type.clone()
    };
    if is_index(&media_type) {
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| local(Error::Other(format!("image index: {e}"))))?;
        for child in &index.manifests {
            if !store.has_blob(&child.digest).map_err(local)? {
                return Err(local(Error::Other(format!(
                    "image index lists manifest {}, which is not in the store \
                     (only one platform was pulled): push that image by its own name",
                    child.digest
                ))));
            }
            push_manifest(
                store,
                client,
                repo,
                child,
                &child.digest,
                progress,
                depth + 1,
            )?;
        }
    } else {
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| local(Error::Other(format!("manifest: {e}"))))?;
        let blobs: Vec<(&str, &Descriptor)> = std::iter::once(("config", &m.config))
            .chain(m.layers.iter().map(|l| ("layer", l)))
            .collect();
        upload_all(store, client, repo, &blobs, progress)?;
    }
    client.put_manifest(reference, &media_type, &bytes)
}

/// Uploads the blobs, a few at a time; the first error stops the rest.
fn upload_all(
    store: &Store,
    client: &Client,
    repo: &str,
    blobs: &[(&str, &Descriptor)],
    progress: &Progress,
) -> Result<()> {
    super::pull::each_parallel(blobs, |(what, desc)| {
        upload_one(store, client, repo, what, desc, progress)
    })
}

fn upload_one(
    store: &Store,
    client: &Client,
    repo: &str,
    what: &str,
    desc: &Descriptor,
    progress: &Progress,
) -> Result<()> {
    let bar = progress.start_doing(what, &desc.digest, desc.size, "pushing");
    if client.blob_exists(&desc.digest)? {
        progress.finish(bar, "already exists");
        return Ok(());
    }
    let local = |e: Error| Error::Other(format!("{repo}@{}: {what}: {e}", desc.digest));
    let path = store.layout().blob_path(&desc.digest).map_err(local)?;
    let f = File::open(&path).at(&path).map_err(local)?;
    let size = f.metadata().at(&path).map_err(local)?.len();
    if size != desc.size {
        return Err(local(Error::Other(format!(
            "the store's blob has {size} bytes, the manifest says {}",
            desc.size
        ))));
    }
    let mut data = Counted {
        inner: f,
        progress,
        bar,
    };
    // The registry checks the digest of what it receives.
    client.put_blob(&desc.digest, desc.size, &mut data)?;
    progress.finish(bar, "pushed");
    Ok(())
}

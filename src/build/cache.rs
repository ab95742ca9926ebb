//! The build cache: for each step key, the image as it stands after the
//! step (`build-cache/KEY` in the store, its blobs in the store's blobs),
//! and its export and import (`--cache-to`, `--cache-from`), so that a
//! machine starting empty reuses another's layers.
//!
//! Exported, the entries are an OCI image index: one image manifest per
//! step (the image config as it stood, and its layers) annotated with the
//! step's key. Locally that index is the `index.json` of an OCI layout;
//! in a registry it is pushed under a tag, with everything it refers to.
//! An imported entry brings its blobs into the store (each verified) only
//! when a step's key asks for it.

use super::exec::Image;
use crate::error::{Error, IoContext, Result};
use crate::image::layout::{Descriptor, Index, Layout, Manifest, OCI_INDEX, OCI_MANIFEST};
use crate::image::reference::Reference;
use crate::image::registry::{self, Client};
use crate::image::store::{write_atomic, Store};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::PathBuf;

/// The annotation of an exported entry's manifest that holds its key.
pub const KEY_ANNOTATION: &str = "io.hoist.build.cache-key";

/// The store's entry of `key`, if all of its blobs are still there.
pub fn lookup(store: &Store, key: &str) -> Option<Image> {
    let path = store.dir.join("build-cache").join(key);
    let img: Image = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    img.layers
        .iter()
        .all(|l| store.has_blob(&l.desc.digest).unwrap_or(false))
        .then_some(img)
}

pub fn remember(store: &Store, key: &str, img: &Image) -> Result<()> {
    let dir = store.dir.join("build-cache");
    fs::create_dir_all(&dir).at(&dir)?;
    let bytes = serde_json::to_vec(img).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(&dir.join(key), &bytes)
}

/// Where `--cache-to` writes or `--cache-from` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheRef {
    /// An OCI layout directory.
    Local(PathBuf),
    /// A registry reference (`HOST/REPO:TAG`).
    Registry(String),
}

impl CacheRef {
    /// BuildKit's forms: `type=local,dest=DIR` (to), `type=local,src=DIR`
    /// (from), `type=registry,ref=REF`, or a bare `REF` for a registry.
    pub fn parse(s: &str, flag: &str) -> Result<CacheRef> {
        let bad = |why: &str| Error::Other(format!("{flag} {s}: {why}"));
        if !s.contains('=') {
            return Ok(CacheRef::Registry(s.to_string()));
        }
        let mut fields = BTreeMap::new();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("want type=local,dest|src=DIR or type=registry,ref=REF"))?;
            fields.insert(k, v);
        }
        let dir_key = if flag == "--cache-to" { "dest" } else { "src" };
        match fields.get("type").copied() {
            Some("local") => fields
                .get(dir_key)
                .filter(|d| !d.is_empty())
                .map(|d| CacheRef::Local(PathBuf::from(d)))
                .ok_or_else(|| bad(&format!("type=local needs {dir_key}=DIR"))),
            Some("registry") => fields
                .get("ref")
                .filter(|r| !r.is_empty())
                .map(|r| CacheRef::Registry(r.to_string()))
                .ok_or_else(|| bad("type=registry needs ref=REF")),
            _ => Err(bad("type=local or type=registry")),
        }
    }
}

/// The image index of the entries `keys` (those the store has), written
/// to the store with the manifests and configs it lists; returns its
/// descriptor and the manifests' descriptors.
fn index_of(store: &Store, keys: &[String]) -> Result<(Descriptor, Vec<Descriptor>)> {
    let mut manifests = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            continue;
        }
        let Some(img) = lookup(store, key) else {
            continue;
        };
        let mut mdesc = super::write_manifest(store, &img.config, &img.layers)?;
        mdesc
            .annotations
            .insert(KEY_ANNOTATION.to_string(), key.clone());
        manifests.push(mdesc);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let ibytes = serde_json::to_vec(&index).map_err(|e| Error::Other(e.to_string()))?;
    Ok((store.write_bytes(&ibytes, OCI_INDEX)?, manifests))
}

/// `--cache-to`: the entries of `keys` (the steps of this build) to an OCI
/// layout (replacing its index) or a registry tag.
pub fn export(
    store: &Store,
    keys: &[String],
    to: &CacheRef,
    opts: &registry::Options,
    quiet: bool,
) -> Result<()> {
    let (idesc, manifests) = index_of(store, keys)?;
    match to {
        CacheRef::Local(dir) => {
            let ctx = |e: Error| Error::Other(format!("--cache-to {}: {e}", dir.display()));
            (|| -> Result<()> {
                let blobs = dir.join("blobs/sha256");
                fs::create_dir_all(&blobs).at(&blobs)?;
                write_atomic(
                    &dir.join("oci-layout"),
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
                for m in &manifests {
                    let manifest = store.manifest(m)?;
                    let all = std::iter::once(&manifest.config).chain(&manifest.layers);
                    for d in all.chain(std::iter::once(m)) {
                        super::export::put_blob(store, d, dir)?;
                    }
                }
                // index.json last: a reader sees the old cache or the new.
                let index = store.layout().raw_blob(&idesc)?;
                write_atomic(&dir.join("index.json"), &index)
            })()
            .map_err(ctx)
        }
        CacheRef::Registry(r) => {
            let target = Reference::parse(r.strip_prefix("docker://").unwrap_or(r))?;
            crate::image::push::push_descriptor(store, &idesc, &target, opts, quiet)
                .map_err(|e| Error::Other(format!("--cache-to {r}: {e}")))
        }
    }
}

/// Where imported entries come from.
enum Origin {
    Layout(Layout),
    Registry(Box<Client>),
}

/// `--cache-from`: the entries a layout or registry index offers, by key.
pub struct Import {
    what: String,
    entries: BTreeMap<String, Descriptor>,
    origin: Origin,
}

impl Import {
    /// Reads the index. A registry tag that does not exist yet is an empty
    /// import (a first CI run has nothing to reuse); other failures are
    /// errors.
    pub fn open(from: &CacheRef, opts: &registry::Options) -> Result<Import> {
        let (what, index_bytes, origin) = match from {
            CacheRef::Local(dir) => {
                let layout = Layout::open(dir)
                    .map_err(|e| Error::Other(format!("--cache-from {}: {e}", dir.display())))?;
                let p = dir.join("index.json");
                let bytes = fs::read(&p).at(&p)?;
                (dir.display().to_string(), bytes, Origin::Layout(layout))
            }
            CacheRef::Registry(r) => {
                let target = Reference::parse(r.strip_prefix("docker://").unwrap_or(r))?;
                let client = Client::new(&target, opts)?;
                let bytes = match client.manifest(target.reference()) {
                    Ok((bytes, _, _)) => bytes,
                    Err(e) if e.to_string().contains("manifest not found") => {
                        br#"{"manifests":[]}"#.to_vec()
                    }
                    Err(e) => return Err(Error::Other(format!("--cache-from {r}: {e}"))),
                };
                (r.clone(), bytes, Origin::Registry(Box::new(client)))
            }
        };
        let index: Index = serde_json::from_slice(&index_bytes)
            .map_err(|e| Error::Other(format!("--cache-from {what}: not an image index: {e}")))?;
        let entries = index
            .manifests
            .into_iter()
            .filter_map(|d| d.annotations.get(KEY_ANNOTATION).cloned().map(|k| (k, d)))
            .collect();
        Ok(Import {
            what,
            entries,
            origin,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn read(&self, d: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        match &self.origin {
            Origin::Layout(l) => Ok(Box::new(l.blob(d)?)),
            Origin::Registry(c) => c.blob(&d.digest),
        }
    }

    fn small(&self, d: &Descriptor) -> Result<Vec<u8>> {
        match &self.origin {
            Origin::Layout(l) => l.raw_blob(d),
            Origin::Registry(c) if d.media_type == OCI_MANIFEST => {
                c.manifest(&d.digest).map(|(b, _, _)| b)
            }
            Origin::Registry(_) => {
                let mut out = Vec::new();
                self.read(d)?
                    .take(16 << 20)
                    .read_to_end(&mut out)
                    .map_err(|e| Error::Other(format!("blob {}: {e}", d.digest)))?;
                let got = format!(
                    "sha256:{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
                );
                if got != d.digest {
                    return Err(Error::Other(format!("blob {}: digest mismatch", d.digest)));
                }
                Ok(out)
            }
        }
    }

    /// The entry of `key`, its layers brought into the store and the
    /// entry remembered there; None when this import has no such key.
    pub fn fetch(&self, store: &Store, key: &str) -> Result<Option<Image>> {
        let Some(mdesc) = self.entries.get(key) else {
            return Ok(None);
        };
        let ctx = |e: Error| Error::Other(format!("--cache-from {}: {key}: {e}", self.what));
        let manifest: Manifest = serde_json::from_slice(&self.small(mdesc).map_err(ctx)?)
            .map_err(|e| ctx(Error::Other(format!("manifest: {e}"))))?;
        let config: serde_json::Value =
            serde_json::from_slice(&self.small(&manifest.config).map_err(ctx)?)
                .map_err(|e| ctx(Error::Other(format!("config: {e}"))))?;
        let ids = crate::image::config::strings(&config["rootfs"]["diff_ids"]);
        if ids.len() != manifest.layers.len() {
            return Err(ctx(Error::Other(
                "diff_ids and layers differ in number".into(),
            )));
        }
        for l in &manifest.layers {
            if !store.has_blob(&l.digest)? {
                let mut r = self.read(l).map_err(ctx)?;
                store.write_blob(l, &mut r, &mut |_| {}).map_err(ctx)?;
            }
        }
        let img = Image {
            config,
            layers: manifest
                .layers
                .into_iter()
                .zip(ids)
                .map(|(desc, diff_id)| super::exec::Layer { desc, diff_id })
                .collect(),
        };
        remember(store, key, &img)?;
        Ok(Some(img))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_refs_as_buildkit_writes_them() {
        assert_eq!(
            CacheRef::parse("type=local,dest=/c", "--cache-to").unwrap(),
            CacheRef::Local("/c".into())
        );
        assert_eq!(
            CacheRef::parse("type=local,src=/c", "--cache-from").unwrap(),
            CacheRef::Local("/c".into())
        );
        assert_eq!(
            CacheRef::parse("type=registry,ref=h:5000/app:cache", "--cache-to").unwrap(),
            CacheRef::Registry("h:5000/app:cache".into())
        );
        assert_eq!(
            CacheRef::parse("h:5000/app:cache", "--cache-from").unwrap(),
            CacheRef::Registry("h:5000/app:cache".into())
        );
        for bad in [
            "type=local",
            "type=s3,bucket=x",
            "type=local,dest=/c",
            "type=registry",
        ] {
            assert!(CacheRef::parse(bad, "--cache-from").is_err(), "{bad}");
        }
    }
}

//! `docker save` archives (`docker-archive:FILE[:REPO:TAG]`): a tar with a
//! manifest.json listing, per image, its config file, its RepoTags and its
//! layer tars. The archive is extracted and turned into an OCI image layout
//! next to it, so the rest of hoist reads one format.

use super::layout::{self, Descriptor, OCI_MANIFEST};
use super::reference::Reference;
use super::store::{write_atomic, REF_NAME};
use crate::error::{Error, IoContext, Result};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// A path from manifest.json: relative, no `..`, inside `root`.
fn inside(root: &Path, p: &str, file: &Path) -> Result<PathBuf> {
    let rel = Path::new(p);
    if p.is_empty()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::Other(format!(
            "{}: manifest.json names \"{p}\", which is not a path inside the archive",
            file.display()
        )));
    }
    Ok(root.join(rel))
}

fn normalised(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// Hashes `path` and moves it to `blobs/sha256/HEX` of the layout at `dir`.
fn to_blob(dir: &Path, path: &Path, media_type: &str) -> Result<Descriptor> {
    let mut f = File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hex::encode(h.finalize());
    let dest = dir.join("blobs/sha256").join(&hex);
    if !dest.exists() {
        // A layer listed twice is moved once and then found in place.
        fs::hard_link(path, &dest).at(&dest)?;
    }
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest: format!("sha256:{hex}"),
        size,
        platform: None,
        annotations: Default::default(),
    })
}

/// The layer media type from a file's first bytes: docker save writes
/// plain tars, but newer Dockers keep layers as they were pulled.
fn sniff(path: &Path) -> Result<&'static str> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).at(path)?;
    let n = f.read(&mut magic).at(path)?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    })
}

/// Extracts the archive `file` into `dest` (an empty directory) and makes
/// `dest/layout` an OCI layout holding the image `name` (or the archive's
/// only image). Returns the layout's directory and the manifest descriptor,
/// annotated with the image's first RepoTag when it has one.
pub fn to_layout(file: &Path, name: Option<&str>, dest: &Path) -> Result<(PathBuf, Descriptor)> {
    let raw = dest.join("archive");
    fs::create_dir(&raw).at(&raw)?;
    layout::extract_archive(file, &raw)?;
    let mpath = raw.join("manifest.json");
    let text = fs::read(&mpath).map_err(|e| {
        Error::Other(format!(
            "{}: not a docker-archive (manifest.json: {e})",
            file.display()
        ))
    })?;
    let entries: Vec<Entry> = serde_json::from_slice(&text)
        .map_err(|e| Error::Other(format!("{}: invalid manifest.json: {e}", file.display())))?;
    let entry = match name {
        Some(want) => {
            let want = normalised(want);
            entries
                .iter()
                .find(|e| e.repo_tags.iter().flatten().any(|t| normalised(t) == want))
                .ok_or_else(|| {
                    Error::Other(format!("{}: no image tagged \"{want}\"", file.display()))
                })?
        }
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(Error::Other(format!("{}: holds no image", file.display()))),
            many => {
                let tags: Vec<&str> = many
                    .iter()
                    .flat_map(|e| e.repo_tags.iter().flatten().map(String::as_str))
                    .collect();
                return Err(Error::Other(format!(
                    "{}: {} images, name one with :REPO:TAG (have: {})",
                    file.display(),
                    many.len(),
                    tags.join(", ")
                )));
            }
        },
    };

    let dir = dest.join("layout");
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).at(&blobs)?;
    let config = to_blob(
        &dir,
        &inside(&raw, &entry.config, file)?,
        "application/vnd.oci.image.config.v1+json",
    )?;
    let mut layers = Vec::new();
    for l in &entry.layers {
        let p = inside(&raw, l, file)?;
        layers.push(to_blob(&dir, &p, sniff(&p)?)?);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    let hex = hex::encode(Sha256::digest(&bytes));
    write_atomic(&blobs.join(&hex), &bytes)?;
    let mut mdesc = Descriptor {
        media_type: OCI_MANIFEST.to_string(),
        digest: format!("sha256:{hex}"),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    if let Some(tag) = entry.repo_tags.iter().flatten().next() {
        mdesc
            .annotations
            .insert(REF_NAME.to_string(), normalised(tag));
    }
    let index = json!({"schemaVersion": 2, "manifests": [mdesc]});
    write_atomic(
        &dir.join("index.json"),
        &serde_json::to_vec(&index).map_err(|e| Error::Other(e.to_string()))?,
    )?;
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok((dir, mdesc))
}

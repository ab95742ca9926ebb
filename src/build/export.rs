//! A stored image written out for other tools: an OCI image layout (skopeo's
//! `oci:DIR:TAG`), a tar of one (`oci-archive:`), or what `docker save`
//! writes (`docker-archive:`, for `docker load` and `podman load`).

use super::commit::Hashing;
use crate::error::{Error, IoContext, Result};
use crate::image::layer::{Compression, Decoder};
use crate::image::layout::{Descriptor, Manifest, Platform, DOCKER_LIST, OCI_INDEX};
use crate::image::reference::{Reference, DOCKER_HUB};
use crate::image::store::{write_atomic, Store, REF_NAME};
use crate::image::TempDir;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Every blob of the image `mdesc` (itself first, then through indexes to
/// configs and layers), each once.
fn blobs_of(store: &Store, mdesc: &Descriptor) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    collect(store, mdesc, &mut out, &mut seen, 0)?;
    Ok(out)
}

fn collect(
    store: &Store,
    d: &Descriptor,
    out: &mut Vec<Descriptor>,
    seen: &mut HashSet<String>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::Other(format!(
            "{}: image indexes nested too deeply",
            d.digest
        )));
    }
    if !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    out.push(d.clone());
    if d.media_type == OCI_INDEX || d.media_type == DOCKER_LIST {
        let v: Value = store.layout().json_blob(d)?;
        let children: Vec<Descriptor> = serde_json::from_value(v["manifests"].clone())
            .map_err(|e| Error::Other(format!("image index {}: {e}", d.digest)))?;
        // A store keeps the manifests of an index it was asked for; the
        // others (other platforms) were never fetched and stay out.
        for c in children
            .iter()
            .filter(|c| store.has_blob(&c.digest).unwrap_or(false))
        {
            collect(store, c, out, seen, depth + 1)?;
        }
        return Ok(());
    }
    let m: Manifest = store.manifest(d)?;
    for b in std::iter::once(&m.config).chain(&m.layers) {
        if seen.insert(b.digest.clone()) {
            out.push(b.clone());
        }
    }
    Ok(())
}

/// The tag of a full reference, as an OCI layout's ref.name carries it
/// (skopeo's `oci:DIR:TAG`); a reference by digest has no tag and keeps
/// the whole name, which the ref.name grammar allows.
fn ref_name(name: &str) -> Result<String> {
    let r = Reference::parse(name)?;
    Ok(r.tag.clone().unwrap_or_else(|| r.to_string()))
}

/// Puts the blob `d` of the store at `blobs/sha256/HEX` under `dir`: a hard
/// link when both are on one file system, else a verified copy. A blob
/// already there is kept (its name is its content).
pub(crate) fn put_blob(store: &Store, d: &Descriptor, dir: &Path) -> Result<()> {
    let src = store.layout().blob_path(&d.digest)?;
    let hex = &d.digest["sha256:".len()..];
    let dest = dir.join("blobs/sha256").join(hex);
    if dest.exists() {
        return Ok(());
    }
    let tmp = dir
        .join("blobs/sha256")
        .join(format!(".{hex}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let r = (|| -> Result<()> {
        match fs::hard_link(&src, &tmp) {
            Ok(()) => {}
            // Another file system (EXDEV), or one that has no hard links.
            Err(_) => {
                let mut r = store.layout().blob(d)?;
                let mut out = File::create(&tmp).at(&tmp)?;
                io::copy(&mut r, &mut out)
                    .map_err(|e| Error::Other(format!("copying blob {}: {e}", d.digest)))?;
                r.finish()?;
            }
        }
        fs::rename(&tmp, &dest).at(&dest)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// The platform of a manifest's config, for its entry in index.json.
fn platform_of(store: &Store, mdesc: &Descriptor) -> Option<Platform> {
    let m: Manifest = store.manifest(mdesc).ok()?;
    let cfg: Value = store.layout().json_blob(&m.config).ok()?;
    Some(Platform {
        os: cfg["os"].as_str()?.to_string(),
        architecture: cfg["architecture"].as_str()?.to_string(),
        variant: cfg["variant"].as_str().map(String::from),
    })
}

/// Writes the image `mdesc` of `store` into the OCI image layout at `dir`
/// (made if missing), named `name` (a full reference): index.json's entry
/// carries the tag as `org.opencontainers.image.ref.name`, as skopeo
/// writes it, and the full name as `io.containerd.image.name`. An entry
/// with the same ref.name is replaced; other images stay.
pub fn to_oci_layout(store: &Store, mdesc: &Descriptor, name: &str, dir: &Path) -> Result<()> {
    let ctx = |e: Error| Error::Other(format!("exporting {name} to {}: {e}", dir.display()));
    let tag = ref_name(name).map_err(ctx)?;
    let full = Reference::parse(name).map_err(ctx)?.to_string();
    (|| -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).at(&blobs)?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, OCI_LAYOUT)?;
        }
        for d in blobs_of(store, mdesc)? {
            put_blob(store, &d, dir)?;
        }
        let index_path = dir.join("index.json");
        let mut index: Value = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config {
                path: index_path.clone(),
                msg: format!("invalid index: {e}"),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => json!({}),
            Err(e) => return Err(Error::io(&index_path, e)),
        };
        let mut manifests: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag.as_str()));
        let mut entry = Descriptor {
            media_type: mdesc.media_type.clone(),
            digest: mdesc.digest.clone(),
            size: mdesc.size,
            platform: platform_of(store, mdesc),
            annotations: Default::default(),
        };
        entry.annotations.insert(REF_NAME.to_string(), tag.clone());
        entry
            .annotations
            .insert(CONTAINERD_NAME.to_string(), full.clone());
        manifests.push(serde_json::to_value(&entry).map_err(|e| Error::Other(e.to_string()))?);
        index["schemaVersion"] = json!(2);
        index["mediaType"] = json!(OCI_INDEX);
        index["manifests"] = Value::Array(manifests);
        let text = serde_json::to_vec_pretty(&index).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&index_path, &text)
    })()
    .map_err(ctx)
}

/// A file written beside its destination and renamed over it when whole;
/// removed if dropped before that.
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Pending {
    fn new(dest: &Path) -> Result<(Pending, File)> {
        let mut name = dest.as_os_str().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(name);
        let f = File::create(&tmp).at(&tmp)?;
        Ok((
            Pending {
                tmp,
                dest: dest.to_path_buf(),
                done: false,
            },
            f,
        ))
    }

    fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.dest).at(&self.dest)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A header for a member of an archive hoist writes: root's, mtime 0, so
/// the same image gives the same archive.
fn header(kind: EntryType, path: &str, mode: u32, size: u64) -> Result<Header> {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_path(path)
        .map_err(|e| Error::Other(format!("archive member {path}: {e}")))?;
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    Ok(h)
}

fn write_err(file: &Path) -> impl Fn(io::Error) -> Error {
    let file = file.to_path_buf();
    move |e| Error::io(&file, e)
}

/// Writes the image as an OCI layout in a tar at `file` (skopeo's
/// `oci-archive:FILE`), which appears whole or not at all.
pub fn to_oci_archive(store: &Store, mdesc: &Descriptor, name: &str, file: &Path) -> Result<()> {
    let ctx = |e: Error| Error::Other(format!("exporting {name} to {}: {e}", file.display()));
    (|| -> Result<()> {
        // The layout is made of hard links into the store, so building it
        // costs no copy; the tar is made from it.
        let staging = TempDir::new(file, "layout")?;
        to_oci_layout(store, mdesc, name, &staging.path)?;
        let (pending, f) = Pending::new(file)?;
        let we = write_err(&pending.tmp);
        let mut tar = tar::Builder::new(BufWriter::with_capacity(256 << 10, f));
        for member in ["oci-layout", "index.json"] {
            let bytes = fs::read(staging.path.join(member)).at(staging.path.join(member))?;
            let h = header(EntryType::Regular, member, 0o644, bytes.len() as u64)?;
            tar.append(&h, bytes.as_slice()).map_err(&we)?;
        }
        for d in ["blobs/", "blobs/sha256/"] {
            tar.append(&header(EntryType::Directory, d, 0o755, 0)?, io::empty())
                .map_err(&we)?;
        }
        let mut hexes: Vec<String> = blobs_of(store, mdesc)?
            .iter()
            .map(|d| d.digest["sha256:".len()..].to_string())
            .collect();
        hexes.sort();
        for hex in hexes {
            let path = staging.path.join("blobs/sha256").join(&hex);
            let f = File::open(&path).at(&path)?;
            let size = f.metadata().at(&path)?.len();
            let h = header(
                EntryType::Regular,
                &format!("blobs/sha256/{hex}"),
                0o644,
                size,
            )?;
            tar.append(&h, f.take(size)).map_err(&we)?;
        }
        let out = tar.into_inner().map_err(&we)?;
        out.into_inner()
            .map_err(|e| we(e.into_error()))?
            .sync_all()
            .map_err(&we)?;
        pending.commit()
    })()
    .map_err(ctx)
}

/// How Docker shows a name: `docker.io/library/x:1` is `x:1`,
/// `docker.io/u/x:1` is `u/x:1`; other registries stay. None for a name
/// with no tag (a RepoTag needs one).
pub fn familiar(name: &str) -> Result<Option<String>> {
    let r = Reference::parse(name)?;
    let Some(tag) = &r.tag else {
        return Ok(None);
    };
    let repo = if r.registry == DOCKER_HUB {
        r.repository
            .strip_prefix("library/")
            .filter(|rest| !rest.contains('/'))
            .unwrap_or(&r.repository)
            .to_string()
    } else {
        r.repo_name()
    };
    Ok(Some(format!("{repo}:{tag}")))
}

/// Writes the image as `docker save` does (for `docker load`, `podman
/// load`, skopeo's `docker-archive:`): manifest.json, a `repositories`
/// file, the config as `HEX.json` and each layer uncompressed as
/// `DIFFID/layer.tar`. `repo_tags` are full references, written in
/// Docker's short form. The file appears whole or not at all.
pub fn to_docker_archive(
    store: &Store,
    mdesc: &Descriptor,
    repo_tags: &[String],
    file: &Path,
) -> Result<()> {
    let ctx = |e: Error| {
        Error::Other(format!(
            "exporting {} to {}: {e}",
            repo_tags
                .first()
                .map_or(mdesc.digest.as_str(), String::as_str),
            file.display()
        ))
    };
    (|| -> Result<()> {
        if mdesc.media_type == OCI_INDEX || mdesc.media_type == DOCKER_LIST {
            return Err(Error::Unsupported(format!(
                "a docker-archive of the image index {}",
                mdesc.digest
            )));
        }
        let m: Manifest = store.manifest(mdesc)?;
        let config_bytes = store.layout().raw_blob(&m.config)?;
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::Other(format!("config {}: {e}", m.config.digest)))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        if diff_ids.len() != m.layers.len() {
            return Err(Error::Other(format!(
                "config {} lists {} diff_ids for {} layers",
                m.config.digest,
                diff_ids.len(),
                m.layers.len()
            )));
        }
        let mut tags = Vec::new();
        for t in repo_tags {
            tags.extend(familiar(t)?);
        }

        let (pending, f) = Pending::new(file)?;
        let we = write_err(&pending.tmp);
        let mut tar = tar::Builder::new(BufWriter::with_capacity(256 << 10, f));
        let config_hex = &m.config.digest["sha256:".len()..];
        let config_name = format!("{config_hex}.json");
        let h = header(
            EntryType::Regular,
            &config_name,
            0o644,
            config_bytes.len() as u64,
        )?;
        tar.append(&h, config_bytes.as_slice()).map_err(&we)?;

        let mut layer_names = Vec::new();
        let mut written = HashSet::new();
        for (l, diff_id) in m.layers.iter().zip(&diff_ids) {
            let hex = diff_id
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| Error::Other(format!("malformed diff_id \"{diff_id}\"")))?;
            let member = format!("{hex}/layer.tar");
            // A layer the image lists twice is in the archive once.
            if written.insert(hex.to_string()) {
                tar.append(
                    &header(EntryType::Directory, &format!("{hex}/"), 0o755, 0)?,
                    io::empty(),
                )
                .map_err(&we)?;
                append_layer(store, l, diff_id, &member, tar.get_mut())
                    .map_err(|e| Error::Other(format!("layer {}: {e}", l.digest)))?;
            }
            layer_names.push(member);
        }

        let manifest = json!([{
            "Config": config_name,
            "RepoTags": tags,
            "Layers": layer_names,
        }]);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
        let h = header(
            EntryType::Regular,
            "manifest.json",
            0o644,
            bytes.len() as u64,
        )?;
        tar.append(&h, bytes.as_slice()).map_err(&we)?;

        // The pre-1.10 index, which old loaders read: repo -> tag -> the
        // top layer's id (here its directory name).
        let mut repos = serde_json::Map::new();
        if let Some(top) = layer_names.last().and_then(|n| n.split('/').next()) {
            for t in &tags {
                if let Some((repo, tag)) = t.rsplit_once(':') {
                    let e = repos.entry(repo.to_string()).or_insert_with(|| json!({}));
                    e[tag] = json!(top);
                }
            }
        }
        let bytes = serde_json::to_vec(&repos).map_err(|e| Error::Other(e.to_string()))?;
        let h = header(
            EntryType::Regular,
            "repositories",
            0o644,
            bytes.len() as u64,
        )?;
        tar.append(&h, bytes.as_slice()).map_err(&we)?;

        let out = tar.into_inner().map_err(&we)?;
        out.into_inner()
            .map_err(|e| we(e.into_error()))?
            .sync_all()
            .map_err(&we)?;
        pending.commit()
    })()
    .map_err(ctx)
}

/// Appends `member`, the layer `l` decompressed, to the tar being written
/// to `out`. The uncompressed size is known only at the end, so the header
/// is written as a placeholder and filled in afterwards (the archive is a
/// file); the content must hash to `diff_id`.
fn append_layer(
    store: &Store,
    l: &Descriptor,
    diff_id: &str,
    member: &str,
    out: &mut BufWriter<File>,
) -> Result<()> {
    let io_err = |e: io::Error| Error::Other(format!("writing the archive: {e}"));
    let c = Compression::from_media_type(&l.media_type)?;
    let start = out.stream_position().map_err(io_err)?;
    out.write_all(&[0u8; 512]).map_err(io_err)?;
    let blob = store.layout().blob(l)?;
    let mut data = Decoder::new(blob, c).map_err(io_err)?;
    // The size and diff_id of the uncompressed layer, as it is written.
    let mut m = Hashing::new(&mut *out);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Other(format!("reading: {e}"))),
        };
        m.write_all(&buf[..n]).map_err(io_err)?;
    }
    let (_, got, len) = m.finish();
    // The diff_id (from the verified config) vouches for the content; the
    // compressed blob's own digest was checked when it entered the store.
    if got != diff_id {
        return Err(Error::Other(format!(
            "uncompressed content is {got}, the config's diff_id is {diff_id}"
        )));
    }
    let pad = (512 - len % 512) % 512;
    out.write_all(&vec![0u8; pad as usize]).map_err(io_err)?;
    let end = out.stream_position().map_err(io_err)?;
    let h = header(EntryType::Regular, member, 0o644, len)?;
    out.seek(SeekFrom::Start(start)).map_err(io_err)?;
    out.write_all(h.as_bytes()).map_err(io_err)?;
    out.seek(SeekFrom::Start(end)).map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_are_dockers() {
        let f = |n| familiar(n).unwrap();
        assert_eq!(f("docker.io/library/x:1").as_deref(), Some("x:1"));
        assert_eq!(f("docker.io/u/x:1").as_deref(), Some("u/x:1"));
        assert_eq!(f("busybox").as_deref(), Some("busybox:latest"));
        assert_eq!(
            f("localhost:5000/a/b:t").as_deref(),
            Some("localhost:5000/a/b:t")
        );
        let digest = format!("docker.io/library/x@sha256:{}", "a".repeat(64));
        assert_eq!(f(&digest), None);
    }

    #[test]
    fn ref_names_are_tags() {
        assert_eq!(ref_name("docker.io/library/x:1").unwrap(), "1");
        assert_eq!(ref_name("x").unwrap(), "latest");
    }
}

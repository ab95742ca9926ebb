//! Image sources on disk: an OCI image layout directory (`oci:DIR[:TAG]`) or
//! a tar of one (`oci-archive:FILE[:TAG]`), and blobs read from them with
//! their digest checked as they are read.

use crate::error::{Error, IoContext, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Where an image comes from, as skopeo names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci:DIR[:TAG]`
    OciDir { dir: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`
    OciArchive { file: PathBuf, tag: Option<String> },
}

impl Source {
    pub fn parse(s: &str) -> Result<Source> {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.split_once(':') {
                Some((p, t)) if !t.is_empty() => (PathBuf::from(p), Some(t.to_string())),
                Some((p, _)) => (PathBuf::from(p), None),
                None => (PathBuf::from(rest), None),
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split(rest);
            return Ok(Source::OciDir { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split(rest);
            return Ok(Source::OciArchive { file, tag });
        }
        Err(Error::Unsupported(format!(
            "image source \"{s}\" (want oci:DIR[:TAG] or oci-archive:FILE[:TAG])"
        )))
    }
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An OCI image layout directory.
pub struct Layout {
    pub dir: PathBuf,
}

/// The host's architecture in GOARCH spelling, as image platforms name it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            return Err(Error::Config {
                path: dir.to_path_buf(),
                msg: "not an OCI image layout (no oci-layout file)".into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of a blob, from a digest checked to be `sha256:<64 hex>`.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| Error::Other(format!("unsupported or malformed digest \"{digest}\"")))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// A reader over a blob that checks its size and digest; call
    /// [`BlobReader::finish`] after reading to get the verdict.
    pub fn blob(&self, desc: &Descriptor) -> Result<BlobReader> {
        let path = self.blob_path(&desc.digest)?;
        let file = File::open(&path).at(&path)?;
        Ok(BlobReader {
            inner: file,
            hasher: Sha256::new(),
            read: 0,
            digest: desc.digest.clone(),
            size: desc.size,
        })
    }

    /// A small JSON blob, read whole and verified.
    pub fn json_blob<T: serde::de::DeserializeOwned>(&self, desc: &Descriptor) -> Result<T> {
        const MAX: u64 = 16 << 20;
        if desc.size > MAX {
            return Err(Error::Other(format!(
                "blob {}: {} bytes is too large for a manifest or config",
                desc.digest, desc.size
            )));
        }
        let mut r = self.blob(desc)?;
        let mut buf = Vec::with_capacity(desc.size as usize);
        (&mut r)
            .take(MAX + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Other(format!("blob {}: {e}", desc.digest)))?;
        r.finish()?;
        serde_json::from_slice(&buf)
            .map_err(|e| Error::Other(format!("blob {}: invalid JSON: {e}", desc.digest)))
    }

    /// The image manifest named by `tag` (or the only one), descending into
    /// image indexes and choosing linux/<host arch> there.
    pub fn resolve(&self, tag: Option<&str>) -> Result<(Descriptor, Manifest)> {
        let path = self.dir.join("index.json");
        let text = std::fs::read(&path).at(&path)?;
        let index: Index = serde_json::from_slice(&text).map_err(|e| Error::Config {
            path: path.clone(),
            msg: format!("invalid index: {e}"),
        })?;
        if let Some(mt) = index.media_type.as_deref().filter(|m| *m != OCI_INDEX) {
            return Err(Error::Config {
                path,
                msg: format!("media type \"{mt}\" is not an image index"),
            });
        }
        let chosen = match tag {
            Some(tag) => {
                let hits: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| {
                        [REF_NAME, CONTAINERD_NAME].iter().any(|k| {
                            d.annotations.get(*k).is_some_and(|n| {
                                n == tag || n.rsplit_once(':').is_some_and(|(_, t)| t == tag)
                            })
                        })
                    })
                    .collect();
                match hits.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        return Err(Error::Other(format!(
                            "no image named \"{tag}\" in index.json"
                        )))
                    }
                    [first, ..] => {
                        // The same name twice (e.g. both annotations): fine if one image.
                        if hits.iter().all(|d| d.digest == first.digest) {
                            (*first).clone()
                        } else {
                            return Err(Error::Other(format!(
                                "\"{tag}\" names {} different images",
                                hits.len()
                            )));
                        }
                    }
                }
            }
            None => match index.manifests.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::Other("index.json lists no images".into())),
                many => {
                    let names: Vec<&str> = many
                        .iter()
                        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
                        .collect();
                    return Err(Error::Other(format!(
                        "{} images in index.json, name one with :TAG (have: {})",
                        many.len(),
                        names.join(", ")
                    )));
                }
            },
        };
        self.manifest_of(chosen, 0)
    }

    fn manifest_of(&self, desc: Descriptor, depth: usize) -> Result<(Descriptor, Manifest)> {
        if depth > 4 {
            return Err(Error::Other(format!(
                "{}: image indexes nested too deeply",
                desc.digest
            )));
        }
        match desc.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let m: Manifest = self.json_blob(&desc)?;
                Ok((desc, m))
            }
            OCI_INDEX | DOCKER_LIST => {
                let index: Index = self.json_blob(&desc)?;
                let arch = host_arch();
                let pick = index
                    .manifests
                    .iter()
                    .find(|d| {
                        d.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                    })
                    .cloned()
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "image index {}: no manifest for linux/{arch}",
                            desc.digest
                        ))
                    })?;
                self.manifest_of(pick, depth + 1)
            }
            other => Err(Error::Unsupported(format!(
                "manifest {}: media type \"{other}\"",
                desc.digest
            ))),
        }
    }
}

/// Reads a blob while hashing it.
pub struct BlobReader {
    inner: File,
    hasher: Sha256,
    read: u64,
    digest: String,
    size: u64,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is larger than its descriptor's {} bytes",
                    self.digest, self.size
                ),
            ));
        }
        Ok(n)
    }
}

impl BlobReader {
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Reads what is left and checks size and digest.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink())
            .map_err(|e| Error::Other(format!("blob {}: {e}", self.digest)))?;
        if self.read != self.size {
            return Err(Error::Other(format!(
                "blob {}: {} bytes, descriptor says {}",
                self.digest, self.read, self.size
            )));
        }
        let got = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if got != self.digest {
            return Err(Error::Other(format!(
                "blob {}: digest mismatch (content is {got})",
                self.digest
            )));
        }
        Ok(())
    }
}

/// Extracts an oci-archive into `dest` (an empty directory).
pub fn extract_archive(file: &Path, dest: &Path) -> Result<()> {
    let f = File::open(file).at(file)?;
    let mut ar = tar::Archive::new(f);
    ar.set_preserve_permissions(false);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(false);
    // tar's unpack refuses entries that would land outside `dest`.
    ar.unpack(dest)
        .map_err(|e| Error::Other(format!("{}: extracting archive: {e}", file.display())))
}

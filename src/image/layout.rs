//! OCI image layout directories (a user's `oci:DIR`, an extracted archive,
//! hoist's own store) and blobs read from them with their digest checked as
//! they are read.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
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

/// A content descriptor.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// linux/<host arch>, what an image index is searched for by default.
    pub fn host() -> Platform {
        Platform {
            architecture: host_arch().to_string(),
            os: "linux".to_string(),
            variant: None,
        }
    }

    /// `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty();
        match parts.as_slice() {
            [os, arch] if [os, arch].iter().all(|p| ok(p)) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if [os, arch, v].iter().all(|p| ok(p)) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::Other(format!(
                "platform \"{s}\": want OS/ARCH[/VARIANT], e.g. linux/arm64"
            ))),
        }
    }

    /// Whether an index entry's platform satisfies this request: os and
    /// architecture equal, and the variant too when both name one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
pub struct Index {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
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
        Ok(BlobReader::new(file, desc))
    }

    /// A small blob (a manifest or config), read whole and verified.
    pub fn raw_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
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
        Ok(buf)
    }

    /// A small JSON blob, read whole and verified.
    pub fn json_blob<T: serde::de::DeserializeOwned>(&self, desc: &Descriptor) -> Result<T> {
        let buf = self.raw_blob(desc)?;
        serde_json::from_slice(&buf)
            .map_err(|e| Error::Other(format!("blob {}: invalid JSON: {e}", desc.digest)))
    }

    /// The image manifest named by `tag` (or the only one), descending into
    /// image indexes and choosing linux/<host arch> there.
    pub fn resolve(&self, tag: Option<&str>, want: &Platform) -> Result<(Descriptor, Manifest)> {
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
        self.manifest_of(chosen, want, 0)
    }

    /// The image manifest `desc` points at, through image indexes.
    pub fn manifest_of(
        &self,
        desc: Descriptor,
        want: &Platform,
        depth: usize,
    ) -> Result<(Descriptor, Manifest)> {
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
                let pick = pick_platform(&index, want).ok_or_else(|| {
                    Error::Other(format!(
                        "image index {}: no manifest for {want}",
                        desc.digest
                    ))
                })?;
                self.manifest_of(pick, want, depth + 1)
            }
            other => Err(Error::Unsupported(format!(
                "manifest {}: media type \"{other}\"",
                desc.digest
            ))),
        }
    }
}

/// The index entry for platform `want`, if there is one.
pub fn pick_platform(index: &Index, want: &Platform) -> Option<Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .cloned()
}

/// Reads a blob (from a file, or a registry's response) while hashing it.
pub struct BlobReader<R = File> {
    inner: R,
    hasher: Sha256,
    read: u64,
    digest: String,
    size: u64,
}

impl<R: Read> Read for BlobReader<R> {
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

impl<R: Read> BlobReader<R> {
    /// Checks what `inner` yields against `desc`'s size and digest.
    pub fn new(inner: R, desc: &Descriptor) -> BlobReader<R> {
        BlobReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            digest: desc.digest.clone(),
            size: desc.size,
        }
    }

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

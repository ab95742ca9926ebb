//! Where an image comes from, named the way skopeo names it, and opening
//! it: whatever the source, the result is an OCI layout and a manifest.

use super::docker_archive;
use super::layout::{self, Descriptor, Layout, Manifest};
use super::pull::{self, PullOptions};
use super::reference::Reference;
use super::store::{Store, StoreLock, REF_NAME};
use super::TempDir;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `oci:DIR[:TAG]`
    OciDir { dir: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`
    OciArchive { file: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE[:REPO:TAG]` (what `docker save` writes)
    DockerArchive { file: PathBuf, name: Option<String> },
    /// `docker://HOST/REPO[:TAG|@DIGEST]`: always the registry.
    Registry(String),
    /// A plain reference: hoist's store first, then the registry.
    Name(String),
}

/// Splits `PATH[:REST]` at the first colon.
fn split(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, t)) if !t.is_empty() => (PathBuf::from(p), Some(t.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

impl Source {
    pub fn parse(s: &str) -> Result<Source> {
        let nonempty = |p: &PathBuf, what: &str| {
            if p.as_os_str().is_empty() {
                Err(Error::Other(format!("image source \"{s}\": no {what}")))
            } else {
                Ok(())
            }
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split(rest);
            nonempty(&dir, "directory")?;
            return Ok(Source::OciDir { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = split(rest);
            nonempty(&file, "file")?;
            return Ok(Source::OciArchive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, name) = split(rest);
            nonempty(&file, "file")?;
            return Ok(Source::DockerArchive { file, name });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Source::Registry(rest.to_string()));
        }
        if let Some((transport, _)) = s.split_once(':') {
            // "host:port/x" and "name:tag" are references; "word:" with no
            // slash or dot before it and a known skopeo transport is not.
            const OTHER: &[&str] = &[
                "containers-storage",
                "dir",
                "docker-daemon",
                "ostree",
                "sif",
            ];
            if OTHER.contains(&transport) {
                return Err(Error::Unsupported(format!(
                    "image source \"{s}\": transport \"{transport}:\" (hoist reads oci:, \
                     oci-archive:, docker-archive:, docker:// and plain references)"
                )));
            }
        }
        if s.is_empty() {
            return Err(Error::Other("empty image source".into()));
        }
        Ok(Source::Name(s.to_string()))
    }
}

/// An image ready to read.
pub struct Opened {
    pub layout: Layout,
    pub mdesc: Descriptor,
    pub manifest: Manifest,
    /// The full reference the image goes by, when it has one.
    pub name: Option<String>,
    /// Keeps a store's gc away while the image is read.
    _lock: Option<StoreLock>,
    /// An extracted archive, removed when done.
    _tmp: Option<TempDir>,
}

/// The name annotation of the index entry `tag` (or the only one) when it
/// is a full reference (has a repository path); skopeo's bare tags are not.
fn layout_name(dir: &Path, tag: Option<&str>) -> Option<String> {
    let path = dir.join("index.json");
    let text = std::fs::read(path).ok()?;
    let index: layout::Index = serde_json::from_slice(&text).ok()?;
    // containerd's annotation is always a full name; ref.name may be a
    // bare tag (skopeo) or a full name (containerd, hack/mkimage).
    let names = index.manifests.iter().filter_map(|d| {
        d.annotations
            .get("io.containerd.image.name")
            .filter(|n| n.contains('/'))
            .or_else(|| d.annotations.get(REF_NAME))
    });
    let found: Vec<&String> = names
        .filter(|n| match tag {
            Some(t) => *n == t || n.rsplit_once(':').is_some_and(|(_, x)| x == t),
            None => true,
        })
        .collect();
    match found.as_slice() {
        [one] if one.contains('/') => Reference::parse(one).ok().map(|r| r.to_string()),
        _ => None,
    }
}

fn opened(layout: Layout, mdesc: Descriptor, manifest: Manifest) -> Opened {
    Opened {
        layout,
        mdesc,
        manifest,
        name: None,
        _lock: None,
        _tmp: None,
    }
}

impl Source {
    /// Opens the image. Archives are extracted into a directory next to
    /// `scratch`; registry images are pulled into `store` first, and a
    /// plain name is looked up there before it is pulled.
    pub fn open(&self, store_dir: &Path, scratch: &Path, opts: &PullOptions) -> Result<Opened> {
        let want = &opts.platform;
        match self {
            Source::OciDir { dir, tag } => {
                let layout = Layout::open(dir)?;
                let (mdesc, manifest) = layout.resolve(tag.as_deref(), want)?;
                let mut o = opened(layout, mdesc, manifest);
                o.name = layout_name(dir, tag.as_deref());
                Ok(o)
            }
            Source::OciArchive { file, tag } => {
                let x = TempDir::new(scratch, "src")?;
                layout::extract_archive(file, &x.path)?;
                let layout = Layout::open(&x.path)?;
                let (mdesc, manifest) = layout.resolve(tag.as_deref(), want)?;
                let mut o = opened(layout, mdesc, manifest);
                o.name = layout_name(&x.path, tag.as_deref());
                o._tmp = Some(x);
                Ok(o)
            }
            Source::DockerArchive { file, name } => {
                let x = TempDir::new(scratch, "src")?;
                let (dir, mdesc) = docker_archive::to_layout(file, name.as_deref(), &x.path)?;
                let layout = Layout::open(&dir)?;
                let manifest = layout.json_blob(&mdesc)?;
                let mut o = opened(layout, mdesc.clone(), manifest);
                o.name = mdesc.annotations.get(REF_NAME).cloned();
                o._tmp = Some(x);
                Ok(o)
            }
            Source::Registry(r) => {
                let store = Store::open(store_dir)?;
                let (name, _) = pull::pull_registry(&store, r, opts)?;
                from_store(store, &name, want)
            }
            Source::Name(n) => {
                // A file or layout here named without a transport is not
                // what the user wants pulled from a registry.
                let local = Path::new(n);
                let on_disk = local.is_file() || local.join("index.json").is_file();
                let name = match Reference::parse(n) {
                    Ok(r) => r.to_string(),
                    Err(_) if on_disk => return Err(local_without_transport(n)),
                    Err(e) => return Err(e),
                };
                let store = Store::open(store_dir)?;
                if store.lookup(&name)?.is_none() {
                    if on_disk {
                        return Err(local_without_transport(n));
                    }
                    pull::pull_registry(&store, n, opts)?;
                }
                from_store(store, &name, want)
            }
        }
    }
}

fn local_without_transport(n: &str) -> Error {
    Error::Other(format!(
        "image source \"{n}\" is a {} here, not an image in the store: name it with its \
         transport, oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REPO:TAG] \
         (or docker://REF for a registry)",
        if Path::new(n).is_dir() {
            "directory"
        } else {
            "file"
        }
    ))
}

/// The image `name` of the store, held against gc while it is read.
pub fn from_store(store: Store, name: &str, want: &layout::Platform) -> Result<Opened> {
    let lock = store.lock_shared()?;
    let desc = store
        .lookup(name)?
        .ok_or_else(|| Error::Other(format!("image \"{name}\" is not in the store")))?;
    let layout = Layout::open(&store.dir)?;
    let (mdesc, manifest) = layout.manifest_of(desc, want, 0)?;
    let mut o = opened(layout, mdesc, manifest);
    o.name = Some(name.to_string());
    o._lock = Some(lock);
    Ok(o)
}

impl Opened {
    /// The manifest's bytes as stored, for copying it elsewhere verbatim.
    pub fn manifest_bytes(&self) -> Result<Vec<u8>> {
        self.layout.raw_blob(&self.mdesc)
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_like_skopeo() {
        let p = |s| Source::parse(s).unwrap();
        assert_eq!(
            p("oci:/a/b:v1"),
            Source::OciDir {
                dir: "/a/b".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            p("oci-archive:x.tar"),
            Source::OciArchive {
                file: "x.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            p("docker-archive:x.tar:busybox:latest"),
            Source::DockerArchive {
                file: "x.tar".into(),
                name: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            p("docker://127.0.0.1:5000/a:b"),
            Source::Registry("127.0.0.1:5000/a:b".into())
        );
        assert_eq!(
            p("localhost:5000/a:b"),
            Source::Name("localhost:5000/a:b".into())
        );
        assert_eq!(p("busybox"), Source::Name("busybox".into()));
        assert!(Source::parse("oci:").is_err());
        assert!(Source::parse("dir:/x").is_err());
        assert!(Source::parse("").is_err());
    }
}

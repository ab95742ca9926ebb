//! hoist: images to runtime bundles.
//!
//! This first slice reads offline sources only: an OCI image layout
//! directory or an archive of one.

pub mod auth;
pub mod config;
pub mod layer;
pub mod layout;
pub mod reference;
pub mod registry;

use crate::error::{Error, IoContext, Result};
use config::Overrides;
use layout::{Layout, Source};
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A directory removed when dropped, unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn new(next_to: &Path, tag: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut name = next_to.as_os_str().to_os_string();
        name.push(format!(".{tag}-{}-{nanos:08x}", std::process::id()));
        let path = PathBuf::from(name);
        fs::create_dir(&path).at(&path)?;
        Ok(TempDir { path, keep: false })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `hoist unpack SOURCE BUNDLE`: the image's layers into BUNDLE/rootfs and
/// its config into BUNDLE/config.json. The bundle appears whole or not at all.
pub fn unpack(source: &str, bundle: &Path, ov: &Overrides) -> Result<()> {
    let src = Source::parse(source)?;
    let bundle = if bundle.is_absolute() {
        bundle.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(bundle)
    };
    let bundle: PathBuf = bundle.components().collect();
    if bundle.file_name().is_none() {
        return Err(Error::Other(format!(
            "{}: not a bundle directory name",
            bundle.display()
        )));
    }
    match fs::read_dir(&bundle).map(|mut d| d.next().is_none()) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Config {
                path: bundle,
                msg: "already exists and is not empty".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&bundle, e)),
    }

    let work = TempDir::new(&bundle, "tmp")?;
    let mut _extracted = None;
    let (dir, tag) = match &src {
        Source::OciDir { dir, tag } => (dir.clone(), tag.clone()),
        Source::OciArchive { file, tag } => {
            let x = TempDir::new(&bundle, "src")?;
            layout::extract_archive(file, &x.path)?;
            let d = x.path.clone();
            _extracted = Some(x);
            (d, tag.clone())
        }
    };
    let layout = Layout::open(&dir)?;
    let (mdesc, manifest) = layout
        .resolve(tag.as_deref())
        .map_err(|e| Error::Other(format!("{source}: {e}")))?;
    if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
        return Err(Error::Unsupported(format!(
            "{source}: manifest {}: config media type \"{}\"",
            mdesc.digest, manifest.config.media_type
        )));
    }
    let image: serde_json::Value = layout.json_blob(&manifest.config)?;

    let rootfs = work.path.join("rootfs");
    fs::create_dir(&rootfs).at(&rootfs)?;
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755)).at(&rootfs)?;
    let root = fs::File::open(&rootfs).at(&rootfs)?;
    for desc in &manifest.layers {
        let ctx = |e: Error| Error::Other(format!("{source}: layer {}: {e}", desc.digest));
        let c = layer::Compression::from_media_type(&desc.media_type).map_err(ctx)?;
        let blob = layout.blob(desc).map_err(ctx)?;
        let blob = layer::apply_layer(root.as_fd(), blob, c).map_err(ctx)?;
        blob.finish().map_err(ctx)?;
    }

    let spec = config::runtime_config(&image, root.as_fd(), ov)
        .map_err(|e| Error::Other(format!("{source}: {e}")))?;
    let text = serde_json::to_string_pretty(&spec)
        .map_err(|e| Error::Other(format!("serializing config.json: {e}")))?;
    let cfg_path = work.path.join("config.json");
    fs::write(&cfg_path, text).at(&cfg_path)?;
    drop(root);

    // An empty directory at BUNDLE is replaced; anything else makes rename fail.
    let mut work = work;
    fs::rename(&work.path, &bundle).at(&bundle)?;
    work.keep = true;
    Ok(())
}

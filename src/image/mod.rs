//! hoist: images to runtime bundles.
//!
//! An image is opened from wherever it lives (source.rs: an OCI layout or
//! archive, a docker-archive, the store, a registry through pull.rs), its
//! layers are applied to a rootfs (layer.rs) or mounted as an overlay of
//! layers unpacked once in the store (overlay.rs), and its config becomes
//! the bundle's config.json (config.rs).

pub mod auth;
pub mod commands;
pub mod config;
pub mod docker_archive;
pub mod layer;
pub mod layout;
pub mod overlay;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod source;
pub mod store;

use crate::error::{Error, IoContext, Result};
use config::Overrides;
use pull::PullOptions;
use source::Source;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A directory removed when dropped, unless kept.
pub(crate) struct TempDir {
    pub path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(next_to: &Path, tag: &str) -> Result<TempDir> {
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

/// How `hoist unpack` makes a bundle.
#[derive(Clone, Default)]
pub struct UnpackOptions {
    pub overrides: Overrides,
    pub pull: PullOptions,
    /// The store directory (registry images and `--overlay` layers).
    pub store: PathBuf,
    /// Mount the rootfs as an overlay of layers cached in the store.
    pub overlay: bool,
}

/// An absolute, normalised bundle path that is absent or an empty directory.
fn bundle_path(bundle: &Path) -> Result<PathBuf> {
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
        Ok(true) => Ok(bundle),
        Ok(false) => Err(Error::Config {
            path: bundle,
            msg: "already exists and is not empty".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(bundle),
        Err(e) => Err(Error::io(&bundle, e)),
    }
}

/// The config's diff_ids, one per layer.
fn diff_ids(image: &serde_json::Value, layers: usize, what: &str) -> Result<Vec<String>> {
    let ids: Vec<String> = image["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if ids.len() != layers {
        return Err(Error::Other(format!(
            "{what}: the config lists {} diff_ids for {layers} layers",
            ids.len()
        )));
    }
    Ok(ids)
}

/// `hoist unpack SOURCE BUNDLE`: the image's layers into BUNDLE/rootfs and
/// its config into BUNDLE/config.json. The bundle appears whole or not at
/// all; with `overlay`, BUNDLE/rootfs is a mount (see [`overlay`]).
pub fn unpack(source: &str, bundle: &Path, o: &UnpackOptions) -> Result<()> {
    let src = Source::parse(source)?;
    let bundle = bundle_path(bundle)?;
    let img = src.open(&o.store, &bundle, &o.pull)?;
    let manifest = &img.manifest;
    if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
        return Err(Error::Unsupported(format!(
            "{source}: manifest {}: config media type \"{}\"",
            img.mdesc.digest, manifest.config.media_type
        )));
    }
    let image: serde_json::Value = img.layout.json_blob(&manifest.config)?;
    let diff_ids = diff_ids(&image, manifest.layers.len(), source)?;

    let rootless = !nix::unistd::geteuid().is_root();
    if rootless && o.overlay {
        return Err(Error::Other(
            "--overlay needs root: an unprivileged user cannot mount an overlay here \
             (unpack without --overlay)"
                .into(),
        ));
    }
    // Unprivileged with subordinate ids: the layers go in as root of a user
    // namespace mapping them, so file owners land in the user's range.
    let maps = if rootless {
        crate::linux::idmap::subordinate_maps()?
    } else {
        None
    };
    let work = TempDir::new(&bundle, "tmp")?;
    let rootfs = work.path.join("rootfs");
    let mut mounted = false;
    let built = (|| -> Result<()> {
        if o.overlay {
            let store = store::Store::open(&o.store)?;
            let _lock = store.lock_shared()?;
            let dirs = overlay::ensure_layers(&store, &img.layout, manifest, &diff_ids, source)?;
            overlay::mount_bundle(&dirs, &work.path)?;
            mounted = !dirs.is_empty();
        } else {
            fs::create_dir(&rootfs).at(&rootfs)?;
            let progress = progress::Progress::bars_only(o.pull.quiet);
            let apply = || -> Result<()> {
                let root = fs::File::open(&rootfs).at(&rootfs)?;
                for (desc, want) in manifest.layers.iter().zip(&diff_ids) {
                    let ctx =
                        |e: Error| Error::Other(format!("{source}: layer {}: {e}", desc.digest));
                    let c = layer::Compression::from_media_type(&desc.media_type).map_err(ctx)?;
                    let blob = progress::Counted {
                        inner: img.layout.blob(desc).map_err(ctx)?,
                        progress: &progress,
                        bar: progress.start_doing("layer", &desc.digest, desc.size, "unpacking"),
                    };
                    let (blob, diff_id) = layer::apply_layer(root.as_fd(), blob, c).map_err(ctx)?;
                    progress.finish(blob.bar, "unpacked");
                    blob.inner.finish().map_err(ctx)?;
                    if &diff_id != want {
                        return Err(ctx(Error::Other(format!(
                            "uncompressed content is {diff_id}, the config's diff_id is {want}"
                        ))));
                    }
                }
                Ok(())
            };
            match &maps {
                Some((uid, gid)) => {
                    crate::linux::idmap::run_in_userns(
                        uid,
                        gid,
                        nix::sched::CloneFlags::empty(),
                        || apply().map(|()| String::new()),
                    )?;
                }
                None => apply()?,
            }
        }
        fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755)).at(&rootfs)?;
        let root = fs::File::open(&rootfs).at(&rootfs)?;
        let mut spec = config::runtime_config(&image, root.as_fd(), &o.overrides)
            .map_err(|e| Error::Other(format!("{source}: {e}")))?;
        if rootless {
            rootless_config(&mut spec, maps.as_ref());
        }
        let text = serde_json::to_string_pretty(&spec)
            .map_err(|e| Error::Other(format!("serializing config.json: {e}")))?;
        let cfg_path = work.path.join("config.json");
        fs::write(&cfg_path, text).at(&cfg_path)?;
        Ok(())
    })();
    let done = built.and_then(|()| {
        // An empty directory at BUNDLE is replaced; anything else makes
        // rename fail. A mount inside the directory moves with it.
        fs::rename(&work.path, &bundle).at(&bundle)
    });
    match done {
        Ok(()) => {
            let mut work = work;
            work.keep = true;
            Ok(())
        }
        Err(e) => {
            if mounted {
                let _ = overlay::unmount_bundle(&work.path);
            }
            if let Some((uid, gid)) = &maps {
                // Files of the user's subordinate ids go as they came.
                let _ = crate::linux::idmap::run_in_userns(
                    uid,
                    gid,
                    nix::sched::CloneFlags::empty(),
                    || {
                        fs::remove_dir_all(&work.path)
                            .at(&work.path)
                            .map(|()| String::new())
                    },
                );
            }
            Err(e)
        }
    }
}

/// A bundle an unprivileged user runs: `brig spec --rootless`'s changes,
/// with the ids the rootfs was unpacked with.
fn rootless_config(
    spec: &mut serde_json::Value,
    maps: Option<&(
        Vec<oci_spec::runtime::LinuxIdMapping>,
        Vec<oci_spec::runtime::LinuxIdMapping>,
    )>,
) {
    crate::spec::to_rootless(
        spec,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if let Some((uid, gid)) = maps {
        spec["linux"]["uidMappings"] = serde_json::to_value(uid).unwrap_or_default();
        spec["linux"]["gidMappings"] = serde_json::to_value(gid).unwrap_or_default();
    }
}

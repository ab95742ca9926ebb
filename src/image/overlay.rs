//! `hoist unpack --overlay`: each layer is unpacked once into the store, and
//! a bundle's rootfs is an overlay mount of those directories with an upper
//! directory of its own, so a second bundle of an image costs a mount.
//!
//! A layer directory is keyed by the layer's chain id (its diff_id and
//! those of every layer under it), as containerd keys its snapshots: how a
//! layer lands depends on what it lands on (a path through a symlink of an
//! earlier layer, a deletion that needs a whiteout). It is made by applying
//! the layer tar onto an overlay of the layers below it with an empty upper
//! directory: the kernel itself records deletions as overlay whiteouts and
//! replaced directories as opaque, and the upper directory becomes the
//! layer's directory.

use super::layer::{self, Compression};
use super::layout::{Layout, Manifest};
use super::store::Store;
use crate::error::{Error, IoContext, Result, SysContext};
use nix::mount::{MntFlags, MsFlags};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(id);
    }
    out
}

/// The directory layer `chain_id` is (or will be) unpacked in.
pub fn layer_dir(store: &Store, chain_id: &str) -> PathBuf {
    let hex = chain_id.strip_prefix("sha256:").unwrap_or(chain_id);
    store.dir.join("layers/sha256").join(hex)
}

pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    for p in &lower {
        if p.contains([',', ':']) {
            return Err(Error::Other(format!(
                "{p}: a layer path with ',' or ':' cannot be an overlay lower directory"
            )));
        }
    }
    // No metacopy or redirects: an upper directory must hold whole files
    // and real directories, to be committed as a layer or stacked as one.
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if crate::linux::idmap::in_user_namespace() {
        // trusted.* xattrs are the host root's: in a user namespace overlay
        // keeps its whiteout and opaque marks in user.overlay.* instead,
        // and then has metacopy and redirects off unless told otherwise
        // (saying "off" is refused).
        data.push_str(",userxattr");
    } else {
        data.push_str(",metacopy=off,redirect_dir=off");
    }
    // The kernel takes one page of mount options.
    if data.len() >= 4096 {
        return Err(Error::Other(format!(
            "{} layers make overlay options longer than a page",
            lowers.len()
        )));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .sys(|| format!("mounting overlay on {}", target.display()))
}

/// Unpacks the layers of `manifest` the store does not have yet; returns
/// every layer's directory, bottom first.
pub fn ensure_layers(
    store: &Store,
    layout: &Layout,
    manifest: &Manifest,
    diff_ids: &[String],
    name: &str,
) -> Result<Vec<PathBuf>> {
    let chains = chain_ids(diff_ids);
    let mut dirs: Vec<PathBuf> = Vec::with_capacity(chains.len());
    for ((desc, chain), want) in manifest.layers.iter().zip(&chains).zip(diff_ids) {
        let dir = layer_dir(store, chain);
        if !dir.is_dir() {
            let ctx = |e: Error| Error::Other(format!("{name}: layer {}: {e}", desc.digest));
            let c = Compression::from_media_type(&desc.media_type).map_err(ctx)?;
            let tmp = store.tmp_path("layer");
            let r = build_layer(layout, desc, c, want, &dirs, &tmp, &dir).map_err(ctx);
            let _ = fs::remove_dir_all(&tmp);
            r?;
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

fn build_layer(
    layout: &Layout,
    desc: &super::layout::Descriptor,
    c: Compression,
    want: &str,
    lowers: &[PathBuf],
    tmp: &Path,
    dest: &Path,
) -> Result<()> {
    let upper = tmp.join("upper");
    fs::create_dir_all(&upper).at(&upper)?;
    let target = if lowers.is_empty() {
        upper.clone()
    } else {
        let work = tmp.join("work");
        let merged = tmp.join("merged");
        fs::create_dir(&work).at(&work)?;
        fs::create_dir(&merged).at(&merged)?;
        mount_overlay(lowers, &upper, &work, &merged)?;
        merged
    };
    let applied = (|| {
        let root = fs::File::open(&target).at(&target)?;
        let blob = layout.blob(desc)?;
        let (blob, diff_id) = layer::apply_layer(root.as_fd(), blob, c)?;
        blob.finish()?;
        if diff_id != want {
            return Err(Error::Other(format!(
                "uncompressed content is {diff_id}, the config's diff_id is {want}"
            )));
        }
        Ok(())
    })();
    if target != upper {
        nix::mount::umount2(&target, MntFlags::empty())
            .sys(|| format!("unmounting {}", target.display()))?;
    }
    applied?;
    match fs::rename(&upper, dest) {
        Ok(()) => Ok(()),
        // Another hoist made the same layer meanwhile: theirs is as good.
        Err(_) if dest.is_dir() => Ok(()),
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Mounts the overlay rootfs of a bundle at `bundle/rootfs`, with its upper
/// and work directories in `bundle/.hoist`.
pub fn mount_bundle(layers: &[PathBuf], bundle: &Path) -> Result<()> {
    let state = bundle.join(".hoist");
    let (upper, work) = (state.join("upper"), state.join("work"));
    for d in [&upper, &work] {
        fs::create_dir_all(d).at(d)?;
    }
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).at(&rootfs)?;
    if layers.is_empty() {
        return Ok(());
    }
    mount_overlay(layers, &upper, &work, &rootfs)
}

/// `hoist unmount BUNDLE`: takes the overlay off BUNDLE/rootfs and removes
/// its upper and work directories (BUNDLE/.hoist). A rootfs that is not
/// mounted is said to be so, after its leftover .hoist is removed.
pub fn unmount_bundle(bundle: &Path) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    let state = bundle.join(".hoist");
    let real = fs::canonicalize(&rootfs).unwrap_or_else(|_| rootfs.clone());
    let mounted = crate::linux::mountinfo::read_self()
        .iter()
        .any(|m| m.mount_point == real);
    if !mounted {
        let leftover = state.exists();
        if leftover {
            fs::remove_dir_all(&state).at(&state)?;
        }
        return Err(Error::Other(format!(
            "{}: not mounted (not a bundle of `unpack --overlay`, or already unmounted){}",
            rootfs.display(),
            if leftover {
                "; removed its leftover .hoist"
            } else {
                ""
            }
        )));
    }
    nix::mount::umount2(&rootfs, MntFlags::empty())
        .sys(|| format!("unmounting {}", rootfs.display()))?;
    match fs::remove_dir_all(&state) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&state, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        let want = hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(ids[1], format!("sha256:{want}"));
    }
}

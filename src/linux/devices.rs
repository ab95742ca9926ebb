//! /dev inside the container: the default nodes, `linux.devices`, and the
//! standard symlinks.

use super::paths::{self, fd_path};
use crate::error::{Error, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets, as runc gives them.
pub fn default_nodes() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Other(format!(
                "device {}: type \"a\" is only valid in cgroup rules",
                d.path().display()
            )))
        }
    };
    if !d.path().is_absolute() {
        return Err(Error::Other(format!(
            "device {}: path must be absolute",
            d.path().display()
        )));
    }
    let number = |n: i64, what| {
        u64::try_from(n)
            .map_err(|_| Error::Other(format!("device {}: negative {what}", d.path().display())))
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: number(d.major(), "major")?,
        minor: number(d.minor(), "minor")?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates a node inside the root. In a user namespace mknod is not
/// allowed, so the host's node is bind-mounted onto an empty file instead.
pub fn create(root: BorrowedFd, node: &Node, in_userns: bool) -> Result<()> {
    let what = |e: &dyn std::fmt::Display| {
        Error::Other(format!("creating device {}: {e}", node.path.display()))
    };
    if in_userns {
        let target = paths::create_file_in_root(root, &node.path)?;
        return mount(
            Some(&node.path),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| what(&e));
    }
    let rel = paths::relative(&node.path);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(what(&"not a file path"));
    };
    let dir = paths::mkdir_all_in_root(root, parent, 0o755)?;
    let dir = paths::reopen(&dir, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| what(&e))?;
    let cname = CString::new(name.as_bytes()).map_err(|e| what(&e))?;
    // The spec: a file already there that is not the requested device is
    // an error; the same device is kept (and gets the mode and owner below).
    let existing = nix::sys::stat::fstatat(
        &dir,
        cname.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    match existing {
        Ok(st) => {
            let same = st.st_mode & libc::S_IFMT == node.kind.bits()
                && (node.kind == SFlag::S_IFIFO || st.st_rdev == makedev(node.major, node.minor));
            if !same {
                return Err(what(&"a different file already exists there"));
            }
        }
        Err(_) => mknodat(
            &dir,
            cname.as_c_str(),
            node.kind,
            Mode::from_bits_truncate(node.mode),
            makedev(node.major, node.minor),
        )
        .map_err(|e| what(&e))?,
    }
    // mknod is filtered by the umask; set the exact mode and owner afterwards.
    nix::sys::stat::fchmodat(
        &dir,
        cname.as_c_str(),
        Mode::from_bits_truncate(node.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| what(&e))?;
    nix::unistd::fchownat(
        &dir,
        cname.as_c_str(),
        Some(node.uid.into()),
        Some(node.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| what(&e))?;
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err} and /dev/ptmx, as every runtime makes them.
pub fn create_links(root: BorrowedFd, with_proc: bool) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if with_proc {
        links.push(("/proc/kcore", "core"));
    }
    let dev = paths::mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let dev = paths::reopen(&dev, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| Error::sys("opening /dev in rootfs", e))?;
    for (target, name) in links {
        let cname = CString::new(name).map_err(|e| Error::Other(e.to_string()))?;
        // ptmx may exist as a node in the rootfs; the symlink to the
        // container's own devpts instance must win.
        if name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                &dev,
                cname.as_c_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, &dev, cname.as_c_str()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

/// Bind-mounts a verified /dev/null of the host: it must be the 1:3 char
/// device, not something planted in its place.
pub fn verified_dev_null() -> Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open("/dev/null")
        .map_err(|e| Error::io("/dev/null", e))?;
    let meta = f.metadata().map_err(|e| Error::io("/dev/null", e))?;
    if !meta.file_type().is_char_device() || meta.rdev() != makedev(1, 3) {
        return Err(Error::Other("/dev/null is not the null device".into()));
    }
    Ok(f)
}

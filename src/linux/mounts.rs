//! The spec's `mounts`: option parsing and mounting one entry inside the rootfs.

use super::mountinfo;
use super::paths::{self, fd_path};
use crate::error::{Error, Result, SysContext};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Mount flags, propagation and filesystem data from fstab-style options.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// runc's `tmpcopyup`: seed a tmpfs with what the directory held.
    pub copy_up: bool,
    /// The recursive `r*` options, as mount_setattr(2) attributes to set
    /// and clear on the mount and every mount below it.
    pub rec_set: u64,
    pub rec_clr: u64,
}

// mount_setattr(2) attributes (linux/mount.h).
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// The recursive options (runc's and crun's names): (clear?, attribute).
fn recursive_option(opt: &str) -> Option<(bool, u64)> {
    let f = match opt {
        "rro" => (false, MOUNT_ATTR_RDONLY),
        "rrw" => (true, MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, MOUNT_ATTR_NOSUID),
        "rsuid" => (true, MOUNT_ATTR_NOSUID),
        "rnodev" => (false, MOUNT_ATTR_NODEV),
        "rdev" => (true, MOUNT_ATTR_NODEV),
        "rnoexec" => (false, MOUNT_ATTR_NOEXEC),
        "rexec" => (true, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (false, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (true, MOUNT_ATTR_RELATIME),
        "rnoatime" => (false, MOUNT_ATTR_NOATIME),
        "ratime" => (true, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (true, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    };
    Some(f)
}

/// Every recursive option name, for `features`.
pub const RECURSIVE_OPTIONS: [&str; 18] = [
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
];

fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    // (clear?, flag): options like `rw` clear a flag that `ro` sets.
    let f = match opt {
        "defaults" => (false, MsFlags::empty()),
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "suid" => (true, MsFlags::MS_NOSUID),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "dev" => (true, MsFlags::MS_NODEV),
        "nodev" => (false, MsFlags::MS_NODEV),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "atime" => (true, MsFlags::MS_NOATIME),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "bind" => (false, MsFlags::MS_BIND),
        "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "lazytime" => (false, MsFlags::MS_LAZYTIME),
        "nolazytime" => (true, MsFlags::MS_LAZYTIME),
        "silent" => (false, MsFlags::MS_SILENT),
        "loud" => (true, MsFlags::MS_SILENT),
        "nosymfollow" => (false, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (true, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    };
    Some(f)
}

pub fn propagation_flag(opt: &str) -> Option<MsFlags> {
    let f = match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    };
    Some(f)
}

/// Options for idmapped mounts, and `r` spellings of flags that have no
/// recursive form (`rsync`, `rbind` aside): refused loudly rather than
/// silently taken as filesystem data.
fn unsupported_option(opt: &str) -> bool {
    matches!(opt, "idmap" | "ridmap")
        || (opt.len() > 1
            && opt.starts_with('r')
            && flag_option(&opt[1..]).is_some()
            && recursive_option(opt).is_none()
            && !matches!(opt, "rw" | "rbind" | "relatime"))
}

pub fn parse_options(opts: &[String]) -> Result<Options> {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        copy_up: false,
        rec_set: 0,
        rec_clr: 0,
    };
    for opt in opts {
        if unsupported_option(opt) {
            return Err(Error::Unsupported(format!("mount option {opt:?}")));
        }
        if let Some((clear, attr)) = recursive_option(opt) {
            // The access-time attributes are one field, not bits: the
            // kernel takes one only with the whole field in attr_clr
            // (mount_setattr(2)), as runc passes them.
            if attr & MOUNT_ATTR_ATIME_MASK == attr {
                o.rec_clr |= MOUNT_ATTR_ATIME_MASK;
                o.rec_set &= !MOUNT_ATTR_ATIME_MASK;
                if !clear {
                    o.rec_set |= attr;
                }
            } else if clear {
                o.rec_set &= !attr;
                o.rec_clr |= attr;
            } else {
                o.rec_set |= attr;
                o.rec_clr &= !attr;
            }
        } else if let Some((clear, flag)) = flag_option(opt) {
            if clear {
                o.flags.remove(flag);
            } else {
                o.flags.insert(flag);
            }
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if opt == "tmpcopyup" {
            o.copy_up = true;
        } else {
            o.data.push(opt.clone());
        }
    }
    Ok(o)
}

/// Everything init needs to mount the spec's entries into one rootfs.
pub struct Mounter<'a> {
    pub root: BorrowedFd<'a>,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// In a new user namespace: nodes cannot be made, flags of bind mounts are locked.
    pub in_userns: bool,
    /// In a cgroup namespace: cgroupfs can be mounted afresh, rooted at our cgroup.
    pub cgroupns: bool,
    /// The host's mount table as init saw it before mounting anything.
    pub host_mounts: &'a [mountinfo::MountInfo],
    /// The container's cgroup (relative to each hierarchy root), when brig
    /// manages it: init may not have been moved there yet when it mounts.
    pub cgroup_path: Option<&'a Path>,
    /// linux.mountLabel: the SELinux context of the filesystems init mounts.
    pub mount_label: Option<&'a str>,
}

/// A bind source the runtime copied for init (see `bind_sources`).
pub type Tree<'a> = Option<&'a OwnedFd>;

/// Filesystems that take an SELinux `context=` option (runc's list).
fn takes_context(typ: &str) -> bool {
    !matches!(typ, "proc" | "sysfs" | "cgroup" | "cgroup2" | "bind")
}

impl Mounter<'_> {
    fn err(m: &Mount, e: impl std::fmt::Display) -> Error {
        Error::Other(format!(
            "mounting {} on {}: {e}",
            m.source()
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_default(),
            m.destination().display()
        ))
    }

    /// Mounts `m`; a bind from `tree`, when the runtime copied its source.
    pub fn mount_entry(&self, m: &Mount, tree: Tree) -> Result<()> {
        let opts =
            parse_options(m.options().as_deref().unwrap_or(&[])).map_err(|e| Self::err(m, e))?;
        let typ = m.typ().as_deref().unwrap_or("");
        let is_bind = typ == "bind" || opts.flags.contains(MsFlags::MS_BIND);
        if is_bind {
            self.bind(m, &opts, tree)?;
        } else if typ == "cgroup" || typ == "cgroup2" {
            self.cgroup(m, &opts)?;
        } else {
            self.filesystem(m, typ, &opts)?;
        }
        if opts.rec_set | opts.rec_clr != 0 {
            // Last, over the whole tree now in place (an rbind's submounts,
            // a tmpcopyup's content), as runc does.
            let placed = self.reopen_dest(m)?;
            mount_setattr(&placed, opts.rec_set, opts.rec_clr).map_err(|e| {
                let why = if e == nix::Error::ENOSYS {
                    "recursive mount options need mount_setattr(2), Linux 5.12 or later".into()
                } else {
                    format!("applying recursive options: {e}")
                };
                Self::err(m, why)
            })?;
        }
        Ok(())
    }

    fn dest<'m>(&self, m: &'m Mount) -> &'m Path {
        m.destination()
    }

    /// Resolves `dest` to a directory to mount on (made if missing).
    fn target_dir(&self, dest: &Path) -> Result<OwnedFd> {
        let target = paths::mkdir_all_in_root(self.root, dest, 0o755)?;
        self.refuse_symlink_onto_pseudo_fs(dest, &target)?;
        Ok(target)
    }

    /// A symlink in the rootfs can lead a destination onto the container's
    /// procfs or sysfs, below the paths that readonlyPaths and maskedPaths
    /// protect later (a tmpfs at /evil -> /proc/sys/kernel stays writable
    /// under a read-only /proc/sys). Those filesystems take only mounts the
    /// spec names there itself, as runc 1.2 and later allow: the destination
    /// must reach the same object without following any symlink. Only the
    /// statfs is paid by mounts elsewhere.
    fn refuse_symlink_onto_pseudo_fs(&self, dest: &Path, target: &OwnedFd) -> Result<()> {
        use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
        let fs_type = fstatfs(target)
            .sys(|| format!("statfs of mount destination {}", dest.display()))?
            .filesystem_type();
        let (fs, top) = if fs_type == PROC_SUPER_MAGIC {
            ("procfs", "/proc")
        } else if fs_type == SYSFS_MAGIC {
            ("sysfs", "/sys")
        } else {
            return Ok(());
        };
        let named = paths::handle_in_root_no_symlinks(self.root, dest);
        if named.is_ok_and(|n| same_object(&n, target)) {
            return Ok(());
        }
        Err(Error::Other(format!(
            "mount destination {} resolves through a symlink onto {fs}; name the path under {top} itself",
            dest.display()
        )))
    }

    /// The directory a procfs or sysfs goes on, which must be an ordinary
    /// directory, never a symlink: a rootfs whose /proc leads elsewhere
    /// would leave the container's procfs where its masks and read-only
    /// paths do not reach (CVE-2019-19921), so it is refused as runc does.
    /// The usual lookup, with the last component not followed: no extra
    /// syscall when the directory is there.
    fn pseudo_fs_dir(&self, m: &Mount, typ: &str) -> Result<OwnedFd> {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        match paths::open_in_root(self.root, self.dest(m), flags) {
            Ok(dir) => {
                self.refuse_symlink_onto_pseudo_fs(self.dest(m), &dir)?;
                Ok(dir)
            }
            // A symlink (or a file) where the directory should be.
            Err(nix::Error::ENOTDIR) => Err(Self::err(
                m,
                format!("filesystem {typ:?} must be mounted on ordinary directory"),
            )),
            Err(_) => self.target_dir(self.dest(m)),
        }
    }

    /// Re-resolves the destination, now naming the mount just placed there.
    fn reopen_dest(&self, m: &Mount) -> Result<OwnedFd> {
        paths::handle_in_root(self.root, self.dest(m)).map_err(|e| Self::err(m, e))
    }

    fn bind(&self, m: &Mount, opts: &Options, tree: Tree) -> Result<()> {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| Self::err(m, "bind mount needs a source"))?;
        let src: PathBuf = if src.is_absolute() {
            src.clone()
        } else {
            self.bundle.join(src)
        };
        let is_dir = match tree {
            Some(t) => nix::sys::stat::fstat(t)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .map_err(|e| Self::err(m, e))?,
            None => std::fs::metadata(&src)
                .map_err(|e| Self::err(m, e))?
                .is_dir(),
        };
        let target = if is_dir {
            self.target_dir(self.dest(m))?
        } else {
            let file = paths::create_file_in_root(self.root, self.dest(m))?;
            self.refuse_symlink_onto_pseudo_fs(self.dest(m), &file)?;
            file
        };
        match tree {
            Some(t) => super::bind_sources::move_mount(t, &target).map_err(|e| Self::err(m, e))?,
            None => {
                let bind = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
                mount(
                    Some(&src),
                    fd_path(&target).as_str(),
                    None::<&str>,
                    bind,
                    None::<&str>,
                )
                .map_err(|e| Self::err(m, e))?;
            }
        }
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        let placed = self.reopen_dest(m)?;
        if !extra.is_empty() {
            remount_bind(&placed, extra, self.in_userns).map_err(|e| Self::err(m, e))?;
        }
        apply_propagation(&placed, &opts.propagation).map_err(|e| Self::err(m, e))
    }

    fn filesystem(&self, m: &Mount, typ: &str, opts: &Options) -> Result<()> {
        let target = if matches!(typ, "proc" | "sysfs") {
            self.pseudo_fs_dir(m, typ)?
        } else {
            self.target_dir(self.dest(m))?
        };
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let mut data = opts.data.join(",");
        // A tmpfs takes the mode of the directory it covers, as runc's
        // does, unless `mode=` says otherwise (tmpfs's own default is 1777).
        if typ == "tmpfs" && !opts.data.iter().any(|d| d.starts_with("mode=")) {
            let st = nix::sys::stat::fstat(&target).map_err(|e| Self::err(m, e))?;
            let mode = format!("mode={:o}", st.st_mode & 0o7777);
            data = if data.is_empty() {
                mode
            } else {
                format!("{mode},{data}")
            };
        }
        if let Some(label) = self.mount_label.filter(|_| takes_context(typ)) {
            if !data.is_empty() {
                data.push(',');
            }
            data.push_str(&format!("context=\"{label}\""));
        }
        let seed = if opts.copy_up && typ == "tmpfs" {
            Some(snapshot_dir(&target)?)
        } else {
            None
        };
        let flags = opts.flags - MsFlags::MS_REMOUNT;
        let data = (!data.is_empty()).then_some(data.as_str());
        let mounted = mount(
            Some(&src),
            fd_path(&target).as_str(),
            Some(typ),
            flags,
            data,
        );
        match mounted {
            // sysfs belongs to the network namespace's owner: a user
            // namespace sharing the host's network gets the host's /sys
            // bound instead, as runc does.
            Err(nix::Error::EPERM) if typ == "sysfs" && self.in_userns => {
                mount(
                    Some("/sys"),
                    fd_path(&target).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| Self::err(m, e))?;
                let placed = self.reopen_dest(m)?;
                let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
                if !extra.is_empty() {
                    remount_bind(&placed, extra, true).map_err(|e| Self::err(m, e))?;
                }
                return apply_propagation(&placed, &opts.propagation).map_err(|e| Self::err(m, e));
            }
            other => other.map_err(|e| Self::err(m, e))?,
        }
        let placed = self.reopen_dest(m)?;
        if let Some(seed) = seed {
            let owner = |key: &str| !opts.data.iter().any(|d| d.starts_with(key));
            copy_up(&seed, &placed, owner("uid="), owner("gid="))
                .map_err(|e| Self::err(m, format!("tmpcopyup: {e}")))?;
        }
        apply_propagation(&placed, &opts.propagation).map_err(|e| Self::err(m, e))
    }

    /// cgroup mounts mirror the host's layout: cgroup2 alone, or a tmpfs of
    /// v1 hierarchies (plus `unified` on a hybrid host).
    fn cgroup(&self, m: &Mount, opts: &Options) -> Result<()> {
        let target = self.target_dir(self.dest(m))?;
        let host = self.host_mounts;
        // Our own cgroups matter only when brig does not manage the container's.
        let own = match self.cgroup_path {
            Some(_) => String::new(),
            None => std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        };
        let flags = opts.flags - MsFlags::MS_REMOUNT;
        let v2_only = host
            .iter()
            .find(|i| i.mount_point == Path::new("/sys/fs/cgroup") && i.fs_type == "cgroup2");
        if let Some(h) = v2_only {
            self.hierarchy(m, &target, h, &own, flags)?;
            return self.cgroup_flags(m, flags, &[self.dest(m).to_path_buf()]);
        }
        let rw = flags - MsFlags::MS_RDONLY;
        let tpath = fd_path(&target);
        mount(
            Some("tmpfs"),
            tpath.as_str(),
            Some("tmpfs"),
            rw,
            Some("mode=755"),
        )
        .map_err(|e| Self::err(m, e))?;
        let mut binds = Vec::new();
        for h in host
            .iter()
            .filter(|i| i.mount_point.parent() == Some(Path::new("/sys/fs/cgroup")))
            .filter(|i| i.fs_type == "cgroup" || i.fs_type == "cgroup2")
        {
            let Some(name) = h.mount_point.file_name() else {
                continue;
            };
            let dest = self.dest(m).join(name);
            let dir = self.target_dir(&dest)?;
            self.hierarchy(m, &dir, h, &own, flags)?;
            binds.push(dest);
        }
        self.cgroup_flags(m, flags, &binds)
    }

    /// One hierarchy: a fresh mount inside a cgroup namespace (whose root is
    /// our cgroup); otherwise a bind of our own cgroup directory, so the
    /// container never sees the host's whole tree.
    fn hierarchy(
        &self,
        m: &Mount,
        dir: &OwnedFd,
        h: &mountinfo::MountInfo,
        own: &str,
        flags: MsFlags,
    ) -> Result<()> {
        let dpath = fd_path(dir);
        if self.cgroupns {
            let data = cgroup::v1_options(&h.super_options);
            let data = (h.fs_type == "cgroup").then_some(data.as_str());
            return mount(
                Some(h.fs_type.as_str()),
                dpath.as_str(),
                Some(h.fs_type.as_str()),
                flags,
                data,
            )
            .map_err(|e| Self::err(m, e));
        }
        let rel = match self.cgroup_path {
            Some(p) => p.to_string_lossy().into_owned(),
            None => cgroup::own_path(own, h).unwrap_or_default(),
        };
        let src = h.mount_point.join(rel.trim_start_matches('/'));
        mount(
            Some(&src),
            dpath.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Self::err(m, e))?;
        Ok(())
    }

    /// The flags of a cgroup mount, over its whole tree at once: one
    /// mount_setattr(2) instead of a remount per hierarchy. Kernels without
    /// it get the remounts.
    fn cgroup_flags(&self, m: &Mount, flags: MsFlags, binds: &[PathBuf]) -> Result<()> {
        let placed = self.reopen_dest(m)?;
        if set_mount_attr(&placed, flags).is_ok() {
            return Ok(());
        }
        let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        for dest in binds {
            let h = paths::handle_in_root(self.root, dest).map_err(|e| Self::err(m, e))?;
            remount_bind(&h, extra, self.in_userns).map_err(|e| Self::err(m, e))?;
        }
        if flags.contains(MsFlags::MS_RDONLY) && binds.iter().all(|b| b != self.dest(m)) {
            let remount = (flags - MsFlags::MS_RDONLY) | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(
                None::<&str>,
                fd_path(&placed).as_str(),
                None::<&str>,
                remount,
                Some("mode=755"),
            )
            .map_err(|e| Self::err(m, e))?;
        }
        Ok(())
    }
}

/// Whether two handles name the same file.
fn same_object(a: &OwnedFd, b: &OwnedFd) -> bool {
    use nix::sys::stat::fstat;
    match (fstat(a), fstat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// The kernel's struct mount_attr, for mount_setattr(2).
#[repr(C)]
pub(crate) struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// mount_setattr(2) with AT_RECURSIVE: ro/nosuid/nodev/noexec on a mount
/// and everything below it.
pub(crate) fn set_mount_attr(target: &OwnedFd, flags: MsFlags) -> nix::Result<()> {
    let mut set = 0u64;
    for (ms, attr) in [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ] {
        if flags.contains(ms) {
            set |= attr;
        }
    }
    if set == 0 {
        return Ok(());
    }
    mount_setattr(target, set, 0)
}

/// mount_setattr(2) with AT_RECURSIVE: sets and clears mount attributes on
/// the mount under `target` and every mount below it.
fn mount_setattr(target: &OwnedFd, set: u64, clr: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: mount_setattr on an fd we own, an empty path with AT_EMPTY_PATH,
    // and a fully initialised mount_attr of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(target),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Reading cgroup hierarchies as the host mounted them.
mod cgroup {
    use super::mountinfo::MountInfo;

    /// The mount options of a v1 hierarchy that name its controllers.
    pub fn v1_options(super_options: &str) -> String {
        controllers(super_options).join(",")
    }

    fn controllers(super_options: &str) -> Vec<String> {
        crate::cgroups::controllers_of(super_options)
    }

    /// Our cgroup in hierarchy `h`, from /proc/self/cgroup.
    pub fn own_path(own: &str, h: &MountInfo) -> Option<String> {
        let mut want = controllers(&h.super_options);
        want.sort_unstable();
        own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let mut have: Vec<String> = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            have.sort_unstable();
            let matches = if h.fs_type == "cgroup2" {
                ctrls.is_empty()
            } else {
                have == want
            };
            matches.then(|| path.to_string())
        })
    }
}

/// Changes the flags of a bind mount. Inside a user namespace the kernel
/// refuses to drop flags the outer mount has locked, so they are kept.
pub fn remount_bind(target: &OwnedFd, flags: MsFlags, keep_locked: bool) -> nix::Result<()> {
    let mut flags = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    if keep_locked {
        flags |= locked_flags(target);
    }
    let path = fd_path(target);
    mount(
        None::<&str>,
        path.as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
}

/// The flags of the mount under `target` that an unprivileged remount must keep.
pub fn locked_flags(target: &OwnedFd) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::fstatvfs(target.as_fd()) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let mut f = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if st.flags().contains(s) {
            f |= m;
        }
    }
    f
}

pub fn apply_propagation(target: &OwnedFd, props: &[MsFlags]) -> nix::Result<()> {
    let path = fd_path(target);
    for p in props {
        mount(None::<&str>, path.as_str(), None::<&str>, *p, None::<&str>)?;
    }
    Ok(())
}

/// tmpcopyup: bind the original directory aside so its content can be
/// copied onto the tmpfs that hides it.
fn snapshot_dir(dir: &OwnedFd) -> Result<OwnedFd> {
    paths::reopen(dir, libc::O_RDONLY | libc::O_DIRECTORY).sys(|| "opening tmpcopyup source".into())
}

/// tmpcopyup, in-process: the directory's content, with its owners, modes,
/// times, links, nodes and hard links, onto the tmpfs that now hides it.
/// The tmpfs itself keeps the mode it was mounted with (podman's
/// `--tmpfs /x:mode=1777`) and takes the directory's owner unless
/// `uid=`/`gid=` named one. Extended attributes are not copied.
fn copy_up(src: &OwnedFd, dst: &OwnedFd, uid: bool, gid: bool) -> std::io::Result<()> {
    let (from, to) = (PathBuf::from(fd_path(src)), PathBuf::from(fd_path(dst)));
    let top = std::fs::metadata(&from)?;
    let mut links = std::collections::HashMap::new();
    copy_tree(&from, &to, &mut links)?;
    use std::os::unix::fs::MetadataExt;
    let owner = |want: bool, id: u32| want.then_some(id);
    std::os::unix::fs::chown(&to, owner(uid, top.uid()), owner(gid, top.gid()))
}

/// Copies what `from` holds into the directory `to`. `links` maps the
/// (device, inode) of files with several names to their first copy.
fn copy_tree(
    from: &Path,
    to: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if !ft.is_dir() && meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                std::fs::hard_link(first, &dst)?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), dst.clone());
        }
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst, links)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            // fifos, sockets and device nodes.
            let kind = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            let perm = nix::sys::stat::Mode::from_bits_truncate(meta.mode());
            nix::sys::stat::mknod(&dst, kind, perm, meta.rdev())?;
        }
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
        if !ft.is_symlink() {
            // After the chown, which clears setuid and setgid bits.
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        let times = [
            nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
            nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        ];
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &dst,
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Result<Options> {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = opts(&["nosuid", "ro", "mode=755", "size=64k", "rslave", "rbind"]).unwrap();
        assert!(o.flags.contains(
            MsFlags::MS_NOSUID | MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC
        ));
        assert_eq!(o.data, vec!["mode=755", "size=64k"]);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_clear_earlier_ones() {
        let o = opts(&["ro", "rw", "noexec", "exec"]).unwrap();
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.flags.contains(MsFlags::MS_NOEXEC));
    }

    #[test]
    fn recursive_attributes_become_mount_setattr_bits() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnoexec", "rexec"]).unwrap();
        assert_eq!(o.rec_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(o.rec_clr, MOUNT_ATTR_NOEXEC);
        assert!(o.data.is_empty(), "{:?}", o.data);
        // The access time is one field: the last option wins, and the
        // whole field is cleared as the kernel requires.
        let o = opts(&["rstrictatime", "rnoatime"]).unwrap();
        assert_eq!(o.rec_set, MOUNT_ATTR_NOATIME);
        assert_eq!(o.rec_clr, MOUNT_ATTR_ATIME_MASK);
        let o = opts(&["rro", "rrw"]).unwrap();
        assert_eq!((o.rec_set, o.rec_clr), (0, MOUNT_ATTR_RDONLY));
        for name in RECURSIVE_OPTIONS {
            assert!(recursive_option(name).is_some(), "{name}");
        }
    }

    #[test]
    fn idmap_and_unknown_recursive_flags_are_refused_not_dropped() {
        let e = opts(&["idmap"]).unwrap_err().to_string();
        assert!(e.contains("idmap"), "{e}");
        assert!(opts(&["rsync"]).is_err());
        assert!(opts(&["rw", "rbind", "relatime", "rprivate"]).is_ok());
    }
}

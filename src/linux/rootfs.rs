//! Building the container's root: propagation, the spec's mounts, /dev,
//! masked and read-only paths, then pivot_root.

use super::devices;
use super::mountinfo;
use super::mounts::{self, Mounter};
use super::paths::{self, fd_path};
use super::sysctl;
use crate::error::{Error, Result, SysContext};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub struct Rootfs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub in_userns: bool,
    pub cgroupns: bool,
    pub cgroup_path: Option<&'a Path>,
    /// Waits for the container's cgroup and joins it, when that is left
    /// to init (see cgroups::Placement): run once, before the first cgroup
    /// mount or else after the spec's mounts, so /dev is made under the
    /// device rules as before.
    pub cgroup_ready: Option<&'a dyn Fn() -> Result<()>>,
    /// The container has no mount namespace of its own: its mounts go into
    /// the runtime's, under the rootfs, which is left as it is (no
    /// propagation change on the host's `/`, no bind of the rootfs), and
    /// `pivot` becomes a chroot. As runc does; `delete` takes them away.
    pub shared_mount_ns: bool,
    /// Bind sources the runtime copied before init entered its user
    /// namespace, by mount index.
    pub bind_sources: &'a super::bind_sources::BindSources,
}

impl Rootfs<'_> {
    /// Everything done while the host is still visible: the rootfs ends up a
    /// private mount point holding every mount, node and mask of the spec.
    pub fn prepare(&self) -> Result<()> {
        let host_mounts = if self.shared_mount_ns {
            mountinfo::read_self()
        } else {
            self.isolate()?
        };
        // A mount of its own, also when shared: root.readonly then remounts
        // this bind, never the host filesystem under it.
        mount(
            Some(self.rootfs),
            self.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .sys(|| format!("bind-mounting rootfs {}", self.rootfs.display()))?;
        let root: OwnedFd = std::fs::File::open(self.rootfs)
            .map_err(|e| Error::io(self.rootfs, e))?
            .into();
        self.populate(&root, &host_mounts)
    }

    /// Cuts the container's mount namespace off from the host's mount
    /// events; returns the host's mounts as they were.
    fn isolate(&self) -> Result<Vec<mountinfo::MountInfo>> {
        let linux = self.spec.linux().as_ref();
        let prop = linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .map(|p| {
                mounts::propagation_flag(p)
                    .ok_or_else(|| Error::Other(format!("unknown rootfsPropagation {p:?}")))
            })
            .transpose()?
            .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        // Nothing we mount may propagate back to the host's namespace. An
        // unbindable / would forbid binding the rootfs itself: the container's
        // root becomes unbindable after pivot_root instead.
        let prop = if prop.contains(MsFlags::MS_UNBINDABLE) {
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        } else {
            prop
        };
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .sys(|| "setting rootfs propagation on /".into())?;
        // pivot_root refuses a new root whose parent mount is shared.
        // mountinfo is long on a busy host: read it once for every use.
        let host_mounts = mountinfo::read_self();
        self.make_parent_slave(&host_mounts)?;
        Ok(host_mounts)
    }

    /// Every mount, node and mask of the spec, inside `root`.
    fn populate(&self, root: &OwnedFd, host_mounts: &[mountinfo::MountInfo]) -> Result<()> {
        let linux = self.spec.linux().as_ref();
        let mounter = Mounter {
            root: root.as_fd(),
            rootfs: self.rootfs,
            bundle: self.bundle,
            in_userns: self.in_userns,
            cgroupns: self.cgroupns,
            host_mounts,
            cgroup_path: self.cgroup_path,
            mount_label: linux.and_then(|l| l.mount_label().as_deref()),
        };
        let spec_mounts = self.spec.mounts().as_deref().unwrap_or(&[]);
        let mut cgroup_ready = self.cgroup_ready;
        let mut ready = || cgroup_ready.take().map_or(Ok(()), |f| f());
        // A read-only /dev (but a host's bound in) is populated first and
        // made read-only after, as runc does.
        let mut readonly_dev = None;
        for (i, m) in spec_mounts.iter().enumerate() {
            let tree = self.bind_sources.get(i);
            if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
                ready()?;
            }
            if m.destination() == Path::new("/dev") && m.typ().as_deref() != Some("bind") {
                let opts = m.options().as_deref().unwrap_or(&[]);
                let flags = mounts::parse_options(opts)?.flags;
                if flags.contains(MsFlags::MS_RDONLY) {
                    let mut rw = m.clone();
                    rw.set_options(Some(opts.iter().filter(|o| *o != "ro").cloned().collect()));
                    mounter.mount_entry(&rw, tree)?;
                    readonly_dev = Some(flags);
                    continue;
                }
            }
            mounter.mount_entry(m, tree)?;
        }
        ready()?;
        let has_proc = spec_mounts
            .iter()
            .any(|m| m.typ().as_deref() == Some("proc"));
        let dev_from_host = spec_mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("bind"));
        if !dev_from_host {
            self.make_devices(root, has_proc)?;
        }
        if let Some(flags) = readonly_dev {
            // The pty is bound onto /dev/console after pivot_root: its
            // mount point must exist before /dev goes read-only.
            let terminal = self
                .spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            if terminal {
                paths::create_file_in_root(root.as_fd(), Path::new("/dev/console"))?;
            }
            let dev = paths::handle_in_root(root.as_fd(), Path::new("/dev"))
                .sys(|| "reopening /dev".into())?;
            let keep = flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
            mounts::remount_bind(&dev, keep | MsFlags::MS_RDONLY, self.in_userns)
                .sys(|| "making /dev read-only".into())?;
        }
        // Before read-only paths turn /proc/sys read-only.
        if let Some(sysctl) = self.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
            sysctl::apply(root.as_fd(), sysctl)?;
        }
        self.mask_paths(root)?;
        self.readonly_paths(root)
    }

    /// Slave rather than private, so the rootfs bind made from it still
    /// receives the host's mounts (the `master:` the default rslave promises).
    fn make_parent_slave(&self, infos: &[mountinfo::MountInfo]) -> Result<()> {
        // The last mount listed on the longest matching path is the top one.
        let Some(parent) = infos
            .iter()
            .filter(|i| self.rootfs.starts_with(&i.mount_point))
            .max_by_key(|i| i.mount_point.as_os_str().len())
        else {
            return Ok(());
        };
        if !parent.shared {
            return Ok(());
        }
        let parent = parent.mount_point.clone();
        mount(
            None::<&str>,
            &parent,
            None::<&str>,
            MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .sys(|| format!("making {} a slave mount", parent.display()))
    }

    fn make_devices(&self, root: &OwnedFd, has_proc: bool) -> Result<()> {
        let spec_devices = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().as_ref())
            .map(|d| d.iter().map(devices::from_spec).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        for node in devices::default_nodes() {
            if !spec_devices.iter().any(|d| d.path == node.path) {
                devices::create(root.as_fd(), &node, self.in_userns)?;
            }
        }
        for node in &spec_devices {
            devices::create(root.as_fd(), node, self.in_userns)?;
        }
        devices::create_links(root.as_fd(), has_proc)
    }

    /// maskedPaths: files get the host's verified /dev/null, directories an
    /// empty read-only tmpfs. Paths that do not exist are skipped, as runc does.
    fn mask_paths(&self, root: &OwnedFd) -> Result<()> {
        let masked = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or(&[]);
        if masked.is_empty() {
            return Ok(());
        }
        let null = devices::verified_dev_null()?;
        let null_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&null));
        for p in masked {
            let Ok(target) = paths::handle_in_root(root.as_fd(), Path::new(p)) else {
                continue;
            };
            let is_dir = nix::sys::stat::fstat(target.as_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .unwrap_or(false);
            let r = if is_dir {
                mount(
                    Some("tmpfs"),
                    fd_path(&target).as_str(),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0k"),
                )
            } else {
                mount(
                    Some(null_path.as_str()),
                    fd_path(&target).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
            };
            r.sys(|| format!("masking {p}"))?;
        }
        Ok(())
    }

    fn readonly_paths(&self, root: &OwnedFd) -> Result<()> {
        let ro = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or(&[]);
        for p in ro {
            let Ok(target) = paths::handle_in_root(root.as_fd(), Path::new(p)) else {
                continue;
            };
            let path = fd_path(&target);
            mount(
                Some(path.as_str()),
                path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .sys(|| format!("bind-mounting read-only path {p}"))?;
            let placed = paths::handle_in_root(root.as_fd(), Path::new(p))
                .sys(|| format!("reopening read-only path {p}"))?;
            mounts::remount_bind(
                &placed,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                true,
            )
            .sys(|| format!("making {p} read-only"))?;
        }
        Ok(())
    }
}

/// Makes the rootfs `/`. pivot_root(".", ".") stacks the old root under the
/// new one, where it is detached; nothing of the host stays reachable.
/// Without a mount namespace of the container's own, a chroot (as runc).
pub fn pivot(rootfs: &Path, no_pivot: bool, shared_mount_ns: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).sys(|| format!("chdir {}", rootfs.display()))?;
    if shared_mount_ns {
        nix::unistd::chroot(".").sys(|| "chroot into rootfs".into())?;
    } else if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .sys(|| "moving rootfs to /".into())?;
        nix::unistd::chroot(".").sys(|| "chroot into rootfs".into())?;
    } else {
        let old_root = std::fs::File::open("/").map_err(|e| Error::io("/", e))?;
        nix::unistd::pivot_root(".", ".").sys(|| "pivot_root".into())?;
        // The old root is stacked on the new one. Make it (and only it: from
        // inside it, "." is the old root's mount, from the new root's
        // directory it would be the new root, whose rshared binds would turn
        // slaves) a slave, so that its unmount cannot propagate to the
        // host, then detach it.
        nix::unistd::fchdir(&old_root).sys(|| "fchdir to the old root".into())?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .sys(|| "making old root a slave".into())?;
        umount2(".", MntFlags::MNT_DETACH).sys(|| "detaching old root".into())?;
        drop(old_root);
    }
    nix::unistd::chdir("/").sys(|| "chdir /".into())
}

/// Without pivot_root the host's mounts stay in the container's mount
/// namespace, under the chroot. The kernel lets a user namespace mount a
/// new procfs or sysfs only where one is fully visible in the mount
/// namespace, and the host's whole /proc and /sys would count: a nested
/// user namespace could then mount one without the container's masks.
/// So each of them outside the rootfs is detached, or, where that is
/// refused, covered with an empty tmpfs.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let host = mountinfo::read_self();
    let whole = host.iter().filter(|m| {
        matches!(m.fs_type.as_str(), "proc" | "sysfs")
            && m.root == Path::new("/")
            && !m.mount_point.starts_with(rootfs)
    });
    let mut detached: Vec<&Path> = Vec::new();
    for m in whole {
        let p = &m.mount_point;
        // Already gone with a mount above it.
        if detached.iter().any(|d| p.starts_with(d)) {
            continue;
        }
        // The unmount must not reach the host's namespace.
        mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .sys(|| format!("making {} a slave mount", p.display()))?;
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => detached.push(p),
            Err(nix::Error::EINVAL | nix::Error::EPERM) => mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .sys(|| format!("covering the host's {}", p.display()))?,
            Err(e) => {
                return Err(Error::sys(
                    format!("detaching the host's {}", p.display()),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// rootfsPropagation, applied to the container's own `/` once it is the
/// root (the host side was set before the mounts, see `prepare`).
pub fn apply_root_propagation(spec: &Spec) -> Result<()> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    else {
        return Ok(());
    };
    let flag = mounts::propagation_flag(p)
        .ok_or_else(|| Error::Other(format!("unknown rootfsPropagation {p:?}")))?;
    mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
        .sys(|| format!("setting rootfsPropagation {p} on /"))
}

/// root.readonly: remount `/` read-only once everything is in place.
pub fn make_root_readonly() -> Result<()> {
    let root: OwnedFd = std::fs::File::open("/")
        .map_err(|e| Error::io("/", e))?
        .into();
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | mounts::locked_flags(&root),
        None::<&str>,
    )
    .sys(|| "remounting / read-only".into())
}

/// Takes away what a container without a mount namespace of its own left
/// mounted under its rootfs in the runtime's namespace (deepest first).
pub fn unmount_shared(rootfs: &Path) {
    let mut under: Vec<_> = mountinfo::read_self()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(rootfs) && p != rootfs)
        .collect();
    under.dedup();
    // The rootfs's own bind goes last, with everything on it.
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    under.push(rootfs.to_path_buf());
    for p in under {
        let _ = umount2(&p, MntFlags::MNT_DETACH);
    }
}

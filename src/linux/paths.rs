//! Resolving paths from a bundle inside the rootfs, never outside it.
//!
//! Every lookup goes through openat2(RESOLVE_IN_ROOT): `..` and symlinks,
//! absolute ones included, are resolved as if the rootfs were `/`, so a
//! hostile rootfs cannot send a mount or a device node to the host.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The path with its leading `/` and any `.` removed, for use relative to a root fd.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

fn cstr(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("path {} contains a NUL byte", path.display())))
}

/// openat2 with RESOLVE_IN_ROOT: `path` is looked up with `root` as `/`.
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: i32) -> nix::Result<OwnedFd> {
    openat2_in_root(root, path, flags, 0)
}

/// An O_PATH handle on `path` inside the root, reached without following
/// any symlink (ELOOP if one is on the way): the object the path names
/// itself, rather than where a symlink in the rootfs points.
pub fn handle_in_root_no_symlinks(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    openat2_in_root(root, path, libc::O_PATH, RESOLVE_NO_SYMLINKS)
}

fn openat2_in_root(root: BorrowedFd, path: &Path, flags: i32, also: u64) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | also,
    };
    loop {
        // SAFETY: openat2 reads a valid C string and a correctly sized open_how.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this fd to us and nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match Errno::last() {
            // openat2 asks for a retry when a rename raced the lookup.
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Opens `path` inside the root as an O_PATH handle.
pub fn handle_in_root(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    open_in_root(root, path, libc::O_PATH)
}

/// mkdir -p inside the root; returns an O_PATH handle on the final directory.
/// A dangling symlink on the way is followed (inside the root) and its
/// target created, as runc's MkdirAllInRoot does.
pub fn mkdir_all_in_root(root: BorrowedFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    let mut path = relative(path);
    // Bounded like the kernel's own symlink limit.
    for _ in 0..40 {
        match mkdir_walk(root, &path, mode)? {
            Walk::Done(fd) => return Ok(fd),
            Walk::Redirect(next) => path = next,
        }
    }
    Err(Error::Other(format!(
        "creating {}: too many levels of symbolic links",
        path.display()
    )))
}

enum Walk {
    Done(OwnedFd),
    /// A component was a dangling symlink: start again from its target.
    Redirect(PathBuf),
}

fn mkdir_walk(root: BorrowedFd, rel: &Path, mode: u32) -> Result<Walk> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    // Most destinations exist already: one lookup instead of one per component.
    if let Ok(fd) = open_in_root(root, rel, flags) {
        return Ok(Walk::Done(fd));
    }
    // Most of the rest are one level below a directory that exists (a
    // cgroup hierarchy under /sys/fs/cgroup): make just the last one. A
    // symlink or a race there falls through to the walk, which sorts it out.
    if let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) {
        if !parent.as_os_str().is_empty() {
            if let Ok(dir) = open_in_root(root, parent, flags) {
                let name = cstr(Path::new(name))?;
                if nix::sys::stat::mkdirat(&dir, name.as_c_str(), Mode::from_bits_truncate(mode))
                    .is_ok()
                {
                    if let Ok(fd) = open_in_root(root, rel, flags) {
                        return Ok(Walk::Done(fd));
                    }
                }
            }
        }
    }
    let mut prefix = PathBuf::new();
    let mut dir =
        open_in_root(root, &prefix, flags).map_err(|e| Error::sys("opening rootfs", e))?;
    let comps: Vec<_> = rel.components().collect();
    for (i, comp) in comps.iter().enumerate() {
        let parent_prefix = prefix.clone();
        prefix.push(comp);
        dir = match open_in_root(root, &prefix, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let name = cstr(Path::new(comp.as_os_str()))?;
                match nix::sys::stat::mkdirat(&dir, name.as_c_str(), Mode::from_bits_truncate(mode))
                {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        if let Ok(target) = nix::fcntl::readlinkat(&dir, name.as_c_str()) {
                            let target = PathBuf::from(target);
                            let mut next = if target.is_absolute() {
                                relative(&target)
                            } else {
                                parent_prefix.join(target)
                            };
                            next.extend(&comps[i + 1..]);
                            return Ok(Walk::Redirect(next));
                        }
                    }
                    Err(e) => return Err(Error::sys(format!("mkdir {}", prefix.display()), e)),
                }
                open_in_root(root, &prefix, flags)
                    .map_err(|e| Error::sys(format!("opening {}", prefix.display()), e))?
            }
            Err(e) => return Err(Error::sys(format!("opening {}", prefix.display()), e)),
        };
    }
    Ok(Walk::Done(dir))
}

/// Makes sure `path` exists inside the root as a regular file (creating an
/// empty one if needed) and returns an O_PATH handle on it. A dangling
/// symlink on the way, the last component included, is followed inside
/// the root and its target created, as mkdir_all_in_root does.
pub fn create_file_in_root(root: BorrowedFd, path: &Path) -> Result<OwnedFd> {
    if let Ok(fd) = handle_in_root(root, path) {
        return Ok(fd);
    }
    let mut rel = relative(path);
    // Bounded like the kernel's own symlink limit.
    for _ in 0..40 {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(Error::Other(format!("cannot create {}", path.display())));
        };
        let dir = mkdir_all_in_root(root, parent, 0o755)?;
        // O_PATH handles cannot be used as a base for creating files: reopen.
        let dir = reopen(&dir, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::sys(format!("opening {}", parent.display()), e))?;
        let c = cstr(Path::new(name))?;
        match nix::fcntl::openat(
            &dir,
            c.as_c_str(),
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) => {}
            Err(Errno::EEXIST) => {
                // Made meanwhile, or a symlink whose target is missing:
                // then start again from that target.
                if let Ok(fd) = handle_in_root(root, &rel) {
                    return Ok(fd);
                }
                if let Ok(target) = nix::fcntl::readlinkat(&dir, c.as_c_str()) {
                    let target = PathBuf::from(target);
                    rel = if target.is_absolute() {
                        relative(&target)
                    } else {
                        parent.join(target)
                    };
                    continue;
                }
            }
            Err(e) => return Err(Error::sys(format!("creating {}", path.display()), e)),
        }
        return handle_in_root(root, &rel)
            .map_err(|e| Error::sys(format!("opening {}", path.display()), e));
    }
    Err(Error::Other(format!(
        "creating {}: too many levels of symbolic links",
        path.display()
    )))
}

/// Reopens an O_PATH handle with real access flags, through this process's
/// own fd table rather than by path, so the object cannot be swapped.
pub fn reopen(fd: &OwnedFd, flags: i32) -> nix::Result<OwnedFd> {
    let path = fd_path(fd);
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open with a valid C string; the result is checked below.
    let r = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The /proc/self/fd path that names an open handle; mount(2) given this
/// path acts on the very object the handle refers to.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn relative_drops_root_and_dots() {
        assert_eq!(relative(Path::new("/a/./b/")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = std::env::temp_dir().join(format!("brig-paths-{}", std::process::id()));
        let root = tmp.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/marker"), "inside").unwrap();
        // An absolute symlink and a `..` chain that would leave the root on the host.
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).unwrap();
        let rootfd = OwnedFd::from(std::fs::File::open(&root).unwrap());
        for p in ["/abs/marker", "up/marker", "/../../etc/marker"] {
            let fd = open_in_root(rootfd.as_fd(), Path::new(p), libc::O_RDONLY).unwrap();
            let got = std::fs::read_to_string(fd_path(&fd)).unwrap();
            assert_eq!(got, "inside", "{p} escaped the root");
        }
        let made = mkdir_all_in_root(rootfd.as_fd(), Path::new("/abs/new/dir"), 0o755).unwrap();
        drop(made);
        assert!(root.join("etc/new/dir").is_dir());
        // A dangling symlink to a host path is created inside the root.
        std::os::unix::fs::symlink(tmp.join("host-side"), root.join("dangling")).unwrap();
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/dangling/x"), 0o755).unwrap();
        assert!(!tmp.join("host-side").exists(), "created on the host");
        assert!(root.join(relative(&tmp.join("host-side/x"))).is_dir());
        // So is the target of a dangling symlink a file is made on, also
        // through a chain of them, relative and absolute.
        std::os::unix::fs::symlink(tmp.join("host-file"), root.join("file-link")).unwrap();
        std::os::unix::fs::symlink("file-link", root.join("chain")).unwrap();
        create_file_in_root(rootfd.as_fd(), Path::new("/chain")).unwrap();
        assert!(!tmp.join("host-file").exists(), "created on the host");
        assert!(root.join(relative(&tmp.join("host-file"))).is_file());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

//! Bind-mount sources taken by the runtime, for a container in a user
//! namespace: init mounts as the namespace's root, whose ids may not reach
//! a source the host's root can (a directory under a 0700 one, an
//! unmapped owner's file). So, before the clone, while still the host's
//! root, `create` makes a detached copy of each source (open_tree with
//! OPEN_TREE_CLONE, recursive for rbind), and init moves it onto its
//! destination (move_mount) instead of binding the path. runc 1.1 opens
//! the sources from its parent for the same reason.
//!
//! The copies are made in the host's mount namespace and belong to none
//! until moved; a source that cannot be copied (missing, or a kernel
//! before 5.2) is left to init, which binds the path and reports what
//! fails in its usual words.

use super::mounts;
use crate::error::{Error, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// One detached tree per bind mount of the spec, by its index in `mounts`.
#[derive(Default)]
pub struct BindSources(Vec<Option<OwnedFd>>);

impl BindSources {
    /// Copies the source of every bind mount in `mounts` (relative sources
    /// are the bundle's).
    pub fn open(mounts: &[Mount], bundle: &Path) -> BindSources {
        let trees = mounts
            .iter()
            .map(|m| {
                let opts = mounts::parse_options(m.options().as_deref().unwrap_or(&[])).ok()?;
                let bind =
                    m.typ().as_deref() == Some("bind") || opts.flags.contains(MsFlags::MS_BIND);
                let src = m.source().as_ref().filter(|_| bind)?;
                open_tree(&bundle.join(src), opts.flags.contains(MsFlags::MS_REC)).ok()
            })
            .collect();
        BindSources(trees)
    }

    /// The detached copy of mount `index`'s source, if one was made.
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(index).and_then(Option::as_ref)
    }

    /// Their fds, which init keeps until its mounts are made.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.0.iter().flatten().map(AsRawFd::as_raw_fd)
    }
}

/// A detached copy of the mount tree at `path` (its submounts too when
/// `recursive`), close-on-exec.
pub fn open_tree(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| nix::Error::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: open_tree with a valid NUL-terminated path; the fd it returns is owned below.
    let raw = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if raw < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: a fresh fd from open_tree, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// Attaches the detached `tree` on the object `target` is a handle of.
pub fn move_mount(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    // SAFETY: move_mount between two fds we hold, with empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Error::sys("move_mount", nix::Error::last()));
    }
    Ok(())
}

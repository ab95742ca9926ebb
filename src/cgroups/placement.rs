//! How a new process gets into its container's cgroup.
//!
//! The obvious way, the parent writing the child's pid into `cgroup.procs`,
//! write-locks the kernel's global `cgroup_threadgroup_rwsem`. The first
//! writer after a quiet spell waits out a whole RCU grace period for it:
//! 10 to 15 ms measured on this project's test host, more than the rest of
//! `brig run`. Two ways in take no such lock:
//! - being born in the cgroup (clone3 with CLONE_INTO_CGROUP), which the
//!   kernel offers for cgroup2 only;
//! - a thread moving itself, writing "0" into a v1 hierarchy's `tasks`
//!   file. The parent opens those files (the kernel checks the opener's
//!   credentials, so a child already in a user namespace may still write);
//!   the child writes before it does anything else. brig is single-threaded,
//!   so the thread is the whole process.
//!
//! Anything neither covers falls back to the parent's [`Cgroup::add`].

use super::Cgroup;
use crate::error::{Error, Result};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A v1 `tasks` file opened by the parent, through which a child moves
/// itself in.
pub struct SelfJoin {
    path: PathBuf,
    file: std::fs::File,
}

impl SelfJoin {
    pub fn open(dir: &Path) -> Result<SelfJoin> {
        let path = dir.join("tasks");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        Ok(SelfJoin { path, file })
    }

    /// Moves the calling thread in.
    pub fn join(&self) -> Result<()> {
        (&self.file)
            .write_all(b"0")
            .map_err(|e| Error::Other(format!("joining {}: {e}", self.path.display())))
    }
}

/// What the parent prepares before the clone, and what is left to do after.
#[derive(Default)]
pub struct Placement {
    /// A cgroup2 directory for CLONE_INTO_CGROUP.
    pub clone_into: Option<OwnedFd>,
    /// v1 hierarchies the child joins itself, first thing.
    pub self_join: Vec<SelfJoin>,
    /// The parent must still write the child's pid (`Cgroup::add`).
    pub parent_adds: bool,
}

impl Placement {
    /// How to place a child of this process in `cg`. `can_clone_into`: the
    /// child is cloned directly by us (not forked again after a setns).
    pub fn plan(cg: Option<&dyn Cgroup>, can_clone_into: bool) -> Result<Placement> {
        let Some(cg) = cg else {
            return Ok(Placement::default());
        };
        let (v2_dir, v1_dirs) = cg.placement_dirs();
        let clone_into = if can_clone_into {
            v2_dir
                .as_ref()
                .and_then(|d| std::fs::File::open(d).ok().map(OwnedFd::from))
        } else {
            None
        };
        let parent_adds = v2_dir.is_some() && clone_into.is_none();
        // A parent that writes the pid anyway takes the lock anyway: it
        // covers the v1 hierarchies in the same go.
        let self_join = if parent_adds {
            Vec::new()
        } else {
            v1_dirs
                .iter()
                .map(|d| SelfJoin::open(d))
                .collect::<Result<_>>()?
        };
        Ok(Placement {
            clone_into,
            self_join,
            parent_adds,
        })
    }

    /// In the child: join what the parent left to us.
    pub fn join_self(&self) -> Result<()> {
        self.self_join.iter().try_for_each(SelfJoin::join)
    }
}

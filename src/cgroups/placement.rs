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
//! Anything neither covers falls back to the parent's [`Dirs::add`].
//!
//! Making the v1 directories (about 0.6 ms for ten hierarchies) need not
//! hold up the clone either: when `create` can, it makes them after the
//! clone, while init builds its rootfs, and init joins them itself once the
//! parent says they exist (`join_later`). That needs init to open the
//! `tasks` files with the host's credentials: no new user namespace.

use super::fs::Writer;
use super::{Cgroup, Dirs};
use crate::error::Result;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// What the parent prepares before the clone, and what is left to do after.
#[derive(Default)]
pub struct Placement {
    /// A cgroup2 directory for CLONE_INTO_CGROUP.
    pub clone_into: Option<OwnedFd>,
    /// The `tasks` file of each v1 hierarchy, opened here: the child joins
    /// through them itself, first thing.
    pub self_join: Vec<Writer>,
    /// The parent makes the v1 directories after the clone and then tells
    /// the child, which joins these itself (`join_later`).
    pub deferred: bool,
    pub join_later: Vec<PathBuf>,
    /// The parent must still write the child's pid (`Cgroup::add`).
    pub parent_adds: bool,
}

impl Placement {
    /// How to place a child of this process in `cg`, before it forks or
    /// runs anything (what it forks then inherits its cgroups). `deferred`:
    /// only `create_clone_target` has run yet.
    pub fn plan(cg: Option<&dyn Cgroup>, deferred: bool) -> Result<Placement> {
        Placement::into_dirs(cg.map(|c| c.placement_dirs()), deferred)
    }

    /// [`Placement::plan`] for a process of the container that goes to
    /// `dirs` (exec --cgroup's sub-cgroups).
    pub fn into_dirs(dirs: Option<Dirs>, deferred: bool) -> Result<Placement> {
        let Some(Dirs {
            unified: v2_dir,
            v1: v1_dirs,
        }) = dirs
        else {
            return Ok(Placement::default());
        };
        let clone_into = v2_dir
            .as_ref()
            .and_then(|d| std::fs::File::open(d).ok().map(OwnedFd::from));
        let parent_adds = v2_dir.is_some() && clone_into.is_none();
        if deferred {
            return Ok(Placement {
                clone_into,
                deferred,
                join_later: if parent_adds { Vec::new() } else { v1_dirs },
                parent_adds,
                ..Placement::default()
            });
        }
        // A parent that writes the pid anyway takes the lock anyway: it
        // covers the v1 hierarchies in the same go.
        let self_join = if parent_adds {
            Vec::new()
        } else {
            v1_dirs
                .iter()
                .map(|d| Writer::open(d, "tasks"))
                .collect::<Result<_>>()?
        };
        Ok(Placement {
            clone_into,
            self_join,
            parent_adds,
            ..Placement::default()
        })
    }

    /// In the child: join what the parent left to us ("0" moves the
    /// calling thread).
    pub fn join_self(&self) -> Result<()> {
        self.self_join.iter().try_for_each(|w| w.write("0"))
    }

    /// In the child, once the parent has made the directories.
    pub fn join_later(&self) -> Result<()> {
        self.join_later
            .iter()
            .try_for_each(|d| Writer::open(d, "tasks")?.write("0"))
    }
}

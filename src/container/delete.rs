//! `delete`: remove a stopped container (or, with --force, any).

use super::kill::container_pids;
use super::store::Locked;
use super::store::Store;
use super::Status;
use crate::error::{Error, Result};
use crate::hooks::{self, Point};
use crate::linux::pidfd::Pidfd;
use std::time::Duration;

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    // What a create or delete killed half-way left in the root.
    store.sweep();
    let c = match store.load(id) {
        Ok(c) => c,
        // Like runc: a forced delete of what is already gone succeeds, so
        // containerd can retry a delete without tripping over itself.
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = c.status();
    match status {
        Status::Stopped => {}
        // A created container never ran the user's program; runc deletes it too.
        Status::Created => kill_and_wait(&c)?,
        Status::Running | Status::Creating | Status::Paused if force => kill_and_wait(&c)?,
        _ => {
            return Err(Error::WrongState {
                id: id.to_string(),
                status: status.to_string(),
                why: "cannot delete a container that is not stopped (use --force)",
            })
        }
    }
    if let Some(rel) = &c.state.cgroup {
        remove_cgroup(rel)?;
    }
    if c.state.shared_mounts {
        crate::linux::rootfs::unmount_shared(&c.state.rootfs);
    }
    let hooks = c.state.hooks.clone();
    let state = c.state.to_oci_json(Status::Stopped);
    c.destroy()?;
    hooks::run_logged(hooks.as_ref(), Point::Poststop, &state);
    Ok(())
}

/// SIGKILLs every process of the container and waits until init is gone,
/// so its namespaces and mounts are released before the state is.
fn kill_and_wait(c: &Locked) -> Result<()> {
    let (pid, start) = (c.state.pid, c.state.pid_start);
    if pid <= 0 {
        return Ok(());
    }
    // Opened first: once init is dead its pid may be reused.
    let Ok(init) = Pidfd::open(pid, start) else {
        return Ok(());
    };
    for p in container_pids(c) {
        if p != pid {
            // SAFETY: kill(2) on a pid of the container's cgroup or pid namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    init.signal(libc::SIGKILL)?;
    // A frozen container only dies once thawed.
    if let Some(cg) = c.cgroup().filter(|cg| cg.is_frozen()) {
        cg.freeze(false)?;
    }
    if !init.wait_exit(Duration::from_secs(10)) {
        return Err(Error::Other(format!(
            "init {pid} did not die after SIGKILL"
        )));
    }
    Ok(())
}

/// Kills whatever is still in the container's cgroup and removes its
/// directories in every hierarchy.
pub(super) fn remove_cgroup(rel: &std::path::Path) -> Result<()> {
    let cg = crate::cgroups::open(rel)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Other(format!(
                "processes {pids:?} survived SIGKILL in cgroup {}",
                rel.display()
            )));
        }
        // A frozen cgroup would hold the SIGKILLs back.
        if cg.is_frozen() {
            cg.freeze(false)?;
        }
        for p in pids {
            // SAFETY: kill(2) on a pid listed in the container's own cgroup.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cg.destroy()
}

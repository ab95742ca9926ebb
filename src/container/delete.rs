//! `delete`: remove a stopped container (or, with --force, any).

use super::kill::{container_pids, signal_pid};
use super::store::Store;
use super::Status;
use crate::error::{Error, Result};
use crate::linux::procfs;
use std::time::{Duration, Instant};

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let c = store.load(id)?;
    let status = c.status();
    match status {
        Status::Stopped => {}
        // A created container never ran the user's program; runc deletes it too.
        Status::Created => kill_and_wait(c.state.pid, c.state.pid_start)?,
        Status::Running | Status::Creating if force => {
            kill_and_wait(c.state.pid, c.state.pid_start)?
        }
        _ => {
            return Err(Error::WrongState {
                id: id.to_string(),
                status: status.to_string(),
                why: "cannot delete a container that is not stopped (use --force)",
            })
        }
    }
    c.destroy()
}

/// SIGKILLs every process of the container and waits until init is gone,
/// so its namespaces and mounts are released before the state is.
fn kill_and_wait(pid: i32, start: u64) -> Result<()> {
    if pid <= 0 {
        return Ok(());
    }
    for p in container_pids(pid) {
        if p != pid {
            // SAFETY: kill(2) on a pid in the container's own pid namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    let _ = signal_pid(pid, start, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while procfs::is_same_live_process(pid, start) {
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "init {pid} did not die after SIGKILL"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

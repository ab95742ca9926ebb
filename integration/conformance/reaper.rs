//! The suite is a child subreaper, as containerd's shim is: a container's
//! init, orphaned when `create` exits, is re-parented to us, and one thread
//! reaps every child (ours and theirs) and records how it ended. Nothing
//! else in the suite may call wait(2): commands are waited for here.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

struct Reaped {
    /// pid -> how it ended and when it was reaped.
    exits: Mutex<HashMap<i32, (Exit, Instant)>>,
    cond: Condvar,
}

fn reaped() -> &'static Reaped {
    static R: OnceLock<Reaped> = OnceLock::new();
    R.get_or_init(|| Reaped {
        exits: Mutex::new(HashMap::new()),
        cond: Condvar::new(),
    })
}

/// Becomes a subreaper and starts the reaping thread. Call once, first.
pub fn start() -> Result<(), String> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        ));
    }
    let r = reaped();
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            let mut status = 0;
            // SAFETY: waitpid with an out-parameter.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid > 0 {
                let exit = if libc::WIFSIGNALED(status) {
                    Exit::Signal(libc::WTERMSIG(status))
                } else {
                    Exit::Code(libc::WEXITSTATUS(status))
                };
                r.exits.lock().unwrap().insert(pid, (exit, Instant::now()));
                r.cond.notify_all();
            } else {
                // ECHILD (no children right now) or EINTR.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .map_err(|e| format!("spawn reaper thread: {e}"))?;
    Ok(())
}

/// Waits until `pid` (a child or an orphan re-parented to us) has been
/// reaped; None after `timeout`. Only a reaping after `since` counts: a
/// record of an earlier process with the same (since reused) pid is stale.
pub fn wait(pid: i32, since: Instant, timeout: Duration) -> Option<Exit> {
    let r = reaped();
    let deadline = Instant::now() + timeout;
    let mut exits = r.exits.lock().unwrap();
    loop {
        if let Some((e, at)) = exits.remove(&pid) {
            if at >= since {
                return Some(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        exits = r.cond.wait_timeout(exits, deadline - now).unwrap().0;
    }
}

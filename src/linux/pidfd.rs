//! Process handles (pidfd_open): a signal or a wait through one can only
//! reach the process we checked, never a successor that recycled its pid.

use super::procfs;
use crate::error::{Error, Result};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a handle on `pid`, then checks it is still the process that
    /// started at `start`: after that check the handle cannot be fooled.
    pub fn open(pid: i32, start: u64) -> Result<Pidfd> {
        // SAFETY: pidfd_open with a pid and no flags; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Error::sys(format!("pidfd_open {pid}"), nix::Error::last()));
        }
        // SAFETY: the kernel just gave us this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if !procfs::is_same_live_process(pid, start) {
            return Err(Error::Other(format!("process {pid} is gone")));
        }
        Ok(Pidfd(fd))
    }

    pub fn signal(&self, sig: i32) -> Result<()> {
        // SAFETY: pidfd_send_signal on a pidfd we own, without siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<u8>(),
                0,
            )
        };
        if r < 0 {
            return Err(Error::sys(
                format!("sending signal {sig}"),
                nix::Error::last(),
            ));
        }
        Ok(())
    }

    /// Waits until the process has exited (a pidfd polls readable then,
    /// whoever its parent is). False on timeout.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)), Ok(n) if n > 0)
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

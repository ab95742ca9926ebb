//! The exec fifo: init blocks opening its write end until `start` opens the
//! read end. Its existence is what makes a live container `created`.

use crate::error::{Error, Result, SysContext};
use crate::linux::pidfd::Pidfd;
use crate::linux::procfs;
use nix::sys::stat::Mode;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// World-writable (0622, as runc's): init may be a mapped, unprivileged
/// uid by the time it opens it. The mode is set after mkfifo, which the
/// umask would trim.
pub fn make(path: &Path) -> Result<()> {
    let mode = Mode::from_bits_truncate(0o622);
    nix::unistd::mkfifo(path, mode).sys(|| format!("mkfifo {}", path.display()))?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .sys(|| format!("chmod {}", path.display()))
}

/// What init keeps of the fifo while it waits: an O_PATH handle, opened
/// before pivot_root while the host path is reachable. Such a handle can be
/// reopened but not walked: it leads nowhere else. It is reopened for
/// writing through a procfs of the container's own pid namespace, never the
/// host's (a host procfs directory held here would be a way out for a
/// container process allowed to ptrace).
pub struct InitEnd {
    fifo: OwnedFd,
    /// A private procfs, when the spec mounts none at /proc.
    proc: Option<OwnedFd>,
}

impl InitEnd {
    /// `container_has_proc`: the spec mounts a procfs at /proc, through
    /// which the fifo is reopened after pivot_root; otherwise a private one
    /// is made now.
    pub fn open(path: &Path, container_has_proc: bool) -> Result<InitEnd> {
        use std::os::unix::fs::OpenOptionsExt;
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(path, e))?
            .into();
        let proc = if container_has_proc {
            None
        } else {
            Some(procfs::detached()?)
        };
        Ok(InitEnd { fifo, proc })
    }

    /// Opens the container's procfs now, after pivot_root but before the
    /// seccomp filter: finding it takes openat2, which a profile written
    /// for older kernels answers with EPERM. The fd is the container's own
    /// /proc, nothing of the host's.
    pub fn open_container_proc(&mut self) -> Result<()> {
        if self.proc.is_none() {
            self.proc = Some(procfs::container_proc()?);
        }
        Ok(())
    }

    /// The fds init must keep open until it execs.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.fifo.as_raw_fd()];
        fds.extend(self.proc.as_ref().map(|p| p.as_raw_fd()));
        fds
    }

    /// Blocks until `start` opens the read end, runs `before_go` (the
    /// startContainer hooks), and tells `start` how that went: "0" to go,
    /// or "1" and the error, which `start` reports as its own.
    pub fn wait(self, before_go: impl FnOnce() -> Result<()>) -> Result<()> {
        let proc = match self.proc {
            Some(p) => p,
            None => procfs::container_proc()?,
        };
        // Only openat, write and close from here: what any profile allows.
        let name = format!("{}/fd/{}", nix::unistd::getpid(), self.fifo.as_raw_fd());
        let fd = nix::fcntl::openat(
            &proc,
            name.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys(|| "opening exec fifo".into())?;
        drop(proc);
        drop(self.fifo);
        let result = before_go();
        let msg = match &result {
            Ok(()) => b"0".to_vec(),
            Err(e) => format!("1{e}").into_bytes(),
        };
        nix::unistd::write(&fd, &msg).sys(|| "writing exec fifo".into())?;
        result
    }
}

/// `start`'s side: opens the read end without blocking (which releases
/// init's blocking open), then waits for init's byte, or for init to die.
pub fn release(path: &Path, init: &Pidfd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut buf = [0u8; 1];
    loop {
        match f.read(&mut buf) {
            Ok(1) if buf[0] == b'0' => break,
            Ok(1) => {
                // init failed after start: its message follows, then EOF.
                let _ = std::fs::remove_file(path);
                return Err(Error::Init(read_rest(&mut f)));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        let mut fds = [
            PollFd::new(f.as_fd(), PollFlags::POLLIN),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        let fifo_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if !fifo_ready && fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Err(Error::Other("container init exited before start".into()));
        }
        if !fifo_ready
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP))
        {
            // A fifo whose writer came and went polls hung up; do not spin.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::fs::remove_file(path).map_err(|e| Error::io(path, e))
}

fn read_rest(f: &mut std::fs::File) -> String {
    let _ = nix::fcntl::fcntl(
        &*f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    let mut rest = String::new();
    let _ = f.read_to_string(&mut rest);
    rest
}

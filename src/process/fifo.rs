//! The exec fifo: init blocks opening its write end until `start` opens the
//! read end. Its existence is what makes a live container `created`.

use crate::error::{Error, Result, SysContext};
use crate::linux::pidfd::Pidfd;
use nix::sys::stat::Mode;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

/// Handles opened by init before pivot_root, while the fifo's host path is
/// still reachable: an O_PATH handle and the host procfs fd directory
/// through which it is reopened for writing later.
pub struct InitEnd {
    fifo: OwnedFd,
    fd_dir: OwnedFd,
}

impl InitEnd {
    pub fn open(path: &Path) -> Result<InitEnd> {
        let open = |p: &Path, flags| -> Result<OwnedFd> {
            Ok(std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(p)
                .map_err(|e| Error::io(p, e))?
                .into())
        };
        use std::os::unix::fs::OpenOptionsExt;
        let fifo = open(path, libc::O_PATH | libc::O_CLOEXEC)?;
        let fd_dir = open(
            Path::new("/proc/self/fd"),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )?;
        Ok(InitEnd { fifo, fd_dir })
    }

    /// Blocks until `start` opens the read end, runs `before_go` (the
    /// startContainer hooks), and tells `start` how that went: "0" to go,
    /// or "1" and the error, which `start` reports as its own.
    pub fn wait(self, before_go: impl FnOnce() -> Result<()>) -> Result<()> {
        let name = self.fifo.as_raw_fd().to_string();
        let fd = nix::fcntl::openat(
            &self.fd_dir,
            name.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys(|| "opening exec fifo".into())?;
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

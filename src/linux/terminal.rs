//! Container terminals: the pty is made inside the container, its master
//! sent over the console socket (SCM_RIGHTS), its slave becomes stdio.

use crate::error::{Error, Result, SysContext};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Opens a pty from the container's own devpts (so its number and owner
/// belong to the container), returning (master, slave path).
pub fn open_pty() -> Result<(OwnedFd, String)> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .sys(|| "opening /dev/ptmx".into())?;
    grantpt(&master).sys(|| "grantpt".into())?;
    unlockpt(&master).sys(|| "unlockpt".into())?;
    let name = ptsname_r(&master).sys(|| "ptsname".into())?;
    Ok((master.into(), name))
}

/// process.consoleSize, set on the master before anyone reads it.
pub fn set_size(master: &OwnedFd, size: &oci_spec::runtime::Box) {
    let ws = libc::winsize {
        ws_row: size.height() as u16,
        ws_col: size.width() as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ on our pty master with a valid winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Sends the pty master to whoever listens on the console socket, with the
/// slave path as payload, as runc does.
pub fn send_master(socket: RawFd, master: &OwnedFd, name: &str) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .sys(|| "sending pty master over the console socket".into())?;
    Ok(())
}

/// Makes the slave the controlling terminal and stdio of this process, and
/// /dev/console of the container.
pub fn become_console(slave_path: &str) -> Result<()> {
    // A symlink planted at /dev/console must not redirect the bind
    // (CVE-2025-52565): replace it with a plain file.
    if std::fs::symlink_metadata("/dev/console").is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file("/dev/console").map_err(|e| Error::io("/dev/console", e))?;
    }
    if std::fs::symlink_metadata("/dev/console").is_err() {
        let _ = std::fs::File::create("/dev/console");
    }
    mount(
        Some(slave_path),
        "/dev/console",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .sys(|| format!("bind-mounting {slave_path} on /dev/console"))?;
    become_controlling(slave_path)
}

/// Makes the slave this process's stdio and controlling terminal (the
/// process must lead its own session).
pub fn become_controlling(slave_path: &str) -> Result<()> {
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path)
        .map_err(|e| Error::io(slave_path, e))?;
    let fd = slave.as_raw_fd();
    for target in 0..3 {
        // SAFETY: dup2 onto stdio with a valid open fd.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(Error::sys("dup2 pty slave", nix::Error::last()));
        }
    }
    // SAFETY: TIOCSCTTY on our own stdin, which is the slave; arg 0 = do not steal.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::sys("TIOCSCTTY", nix::Error::last()));
    }
    Ok(())
}

/// Gives the pty the size of our own terminal.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize; failures (not a tty) are harmless.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts our stdin in raw mode while alive, restoring it on drop.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing from a valid slice to an fd we hold.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if nix::Error::last() == nix::Error::EINTR {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

fn read_some(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: reading into a valid mutable slice from an fd we hold.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// Copies our stdin to the pty and the pty to our stdout until `step`
/// (which handles signals and reaping) reports init's exit code.
pub fn proxy(
    master: &OwnedFd,
    sfd: &mut nix::sys::signalfd::SignalFd,
    mut step: impl FnMut(&mut nix::sys::signalfd::SignalFd) -> Result<Option<i32>>,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::{AsFd, BorrowedFd};
    let _raw = RawMode::enter();
    let m = master.as_raw_fd();
    copy_winsize(0, m);
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    let mut master_open = true;
    loop {
        if let Some(code) = step(sfd)? {
            // Drain what the container wrote before it exited.
            nix::fcntl::fcntl(
                master,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .ok();
            if master_open {
                loop {
                    let n = read_some(m, &mut buf);
                    if n <= 0 || !write_all(1, &buf[..n as usize]) {
                        break;
                    }
                }
            }
            return Ok(code);
        }
        // SAFETY: fd 0 stays open for the whole life of this process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 1;
        if master_open {
            if ready[i] {
                let n = read_some(m, &mut buf);
                if n <= 0 || !write_all(1, &buf[..n as usize]) {
                    master_open = false;
                }
            }
            i += 1;
        }
        if stdin_open && ready[i] {
            let n = read_some(0, &mut buf);
            if n <= 0 || !write_all(m, &buf[..n as usize]) {
                stdin_open = false;
            }
        }
    }
}

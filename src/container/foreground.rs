//! What `run` and `exec` do in the foreground: forward signals to the
//! container's process, proxy its terminal, and wait for its exit status.

use crate::error::{Error, Result, SysContext};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A socketpair standing in for --console-socket when brig itself owns the
/// terminal: the container's side gets the second end.
pub fn console_pair() -> Result<(UnixStream, OwnedFd)> {
    let (a, b) = UnixStream::pair().map_err(|e| Error::Other(format!("socketpair: {e}")))?;
    Ok((a, OwnedFd::from(b)))
}

/// Waits for `pid` to exit: proxies the pty when there is one, forwards
/// signals, and returns the exit code (128+N for a signal N). With
/// `kill_after` (and no pty), a stop signal (SIGINT, SIGTERM, SIGHUP) is
/// forwarded and `pid` gets SIGKILL if it is still there that much later:
/// a job like a build's RUN must end when its user asks.
pub fn wait(
    pid: i32,
    forwarded: &SigSet,
    master: Option<&OwnedFd>,
    kill_after: Option<Duration>,
) -> Result<i32> {
    match master {
        Some(m) => {
            let mut sfd = signal_fd(forwarded)?;
            let master_fd = m.as_raw_fd();
            crate::linux::terminal::proxy(m, &mut sfd, |sfd| wait_step(sfd, pid, Some(master_fd)))
        }
        None => wait_loop(pid, forwarded, kill_after),
    }
}

pub fn recv_master(sock: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .sys(|| "receiving pty master".into())?;
    for c in msg.cmsgs().sys(|| "reading control message".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this fd in our table.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Other("no pty master received from init".into()))
}

/// Everything a user can send to `brig run` that should reach the
/// container instead; SIGCHLD tells us about exits.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        set.remove(s);
    }
    set
}

/// Handles one batch of signals: forwards them, reaps children, and
/// returns init's exit code once it has exited.
pub fn wait_step(sfd: &mut SignalFd, init: i32, tty: Option<RawFd>) -> Result<Option<i32>> {
    while let Some(info) = sfd.read_signal().sys(|| "reading signalfd".into())? {
        let sig = info.ssi_signo as i32;
        if sig == libc::SIGCHLD {
            continue;
        }
        if let (libc::SIGWINCH, Some(master)) = (sig, tty) {
            crate::linux::terminal::copy_winsize(0, master);
            continue;
        }
        if crate::interrupt::is_stop(sig) {
            crate::interrupt::note(sig);
        }
        // SAFETY: forwarding a signal to the container's init.
        unsafe { libc::kill(init, sig) };
    }
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == init => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == init => {
                return Ok(Some(128 + sig as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return Ok(None),
            Ok(_) => continue,
        }
    }
}

fn signal_fd(set: &SigSet) -> Result<SignalFd> {
    SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .sys(|| "signalfd".into())
}

fn wait_loop(init: i32, set: &SigSet, kill_after: Option<Duration>) -> Result<i32> {
    let mut sfd = signal_fd(set)?;
    let mut deadline: Option<Instant> = None;
    let mut killed = false;
    loop {
        if let Some(code) = wait_step(&mut sfd, init, None)? {
            return Ok(code);
        }
        if let (Some(grace), None) = (kill_after, deadline) {
            if crate::interrupt::received().is_some() {
                deadline = Some(Instant::now() + grace);
            }
        }
        let mut timeout = nix::poll::PollTimeout::NONE;
        if let (Some(d), false) = (deadline, killed) {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // SAFETY: killing the init we started and have not reaped.
                unsafe { libc::kill(init, libc::SIGKILL) };
                killed = true;
            } else {
                let ms = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
                timeout = nix::poll::PollTimeout::from(ms);
            }
        }
        let mut pfd = [nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, timeout);
    }
}

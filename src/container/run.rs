//! `run`: create and start in one process, then (unless detached) wait in
//! the foreground, forwarding signals and proxying a terminal.

use super::create::{self, Mode};
use super::store::Store;
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Point};
use crate::process::sync::Msg;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

pub struct Options {
    pub create: create::Options,
    pub detach: bool,
}

/// Runs the container; returns the exit code `brig run` should exit with.
pub fn run(store: &Store, id: &str, o: &Options) -> Result<i32> {
    let terminal = wants_terminal(&o.create)?;
    // Without a console socket, run owns the terminal: init sends the pty
    // master to our end of this pair.
    let own_tty = terminal && o.create.console_socket.is_none();
    if own_tty && o.detach {
        return Err(Error::Other(
            "process.terminal with --detach needs --console-socket".into(),
        ));
    }
    let (ours, theirs) = if own_tty {
        let (a, b) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::Other(format!("socketpair: {e}")))?;
        (Some(a), Some(OwnedFd::from(b)))
    } else {
        (None, None)
    };
    // The pid namespace may need an extra fork; as subreaper we still get
    // init's exit status. Signals are blocked before cloning so none is lost.
    nix::sys::prctl::set_child_subreaper(true).sys(|| "PR_SET_CHILD_SUBREAPER".into())?;
    let forwarded = forwarded_signals();
    if !o.detach {
        forwarded.thread_block().sys(|| "blocking signals".into())?;
    }
    let created = create::create(store, id, &o.create, Mode::Run, theirs)?;
    let init = created.init;
    let pid = init.pid;
    let record = created.container.state.clone();
    // Release the lock: others may `state`/`kill` the running container.
    drop(created.container);
    let master = match &ours {
        Some(sock) => Some(recv_master(sock)?),
        None => None,
    };
    crate::logging::step("start");
    init.channel.send(&Msg::Start)?;
    // The channel closes on exec; an error before that is init's last word.
    if let Some(Msg::Error(e)) = init.channel.recv()? {
        let _ = cleanup(store, id);
        return Err(Error::Init(e));
    }
    hooks::run_logged(
        record.hooks.as_ref(),
        Point::Poststart,
        &record.to_oci_json(super::Status::Running),
    );
    if o.detach {
        return Ok(0);
    }
    let code = match &master {
        Some(m) => {
            let mut sfd = signal_fd(&forwarded)?;
            let master_fd = m.as_raw_fd();
            crate::linux::terminal::proxy(m, &mut sfd, |sfd| wait_step(sfd, pid, Some(master_fd)))
        }
        None => wait_loop(pid, &forwarded),
    };
    crate::logging::step("exited");
    let _ = cleanup(store, id);
    crate::logging::step("deleted");
    code
}

fn wants_terminal(o: &create::Options) -> Result<bool> {
    let b = crate::spec::Bundle::load(&o.bundle)?;
    Ok(b.spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false))
}

fn recv_master(sock: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
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
fn forwarded_signals() -> SigSet {
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

fn wait_loop(init: i32, set: &SigSet) -> Result<i32> {
    let mut sfd = signal_fd(set)?;
    loop {
        if let Some(code) = wait_step(&mut sfd, init, None)? {
            return Ok(code);
        }
        let mut pfd = [nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE);
    }
}

/// run removes what it made once the container has exited, as runc does.
fn cleanup(store: &Store, id: &str) -> Result<()> {
    super::delete::delete(store, id, true)
}

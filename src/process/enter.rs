//! `exec`'s process: born in the container's pid namespace, it joins the
//! container's other namespaces and cgroup, then becomes the process spec.
//!
//! The parent enters the pid namespace first (setns on a pidfd only sets
//! where its children are born), so one clone suffices; the child joins the
//! rest with a single setns(pidfd, flags), which the kernel applies
//! atomically, the user namespace first.

use super::clone::{fork_with, Forked};
use super::finish;
use super::sync::{self, Channel, Msg};
use crate::cgroups::{Cgroup, Placement};
use crate::error::{Error, Result, SysContext};
use crate::linux::pidfd::Pidfd;
use crate::linux::{procfs, terminal};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub struct Enter<'a> {
    pub init: &'a Pidfd,
    pub init_pid: i32,
    pub process: &'a Process,
    /// The container's seccomp filter: it applies to exec'd processes too.
    pub seccomp: Option<&'a crate::linux::seccomp::Filter>,
    pub cgroup: Option<&'a dyn Cgroup>,
    /// A connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
}

pub struct Entered {
    pub pid: i32,
    /// Closes when the process has exec'd; carries its error if it failed.
    pub channel: Channel,
}

/// The namespaces of `pid` that differ from ours: the ones to join.
fn differing(pid: i32) -> CloneFlags {
    let me = std::process::id() as i32;
    [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("net", CloneFlags::CLONE_NEWNET),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
    ]
    .into_iter()
    .filter(|(name, _)| procfs::namespace_id(pid, name) != procfs::namespace_id(me, name))
    .fold(CloneFlags::empty(), |acc, (_, f)| acc | f)
}

fn setns(pidfd: &Pidfd, flags: CloneFlags) -> Result<()> {
    nix::sched::setns(pidfd.as_fd(), flags)
        .sys(|| format!("joining the container's namespaces ({flags:?})"))
}

pub fn enter(e: &Enter) -> Result<Entered> {
    let mut flags = differing(e.init_pid);
    if flags.contains(CloneFlags::CLONE_NEWPID) {
        // Joining a pid namespace takes CAP_SYS_ADMIN where we stand: an
        // unprivileged user has it only inside the container's own user
        // namespace, so the parent goes in there first (it owns it, and
        // everything it touches afterwards is the user's own).
        let mut first = CloneFlags::CLONE_NEWPID;
        if flags.contains(CloneFlags::CLONE_NEWUSER) && !nix::unistd::geteuid().is_root() {
            first |= CloneFlags::CLONE_NEWUSER;
            flags -= CloneFlags::CLONE_NEWUSER;
        }
        setns(e.init, first)?;
    }
    let (parent, child) = sync::pair()?;
    let place = Placement::plan(e.cgroup, true, false)?;
    let into = place.clone_into.as_ref().map(|fd| fd.as_raw_fd());
    match fork_with(0, into)? {
        Forked::Child => {
            drop(parent);
            let err = match child_main(e, flags - CloneFlags::CLONE_NEWPID, &place, &child) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = child.send(&Msg::Error(err.to_string()));
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        Forked::Parent(pid) => {
            drop(child);
            let fail = |err: Error| {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                Err(err)
            };
            if place.parent_adds {
                if let Some(cg) = e.cgroup {
                    if let Err(err) = cg.add(pid) {
                        return fail(err);
                    }
                }
                if let Err(err) = parent.send(&Msg::Joined) {
                    return fail(err);
                }
            }
            drop(place);
            match parent.recv() {
                Ok(Some(Msg::Ready)) => Ok(Entered {
                    pid,
                    channel: parent,
                }),
                Ok(Some(Msg::Error(msg))) => fail(Error::Other(msg)),
                Ok(other) => fail(Error::Other(format!("exec process: unexpected {other:?}"))),
                Err(err) => fail(err),
            }
        }
    }
}

fn child_main(
    e: &Enter,
    flags: CloneFlags,
    place: &Placement,
    ch: &Channel,
) -> Result<std::convert::Infallible> {
    // Until exec, this process holds brig's binary as /proc/self/exe: no
    // process of the container may open or trace it (CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).sys(|| "PR_SET_DUMPABLE".into())?;
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    // SAFETY: restoring the default disposition of SIGPIPE, which Rust ignores.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let lsm_attr = finish::open_lsm_attr(e.process)?;
    // In the container's cgroup before its cgroup namespace is joined.
    place.join_self()?;
    if place.parent_adds {
        match ch.recv()? {
            Some(Msg::Joined) => {}
            other => {
                return Err(Error::Init(format!(
                    "waiting for the cgroup, got {other:?}"
                )))
            }
        }
    }
    if !flags.is_empty() {
        setns(e.init, flags)?;
    }
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        // Root of the container's user namespace, where its maps allow it.
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }
    if let Some(sock) = &e.console {
        nix::unistd::setsid().sys(|| "setsid".into())?;
        let (master, slave) = terminal::open_pty()?;
        terminal::send_master(sock.as_raw_fd(), &master, &slave)?;
        terminal::become_controlling(&slave)?;
    }
    let mut prepared = finish::prepare(e.process, e.seccomp, lsm_attr, e.preserve_fds)?;
    prepared.keep_open(ch.raw());
    ch.send(&Msg::Ready)?;
    Err(finish::finish(prepared))
}

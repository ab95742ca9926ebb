//! `exec`'s process: it is born inside the container, in all its
//! namespaces and cgroups, already confined, holding nothing of the host's.
//!
//! A container process allowed to ptrace (CAP_SYS_PTRACE) can open the fds
//! of, and attach to, anything in its pid namespace. So nothing of brig's
//! may sit there privileged or holding host fds: neither a process born in
//! the pid namespace that then enters the rest (it would be in the host's
//! mount namespace, with brig's fds and all of root's capabilities), nor
//! one that confines itself there. A helper, born in the container's
//! cgroup but in the host's pid namespace (out of the container's sight),
//! closes every fd it does not pass on, joins the container's namespaces
//! with one setns(pidfd, flags) (which the kernel applies atomically, the
//! user namespace first), takes on the process's identity, capabilities
//! and seccomp filter, and only then forks the process, which is born
//! inside with all of it. The helper reports its pid and exits; `exec`,
//! a child subreaper, inherits the process and waits for it.

use super::clone::{fork_plain, fork_with, Forked};
use super::finish;
use super::spawn::OnListener;
use super::sync::{self, Channel, Msg};
use crate::cgroups::{Dirs, Placement};
use crate::error::{Error, Result, SysContext};
use crate::linux::pidfd::Pidfd;
use crate::linux::{fds, numa, procfs, terminal};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

pub struct Enter<'a> {
    pub init: &'a Pidfd,
    pub init_pid: i32,
    pub process: &'a Process,
    /// The container's seccomp filter: it applies to exec'd processes too.
    pub seccomp: Option<&'a crate::linux::seccomp::Filter>,
    /// Where in the container's cgroups the process goes.
    pub cgroup: Option<Dirs>,
    /// A connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub preserve_fds: i32,
    /// What the container's init got and an exec'd process gets too:
    /// linux.personality, and process.oomScoreAdj where the process has
    /// none of its own.
    pub personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    pub oom_score_adj: Option<i32>,
    /// linux.memoryPolicy of the container.
    pub memory_policy: Option<&'a oci_spec::runtime::LinuxMemoryPolicy>,
    /// Called (with the process's pid) with the listener of a seccomp
    /// filter that has notify rules: hands it to the agent.
    pub on_listener: OnListener<'a>,
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
    let flags = differing(e.init_pid);
    // The process is the helper's child; once the helper is gone, ours.
    nix::sys::prctl::set_child_subreaper(true).sys(|| "PR_SET_CHILD_SUBREAPER".into())?;
    let (parent, child) = sync::pair()?;
    let place = Placement::into_dirs(e.cgroup.clone(), false)?;
    let into = place.clone_into.as_ref().map(|fd| fd.as_raw_fd());
    let helper = match fork_with(0, into)? {
        Forked::Child => {
            drop(parent);
            let err = match helper_main(e, flags, &place, &child) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = child.send(&Msg::Error(err.to_string()));
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        Forked::Parent(pid) => pid,
    };
    drop(child);
    let reap = |pid: i32, kill_it: bool| {
        if kill_it {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    };
    // Never signal a pid already reaped: it may be someone else's by now.
    let helper_gone = std::cell::Cell::new(false);
    let fail = |pid: Option<i32>, err: Error| {
        if !helper_gone.get() {
            reap(helper, true);
        }
        if let Some(p) = pid {
            reap(p, true);
        }
        Err(err)
    };
    if place.parent_adds {
        if let Some(cg) = &e.cgroup {
            if let Err(err) = cg.add(helper) {
                return fail(None, err);
            }
        }
        if let Err(err) = parent.send(&Msg::Joined) {
            return fail(None, err);
        }
    }
    drop(place);
    // The helper's Pid and the process's Ready come from two processes:
    // either may arrive first.
    let (mut pid, mut ready, mut listener) = (None, false, None);
    while pid.is_none() || !ready {
        match parent.recv_fd() {
            Ok(Some((Msg::Listener, Some(fd)))) => listener = Some(fd),
            Ok(Some((Msg::Pid(p), _))) => {
                reap(helper, false);
                helper_gone.set(true);
                pid = Some(p);
            }
            Ok(Some((Msg::Ready, _))) => ready = true,
            Ok(Some((Msg::Error(msg), _))) => return fail(pid, Error::Other(msg)),
            Ok(other) => {
                let other = other.map(|(m, _)| m);
                return fail(
                    pid,
                    Error::Other(format!("exec process: unexpected {other:?}")),
                );
            }
            Err(err) => return fail(pid, err),
        }
        // The helper sends its listener before the process's Pid; the
        // process waits (in a notified syscall, if any) until the agent
        // has it.
        if let Err(err) = super::spawn::hand_over_listener(e.on_listener, pid, &mut listener) {
            return fail(pid, err);
        }
    }
    Ok(Entered {
        pid: pid.unwrap_or_default(),
        channel: parent,
    })
}

/// The first fd that is not stdio or passed on with --preserve-fds.
fn first_own_fd(e: &Enter) -> RawFd {
    3 + e.preserve_fds.max(0)
}

/// The helper: in the container's cgroups, then (holding only what the
/// process needs) in its namespaces and confinement; forks the process and
/// leaves.
fn helper_main(
    e: &Enter,
    flags: CloneFlags,
    place: &Placement,
    ch: &Channel,
) -> Result<std::convert::Infallible> {
    // Until exec, brig's binary is /proc/self/exe here and in the child,
    // which inherits this: no process of the container may open it through
    // dumpability (CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).sys(|| "PR_SET_DUMPABLE".into())?;
    // Inside the mount namespace the log's path names a container file.
    crate::logging::detach_file();
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    // SAFETY: restoring the default disposition of SIGPIPE, which Rust ignores.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let affinity = e.process.exec_cpu_affinity().as_ref();
    if let Some(cpus) = affinity.and_then(|a| a.initial().as_deref()) {
        numa::set_affinity("process.execCPUAffinity.initial", cpus)?;
    }
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
    // Inside the container's cgroups (and its cpuset) now.
    if let Some(cpus) = affinity.and_then(|a| a.cpu_affinity_final().as_deref()) {
        numa::set_affinity("process.execCPUAffinity.final", cpus)?;
    }
    if let Some(policy) = e.memory_policy {
        numa::set_memory_policy(policy)?;
    }
    // Through the host's procfs, before the container's replaces it.
    finish::set_oom_score_adj(e.process.oom_score_adj().or(e.oom_score_adj))?;
    // The LSM attr files of this process (the child inherits what is armed
    // through them), through the host's procfs: the container's shows
    // only its own pid namespace, where the helper is not.
    let lsm = {
        let proc = std::fs::File::open("/proc").map_err(|e| Error::io("/proc", e))?;
        finish::open_lsm_attrs(e.process, proc.as_fd())?
    };
    let mut keep = vec![ch.raw()];
    keep.extend(e.console.as_ref().map(|c| c.as_raw_fd()));
    keep.extend(lsm.iter().flat_map(|l| l.fds()));
    let mut entering = keep.clone();
    entering.push(e.init.as_fd().as_raw_fd());
    fds::close_all_except(first_own_fd(e), &entering)?;
    if !flags.is_empty() {
        setns(e.init, flags)?;
    }
    // The pidfd led to the container's init: nothing needs it any more.
    fds::close_all_except(first_own_fd(e), &keep)?;
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        crate::linux::user::become_namespace_root();
    }
    if let Some(p) = e.personality {
        crate::linux::sched::set_personality(p)?;
    }
    // An exec'd process's cwd must exist: it is the container's, made by
    // its init if at all.
    let mut prepared = finish::prepare(e.process, e.seccomp, lsm, e.preserve_fds, false)?;
    let mut kept = vec![ch.raw()];
    kept.extend(e.console.as_ref().map(|c| c.as_raw_fd()));
    prepared.confine(&kept, ch)?;
    match fork_plain()? {
        Forked::Child => {
            let err = match child_main(e, ch, prepared) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = ch.send(&Msg::Error(err.to_string()));
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        Forked::Parent(pid) => {
            let _ = ch.send(&Msg::Pid(pid));
            // SAFETY: the helper leaves without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
    }
}

/// The process, born confined: its terminal, then exec.
fn child_main(
    e: &Enter,
    ch: &Channel,
    prepared: finish::Prepared,
) -> Result<std::convert::Infallible> {
    // Its own session and process group, as init's, so that signals to
    // the container's init's group do not reach it and a terminal can
    // become its controlling one.
    nix::unistd::setsid().sys(|| "setsid".into())?;
    if let Some(sock) = &e.console {
        // As the process's own user, so the pty is its own.
        let (master, slave) = terminal::open_pty()?;
        if let Some(size) = e.process.console_size() {
            terminal::set_size(&master, &size);
        }
        terminal::send_master(sock.as_raw_fd(), &master, &slave)?;
        terminal::become_controlling(&slave)?;
    }
    ch.send(&Msg::Ready)?;
    Err(finish::finish(prepared))
}

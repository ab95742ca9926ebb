//! clone3(2) used like fork: the child gets its namespaces at birth.

use crate::error::{Error, Result};
use nix::errno::Errno;
use std::os::fd::RawFd;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub enum Forked {
    Parent(i32),
    Child,
}

/// Forks with `flags` (CLONE_NEW*). With no stack given the child runs on a
/// copy of ours, exactly like fork; brig is single-threaded, so no lock can
/// be held by a thread that does not exist in the child.
/// With `cgroup` (an open cgroup2 directory) the child is born in that
/// cgroup (CLONE_INTO_CGROUP), so no moment of it runs outside.
pub fn fork_with(flags: u64, cgroup: Option<RawFd>) -> Result<Forked> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..Default::default()
    };
    // SAFETY: clone3 with a valid, fully initialised clone_args and no stack:
    // fork semantics in a single-threaded process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent(pid as i32)),
        _ => Err(Error::sys(
            format!("clone3 (flags {flags:#x})"),
            Errno::last(),
        )),
    }
}

/// A plain fork through the clone system call, for a process that may
/// already run under the container's seccomp filter: profiles such as
/// Docker's answer clone3 with ENOSYS but allow clone without namespace
/// flags.
pub fn fork_plain() -> Result<Forked> {
    // SAFETY: clone with only SIGCHLD and no stack has fork semantics in a
    // single-threaded process.
    let r = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    match r {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent(pid as i32)),
        _ => Err(Error::sys("fork", Errno::last())),
    }
}

//! The last steps shared by a container's init and every process `exec`
//! starts in it: everything that can fail is resolved in [`prepare`] while
//! the caller can still report it; [`finish`] switches identity, confines
//! and execs.

use super::exec;
use crate::error::{Error, Result, SysContext};
use crate::linux::{capabilities, lsm, paths, rlimits, sched, seccomp, user};
use oci_spec::runtime::Process;
use std::os::fd::{AsFd, RawFd};
use std::path::PathBuf;

pub struct Prepared<'a> {
    process: Process,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<String>,
    caps: Option<capabilities::Plan>,
    seccomp: Option<&'a seccomp::Filter>,
    /// The host's /proc/self/attr, opened before the container's root was
    /// entered, when an LSM label must be armed.
    lsm_attr: Option<std::fs::File>,
    preserve_fds: i32,
    /// The caller's channel, which must stay open (close-on-exec) so that
    /// it closes, or carries the error, when exec succeeds or fails.
    keep_fd: Option<RawFd>,
}

impl Prepared<'_> {
    pub fn keep_open(&mut self, fd: RawFd) {
        self.keep_fd = Some(fd);
    }
}

/// Opens the host's /proc/self/attr if the process asks for an LSM label;
/// call it while the host's /proc is still the one at /proc.
pub fn open_lsm_attr(p: &Process) -> Result<Option<std::fs::File>> {
    let wants = p.apparmor_profile().as_ref().is_some_and(|a| !a.is_empty())
        || p.selinux_label().as_ref().is_some_and(|l| !l.is_empty());
    if !wants {
        return Ok(None);
    }
    std::fs::File::open("/proc/self/attr")
        .map(Some)
        .map_err(|e| Error::io("/proc/self/attr", e))
}

/// process.cwd is resolved inside the container's root, never through a
/// magic link: `/proc/self/fd/N` naming one of our host fds would leave the
/// process outside the container (CVE-2024-21626).
fn chdir_cwd(p: &Process) -> Result<()> {
    let cwd = p.cwd();
    let what = || format!("process.cwd {}", cwd.display());
    let root = std::fs::File::open("/").map_err(|e| Error::io("/", e))?;
    let dir = match paths::open_in_root(root.as_fd(), cwd, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => paths::mkdir_all_in_root(root.as_fd(), cwd, 0o755)?,
        Err(e) => return Err(Error::sys(what(), e)),
    };
    nix::unistd::fchdir(&dir).sys(what)
}

/// Run inside the container (its root, its namespaces), still privileged.
/// `seccomp` is the container's filter, compiled when its bundle was loaded.
pub fn prepare<'a>(
    process: &Process,
    seccomp: Option<&'a seccomp::Filter>,
    lsm_attr: Option<std::fs::File>,
    preserve_fds: i32,
) -> Result<Prepared<'a>> {
    chdir_cwd(process)?;
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Other("process.args must name a program".into()))?;
    let env = process.env().clone().unwrap_or_default();
    let program = exec::find_program(arg0, &env)?;
    let env = exec::with_home(&env, process.user().uid());
    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    // These survive exec; set now, while still privileged.
    if let Some(io) = process.io_priority() {
        sched::set_io_priority(io)?;
    }
    if let Some(s) = process.scheduler() {
        sched::set_scheduler(s)?;
    }
    let caps = process.capabilities().as_ref().map(capabilities::Plan::new);
    if let Some(c) = &caps {
        c.drop_bounding()?;
    }
    Ok(Prepared {
        process: process.clone(),
        program,
        args,
        env,
        caps,
        seccomp,
        lsm_attr,
        preserve_fds,
        keep_fd: None,
    })
}

/// Every fd but stdio and the preserved ones closes on exec, whatever brig
/// inherited from its caller. Only `keep` survives until exec itself: the
/// others close now, or a program path like /proc/self/fd/N/../.. would be
/// resolved through a host directory brig holds (CVE-2024-21626).
fn seal_fds(preserve: i32, keep: Option<RawFd>) -> Result<()> {
    let first = 3 + preserve.max(0) as u32;
    let close = |from: u32, to: u32| {
        // SAFETY: closes fds nothing in this process uses any more.
        (from <= to).then(|| unsafe { libc::syscall(libc::SYS_close_range, from, to, 0) })
    };
    match keep
        .and_then(|k| u32::try_from(k).ok())
        .filter(|&k| k >= first)
    {
        Some(k) => {
            close(first, k - 1);
            close(k + 1, u32::MAX);
        }
        None => {
            close(first, u32::MAX);
        }
    }
    // SAFETY: close_range with CLOEXEC only marks fds; it closes nothing now.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(Error::sys("close_range", nix::Error::last()));
    }
    for fd in 3..first as i32 {
        // SAFETY: clearing FD_CLOEXEC on an fd number the caller asked us to pass on.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

/// Switches to the process's identity and confinement and execs. Only
/// returns on failure.
pub fn finish(p: Prepared<'_>) -> Error {
    match finish_inner(p) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

fn finish_inner(p: Prepared<'_>) -> Result<std::convert::Infallible> {
    let process = &p.process;
    if let Some(attr) = &p.lsm_attr {
        let apparmor = process
            .apparmor_profile()
            .as_deref()
            .filter(|a| !a.is_empty());
        let selinux = process.selinux_label().as_deref().filter(|l| !l.is_empty());
        lsm::arm_exec(attr, apparmor, selinux)?;
    }
    // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, which the
    // uid switch and capset below may drop: load it now, as runc does, and
    // the profile must allow them. With no_new_privs, load it just before
    // exec, so that no setup syscall is filtered.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if let Some(f) = p.seccomp.filter(|_| !nnp) {
        f.load()?;
    }
    // Keep the permitted set across the uid switch; capset trims it after.
    nix::sys::prctl::set_keepcaps(true).sys(|| "PR_SET_KEEPCAPS".into())?;
    user::switch(process.user())?;
    nix::sys::prctl::set_keepcaps(false).sys(|| "PR_SET_KEEPCAPS".into())?;
    if let Some(c) = &p.caps {
        c.apply()?;
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs().sys(|| "PR_SET_NO_NEW_PRIVS".into())?;
    }
    user::set_umask(process.user());
    seal_fds(p.preserve_fds, p.keep_fd)?;
    crate::logging::step("exec");
    if let Some(f) = p.seccomp.filter(|_| nnp) {
        f.load()?;
    }
    Err(exec::exec(&p.program, &p.args, &p.env))
}

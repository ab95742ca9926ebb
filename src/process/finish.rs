//! The last steps shared by a container's init and every process `exec`
//! starts in it: everything that can fail is resolved in [`prepare`] and
//! [`Prepared::confine`] while the caller can still report it; [`finish`]
//! execs.
//!
//! `confine` (host fds closed, identity switched, capabilities and seccomp
//! applied) runs before init says it is ready, so the created init that
//! waits for `start` holds no more privilege than the container itself: a
//! container process allowed to ptrace can reach it.

use super::exec;
use super::sync::{Channel, Msg};
use crate::error::{Error, Result, SysContext};
use crate::linux::{capabilities, fds, lsm, paths, rlimits, sched, seccomp, user};
use oci_spec::runtime::Process;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::PathBuf;

pub struct Prepared<'a> {
    process: Process,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<String>,
    caps: Option<capabilities::Plan>,
    seccomp: Option<&'a seccomp::Filter>,
    /// This process's LSM attr files, when a label must be armed.
    lsm: Option<lsm::ExecAttrs>,
    preserve_fds: i32,
    /// The filter is already loaded (without no_new_privs or with notify
    /// rules, by `confine`; with no_new_privs, before startContainer hooks):
    /// exec must not load it twice.
    seccomp_loaded: bool,
}

/// Opens this process's LSM attr files under `proc` (the root of a procfs
/// of its own pid namespace) if the process asks for a label.
pub fn open_lsm_attrs(p: &Process, proc: BorrowedFd) -> Result<Option<lsm::ExecAttrs>> {
    lsm::open_exec_attrs(
        proc,
        p.apparmor_profile().as_deref(),
        p.selinux_label().as_deref(),
    )
}

/// Through the procfs at /proc, which must still be the host's (or one
/// showing this process): inherited by what this process forks and execs.
pub fn set_oom_score_adj(adj: Option<i32>) -> Result<()> {
    if let Some(adj) = adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("/proc/self/oom_score_adj", e))?;
    }
    Ok(())
}

/// process.cwd is resolved inside the container's root, never through a
/// magic link: `/proc/self/fd/N` naming one of our host fds would leave the
/// process outside the container (CVE-2024-21626).
/// A missing cwd is made (`make`, for init: runc does so) or an error
/// (for exec, as in runc: chdir fails).
fn chdir_cwd(p: &Process, make: bool) -> Result<()> {
    let cwd = p.cwd();
    let what = || format!("process.cwd {}", cwd.display());
    let root = std::fs::File::open("/").map_err(|e| Error::io("/", e))?;
    let dir = match paths::open_in_root(root.as_fd(), cwd, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) if make => paths::mkdir_all_in_root(root.as_fd(), cwd, 0o755)?,
        Err(e) => return Err(Error::sys(format!("{}: chdir", what()), e)),
    };
    nix::unistd::fchdir(&dir).sys(what)
}

/// Run inside the container (its root, its namespaces), still privileged.
/// `seccomp` is the container's filter, compiled when its bundle was loaded.
pub fn prepare<'a>(
    process: &Process,
    seccomp: Option<&'a seccomp::Filter>,
    lsm: Option<lsm::ExecAttrs>,
    preserve_fds: i32,
    make_cwd: bool,
) -> Result<Prepared<'a>> {
    chdir_cwd(process, make_cwd)?;
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
        lsm,
        preserve_fds,
        seccomp_loaded: false,
    })
}

/// Every fd but stdio and the preserved ones closes on exec, whatever brig
/// inherited from its caller. Only `keep` survives until exec itself: the
/// others close now, or a program path like /proc/self/fd/N/../.. would be
/// resolved through a host directory brig holds (CVE-2024-21626). Runs
/// before the seccomp filter, which need not allow close_range.
fn seal_fds(preserve: i32, keep: &[RawFd]) -> Result<()> {
    let first = 3 + preserve.max(0);
    fds::close_all_except(first, keep)?;
    fds::cloexec_from(first)?;
    for fd in 3..first {
        // SAFETY: clearing FD_CLOEXEC on an fd number the caller asked us to pass on.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

impl Prepared<'_> {
    /// With no_new_privs, loads the filter now rather than at exec (for
    /// what runs in between: the startContainer hooks).
    pub fn load_late_seccomp(&mut self) -> Result<()> {
        let nnp = self.process.no_new_privileges().unwrap_or(false);
        if let (true, false, Some(f)) = (nnp, self.seccomp_loaded, self.seccomp) {
            f.load()?;
            self.seccomp_loaded = true;
        }
        Ok(())
    }

    /// Arms the LSM label, closes every fd but stdio, the preserved ones
    /// and `keep`, and takes on the process's identity, capabilities,
    /// no_new_privs and (without no_new_privs) its seccomp filter. What is
    /// left between this and [`finish`] must be allowed by that filter.
    /// A filter with notify rules is loaded here in any case, and its
    /// listener sent to `parent` for the agent.
    pub fn confine(&mut self, keep: &[RawFd], parent: &Channel) -> Result<()> {
        let process = &self.process;
        if let Some(attrs) = self.lsm.take() {
            attrs.arm()?;
        }
        seal_fds(self.preserve_fds, keep)?;
        user::give_stdio_to(process.user().uid())?;
        // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, which
        // the uid switch and capset below may drop: load it now, as runc
        // does, and the profile must allow what follows. With no_new_privs,
        // load it just before exec, so that no setup syscall is filtered;
        // but a filter with notify rules now, while the parent is there to
        // take its listener to the agent.
        let nnp = process.no_new_privileges().unwrap_or(false);
        if let Some(f) = self.seccomp.filter(|f| !nnp || f.listener.is_some()) {
            let listener = f.load()?;
            self.seccomp_loaded = true;
            if let Some(fd) = listener {
                // Nothing between the load and this sendmsg: a notified
                // syscall here would wait for an agent that has no listener.
                parent.send_fd(&Msg::Listener, fd.as_fd())?;
            }
        }
        // Keep the permitted set across the uid switch; capset trims it after.
        nix::sys::prctl::set_keepcaps(true).sys(|| "PR_SET_KEEPCAPS".into())?;
        user::switch(process.user())?;
        nix::sys::prctl::set_keepcaps(false).sys(|| "PR_SET_KEEPCAPS".into())?;
        if let Some(c) = &self.caps {
            c.apply()?;
        }
        if nnp {
            nix::sys::prctl::set_no_new_privs().sys(|| "PR_SET_NO_NEW_PRIVS".into())?;
        }
        user::set_umask(process.user());
        Ok(())
    }
}

/// Execs the program of a [`Prepared::confine`]d process. Only returns on
/// failure.
pub fn finish(p: Prepared<'_>) -> Error {
    crate::logging::step("exec");
    // Only a no_new_privs filter without notify rules can still be unloaded
    // here: confine loads every other one.
    if let Some(f) = p.seccomp.filter(|_| !p.seccomp_loaded) {
        if let Err(e) = f.load() {
            return e;
        }
    }
    exec::exec(&p.program, &p.args, &p.env)
}

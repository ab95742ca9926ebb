//! The container's init: runs in the cloned child, builds the container
//! around itself step by step, waits to be started, then execs.

use super::fifo::InitEnd;
use super::finish;
use super::spawn::{Launch, NsPlan, Wait};
use super::sync::{Channel, Msg};
use crate::cgroups::Placement;
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Point};
use crate::linux::bind_sources::BindSources;
use crate::linux::{fds, rootfs, sched, terminal};
use crate::logging;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use oci_spec::runtime::Spec;
use oci_spec::runtime::{LinuxNamespaceType, Process};
use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// A pid namespace entered by setns/unshare only applies to children.
pub(super) fn needs_extra_fork(plan: &NsPlan) -> bool {
    plan.needs_setns() && plan.has(LinuxNamespaceType::Pid)
}

/// How far init got, for reporting its error in the one right place.
#[derive(Default)]
struct Progress {
    past_ready: bool,
    /// The error already went to `start` through the exec fifo.
    told_start: std::cell::Cell<bool>,
}

pub(super) fn main(
    l: &Launch,
    plan: &NsPlan,
    place: &Placement,
    ch: Channel,
    bind_sources: BindSources,
) -> ! {
    let mut progress = Progress::default();
    let err = match run(l, plan, place, &ch, bind_sources, &mut progress) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    // Before Ready the parent reports the error; after it, `create` is gone
    // and `start` (through the fifo) or the container's own stderr is the
    // only witness.
    if !progress.told_start.get() && ch.send(&Msg::Error(err.to_string())).is_err() {
        eprintln!("brig: container init: {err}");
    }
    let code = if progress.past_ready { 127 } else { 1 };
    // SAFETY: _exit skips destructors and atexit handlers, which belong to the parent's copy.
    unsafe { libc::_exit(code) }
}

/// Whether the spec mounts a procfs at /proc, through which init can reach
/// its own fds after pivot_root.
fn mounts_proc(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == std::path::Path::new("/proc") && m.typ().as_deref() == Some("proc")
    })
}

fn reset_signals() {
    let _ = SigSet::empty().thread_set_mask();
    // Rust ignores SIGPIPE; a program we exec must not inherit that.
    // SAFETY: restoring the default disposition of a signal is always sound.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// The first fd that is not stdio or passed on with --preserve-fds.
fn first_own_fd(l: &Launch) -> RawFd {
    3 + l.preserve_fds.max(0)
}

/// What init needs of everything it inherits, once its namespaces are
/// entered: the channel and the console socket.
fn kept_after_birth(l: &Launch, ch: &Channel) -> Vec<RawFd> {
    let mut keep = vec![ch.raw()];
    keep.extend(l.console.as_ref().map(|c| c.as_raw_fd()));
    keep
}

/// `sources`: the bind sources' fds, kept until the rootfs is built.
fn enter_namespaces(
    l: &Launch,
    plan: &NsPlan,
    place: &Placement,
    ch: &Channel,
    sources: &[RawFd],
) -> Result<()> {
    let new_user = plan.new.contains(CloneFlags::CLONE_NEWUSER);
    // The parent sends this right after clone, before anything else.
    if place.parent_adds && !place.deferred {
        match ch.recv()? {
            Some(Msg::Joined) => {}
            other => {
                return Err(Error::Init(format!(
                    "waiting for the cgroup, got {other:?}"
                )))
            }
        }
    }
    if plan.needs_setns() {
        for j in &plan.joins {
            j.enter()?;
        }
        if plan
            .joins
            .iter()
            .any(|j| j.kind == LinuxNamespaceType::User)
        {
            // Root of the joined namespace (its maps allow that or nothing):
            // the host's ids are unmapped there, and what init makes in its
            // new namespaces would fail with EOVERFLOW.
            crate::linux::user::become_namespace_root();
        }
        // With the extra fork, the real init lands in a pid namespace that
        // others may already share (a pod's): it inherits none of these.
        let mut keep = kept_after_birth(l, ch);
        keep.extend_from_slice(sources);
        fds::close_all_except(first_own_fd(l), &keep)?;
        nix::sched::unshare(plan.clone_flags()).sys(|| "unshare namespaces".into())?;
    } else if !plan.unshared.is_empty() {
        nix::sched::unshare(plan.unshared).sys(|| "unshare namespaces".into())?;
    }
    if new_user {
        ch.send(&Msg::MapsNeeded)?;
        match ch.recv()? {
            Some(Msg::MapsDone) => {}
            other => return Err(Error::Init(format!("waiting for id maps, got {other:?}"))),
        }
        // Become root of the new namespace, where the spec's maps allow it.
        crate::linux::user::become_namespace_root();
    }
    enter_time_namespace(l, plan)?;
    // Until exec, brig's binary is /proc/self/exe here: no process of the
    // container without CAP_SYS_PTRACE may open it, or read init's fds.
    // Not before: the parent writes our id maps, which needs us dumpable.
    nix::sys::prctl::set_dumpable(false).sys(|| "PR_SET_DUMPABLE".into())?;
    if plan.late_cgroupns && !place.deferred {
        unshare_cgroupns()?;
    }
    if needs_extra_fork(plan) {
        match super::clone::fork_with(0, None)? {
            super::clone::Forked::Parent(pid) => {
                let _ = ch.send(&Msg::Pid(pid));
                // SAFETY: the intermediate process leaves without running the parent's destructors.
                unsafe { libc::_exit(0) }
            }
            super::clone::Forked::Child => {}
        }
    }
    Ok(())
}

fn unshare_cgroupns() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).sys(|| "unshare cgroup namespace".into())
}

/// With a deferred placement: waits until the parent has made and
/// configured the container's cgroup, then joins it (and only then makes a
/// cgroup namespace, which is rooted wherever init is).
fn join_deferred_cgroup(plan: &NsPlan, place: &Placement, ch: &Channel) -> Result<()> {
    match ch.recv()? {
        Some(Msg::CgroupReady) => {}
        // The parent gave up (or was killed, and our death signal is on its
        // way); a line from here would only add noise to its own.
        // SAFETY: _exit skips the parent's destructors and atexit work.
        None => unsafe { libc::_exit(1) },
        other => {
            return Err(Error::Init(format!(
                "waiting for the cgroup, got {other:?}"
            )))
        }
    }
    place.join_later()?;
    logging::step("init: in its cgroup");
    if plan.late_cgroupns {
        unshare_cgroupns()?;
    }
    Ok(())
}

/// Time namespaces take their offsets between unshare and the first process
/// entering them; init then enters the namespace itself.
fn enter_time_namespace(l: &Launch, plan: &NsPlan) -> Result<()> {
    let time = crate::linux::namespaces::clone_flag(LinuxNamespaceType::Time);
    if !plan.new.contains(time) {
        return Ok(());
    }
    nix::sched::unshare(time).sys(|| "unshare time namespace".into())?;
    let offsets = l
        .bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone());
    let mut text = String::new();
    for (clock, off) in offsets.iter().flatten() {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::Other(format!(
                "linux.timeOffsets: unknown clock {clock:?}"
            )));
        }
        text += &format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        );
    }
    if !text.is_empty() {
        // Becoming root of a user namespace made init non-dumpable, and
        // /proc/self then belongs to the host's root. Briefly dumpable again
        // is safe here: init holds no host fd and is alone in its pid
        // namespace (or outside the one it will fork into).
        nix::sys::prctl::set_dumpable(true).sys(|| "PR_SET_DUMPABLE".into())?;
        std::fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| Error::io("/proc/self/timens_offsets", e))?;
    }
    let ns = std::fs::File::open("/proc/self/ns/time_for_children")
        .map_err(|e| Error::io("/proc/self/ns/time_for_children", e))?;
    nix::sched::setns(ns, time).sys(|| "entering time namespace".into())
}

/// Stops before pivot_root so `create` can run prestart and createRuntime
/// hooks, then runs createContainer hooks here, in the container's
/// namespaces. Returns the state JSON the hooks were given.
fn runtime_hooks(l: &Launch, ch: &Channel) -> Result<Option<serde_json::Value>> {
    if l.on_hooks.is_none() {
        return Ok(None);
    }
    ch.send(&Msg::Hooks)?;
    let state = match ch.recv()? {
        Some(Msg::HooksDone(s)) => serde_json::from_str::<serde_json::Value>(&s)
            .map_err(|e| Error::Init(format!("hook state: {e}")))?,
        other => return Err(Error::Init(format!("waiting for hooks, got {other:?}"))),
    };
    // Hooks in the container's namespaces see init's pid as the container does.
    let mut state = state;
    state["pid"] = serde_json::json!(std::process::id());
    // In the container's namespaces, from its rootfs, as runc runs them.
    nix::unistd::chdir(&l.bundle.rootfs).sys(|| format!("chdir {}", l.bundle.rootfs.display()))?;
    hooks::run(
        l.bundle.spec.hooks().as_ref(),
        Point::CreateContainer,
        &state,
    )?;
    Ok(Some(state))
}

fn with_status(state: &serde_json::Value, status: &str) -> serde_json::Value {
    let mut s = state.clone();
    s["status"] = serde_json::json!(status);
    s
}

fn set_names(l: &Launch, plan: &NsPlan) -> Result<()> {
    let spec = &l.bundle.spec;
    let has_uts = plan.has(LinuxNamespaceType::Uts);
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !has_uts {
            return Err(Error::Other("hostname needs a uts namespace".into()));
        }
        nix::unistd::sethostname(h).sys(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        if !has_uts {
            return Err(Error::Other("domainname needs a uts namespace".into()));
        }
        // SAFETY: setdomainname reads exactly len bytes from a valid buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::sys(
                format!("setdomainname {d:?}"),
                nix::Error::last(),
            ));
        }
    }
    Ok(())
}

/// A fresh session keyring keeps the container away from the host's keys.
fn join_session_keyring(name: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let c = std::ffi::CString::new(format!("_ses.{name}"))
        .map_err(|_| Error::Other("container id contains a NUL byte".into()))?;
    // SAFETY: keyctl JOIN_SESSION_KEYRING reads one valid C string.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    if r < 0 && nix::Error::last() != nix::Error::ENOSYS {
        return Err(Error::sys("joining a session keyring", nix::Error::last()));
    }
    Ok(())
}

fn setup_terminal(l: &Launch, p: &Process) -> Result<()> {
    let Some(sock) = &l.console else {
        return Ok(());
    };
    let (master, slave) = terminal::open_pty()?;
    if let Some(size) = p.console_size() {
        terminal::set_size(&master, &size);
    }
    terminal::send_master(sock.as_raw_fd(), &master, &slave)?;
    terminal::become_console(&slave)
}

fn run(
    l: &Launch,
    plan: &NsPlan,
    place: &Placement,
    ch: &Channel,
    bind_sources: BindSources,
    progress: &mut Progress,
) -> Result<Infallible> {
    let spec = &l.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Other("process is required".into()))?;
    logging::step("init: cloned");
    place.join_self()?;
    // Close first, then enter: init was born holding every fd of `create`
    // (the state directory, the cgroup directory, whatever its caller
    // passed): none may reach the container.
    let mut keep = kept_after_birth(l, ch);
    keep.extend(plan.joins.iter().map(|j| j.file.as_raw_fd()));
    let sources: Vec<RawFd> = bind_sources.fds().collect();
    keep.extend_from_slice(&sources);
    fds::close_all_except(first_own_fd(l), &keep)?;
    // Until the parent has recorded our pid, its death must be ours: else a
    // killed `create` would leave an init nobody knows about. (Not with the
    // extra fork: our parent then is the intermediate, which exits at once.)
    let guarded = !needs_extra_fork(plan);
    if guarded {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).sys(|| "PR_SET_PDEATHSIG".into())?;
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    reset_signals();
    enter_namespaces(l, plan, place, ch, &sources)?;
    if plan.new.contains(CloneFlags::CLONE_NEWNET) {
        crate::linux::namespaces::loopback_up()?;
    }
    if let Some(name) = &l.session_keyring {
        join_session_keyring(name)?;
    }
    finish::set_oom_score_adj(process.oom_score_adj())?;
    // Through the host's procfs, before pivot_root: the container's own
    // /proc may be missing or planted.
    let lsm = {
        let proc = std::fs::File::open("/proc").map_err(|e| Error::io("/proc", e))?;
        finish::open_lsm_attrs(process, proc.as_fd())?
    };
    // Without a mount namespace of its own the container lives in the
    // runtime's: its mounts are made there, under the rootfs, and it is
    // chrooted into it, as runc does.
    let shared_mount_ns = !plan.has(LinuxNamespaceType::Mount);
    let mut fifo = match &l.wait {
        Wait::Fifo(path) => Some(InitEnd::open(path, mounts_proc(spec))?),
        Wait::Channel => None,
    };
    // A user namespace of the container's own, or the one brig already
    // runs in (under rootless podman): either way no device nodes.
    let in_userns = plan.has(LinuxNamespaceType::User) || crate::linux::idmap::in_user_namespace();
    let join_cgroup = || join_deferred_cgroup(plan, place, ch);
    rootfs::Rootfs {
        spec,
        rootfs: &l.bundle.rootfs,
        bundle: &l.bundle.dir,
        in_userns,
        cgroupns: plan.has(LinuxNamespaceType::Cgroup),
        cgroup_path: l.cgroup.map(|c| c.path()),
        cgroup_ready: place
            .deferred
            .then_some(&join_cgroup as &dyn Fn() -> Result<()>),
        shared_mount_ns,
        bind_sources: &bind_sources,
    }
    .prepare()?;
    drop(bind_sources);
    logging::step("init: rootfs prepared");
    let hook_state = runtime_hooks(l, ch)?;
    set_names(l, plan)?;
    logging::detach_file();
    rootfs::pivot(&l.bundle.rootfs, l.no_pivot, shared_mount_ns)?;
    if !shared_mount_ns {
        rootfs::apply_root_propagation(spec)?;
    }
    setup_terminal(l, process)?;
    // Before the root goes read-only: a missing cwd is made here.
    let mut prepared = finish::prepare(
        process,
        l.bundle.seccomp.as_ref(),
        lsm,
        l.preserve_fds,
        true,
    )?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::make_root_readonly()?;
    }
    // Survives exec; set now, while init is still privileged.
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        sched::set_personality(p)?;
    }
    if let Some(policy) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        crate::linux::numa::set_memory_policy(policy)?;
    }
    if let Some(f) = fifo.as_mut() {
        f.open_container_proc()?;
    }
    // While init waits for `start` the container's processes can see it:
    // it holds only the channel and the fifo, as the container's user.
    let mut keep = vec![ch.raw()];
    keep.extend(fifo.iter().flat_map(InitEnd::fds));
    prepared.confine(&keep, ch)?;

    logging::step("init: ready");
    ch.send(&Msg::Ready)?;
    progress.past_ready = true;
    // startContainer hooks run as the process will: with no_new_privs its
    // filter is loaded before them (and not again at exec), as runc does.
    let start_hooks = |p: &mut finish::Prepared| {
        p.load_late_seccomp()?;
        let state = hook_state.as_ref().map(|s| with_status(s, "created"));
        hooks::run_with_env(
            spec.hooks().as_ref(),
            Point::StartContainer,
            &state.unwrap_or_default(),
            process.env().as_deref(),
        )
    };
    let released = || -> Result<()> {
        if guarded {
            nix::sys::prctl::set_pdeathsig(None).sys(|| "PR_SET_PDEATHSIG".into())?;
        }
        Ok(())
    };
    match fifo {
        Some(f) => {
            match ch.recv()? {
                Some(Msg::Saved) => {
                    released()?;
                    // The parent waits for this before it exits, or its exit
                    // could still deliver the death signal.
                    ch.send(&Msg::Saved)?;
                }
                // The parent gave up (create failed after we were ready)
                // and says why itself: a second line from here would only
                // repeat it less clearly.
                // SAFETY: _exit skips the parent's destructors and atexit work.
                None => unsafe { libc::_exit(1) },
                other => return Err(Error::Init(format!("waiting for the state, got {other:?}"))),
            }
            f.wait(|| {
                let r = start_hooks(&mut prepared);
                progress.told_start.set(r.is_err());
                r
            })?
        }
        None => match ch.recv()? {
            Some(Msg::Start) => {
                released()?;
                start_hooks(&mut prepared)?
            }
            other => return Err(Error::Init(format!("waiting for start, got {other:?}"))),
        },
    }

    Err(finish::finish(prepared))
}

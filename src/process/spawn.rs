//! The parent's side of container creation: clone init with its
//! namespaces, answer its requests, and wait until it is ready.

use super::clone::{fork_with, Forked};
use super::init;
use super::sync::{self, Channel, Msg};
use crate::cgroups::{Cgroup, Placement};
use crate::error::{Error, Result};
use crate::linux::bind_sources::BindSources;
use crate::linux::namespaces::{self, Join};
use crate::spec::Bundle;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// How init learns that it may exec the user's program.
pub enum Wait {
    /// `create`: a later `start` opens this fifo.
    Fifo(PathBuf),
    /// `run`: the parent sends `Start` over the sync channel.
    Channel,
}

pub struct Launch<'a> {
    pub bundle: &'a Bundle,
    pub wait: Wait,
    /// A connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// Join a new session keyring with this name (runc's default).
    pub session_keyring: Option<String>,
    /// Called (with init's host pid) when init's rootfs is built and it waits
    /// before pivot_root: runs the runtime-side hooks and returns the state
    /// JSON that the container-side hooks will read. None: no hooks at all.
    pub on_hooks: Option<&'a dyn Fn(i32) -> Result<String>>,
    /// Called (with init's host pid) with the listener of a seccomp filter
    /// that has notify rules: hands it to the agent.
    pub on_listener: OnListener<'a>,
    /// The container's cgroup; init is placed in it before it can run
    /// anything of the user's.
    pub cgroup: Option<&'a dyn Cgroup>,
    /// When set, only `create_clone_target` has run: this makes and
    /// configures the rest. Called after the clone, while init builds its
    /// rootfs, where init can join by itself (no user namespace, nothing
    /// joined by path); otherwise before.
    pub cgroup_rest: Option<&'a dyn Fn() -> Result<()>>,
}

/// The namespaces of the spec, split into those to create and those to join.
pub(super) struct NsPlan {
    pub new: CloneFlags,
    pub joins: Vec<Join>,
    /// Init unshares its cgroup namespace only once the parent has moved
    /// it into the container's cgroup (`Joined`).
    pub late_cgroupns: bool,
    /// New namespaces init makes itself, with unshare right after the
    /// clone, rather than the clone making them: the parent, which clone3
    /// would hold up, makes the cgroup meanwhile. A network namespace alone
    /// takes the kernel about 0.5 ms to set up.
    pub unshared: CloneFlags,
}

impl NsPlan {
    fn from_spec(b: &Bundle) -> Result<NsPlan> {
        let mut new = CloneFlags::empty();
        let mut joins = Vec::new();
        let list = b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref());
        for ns in list.into_iter().flatten() {
            match ns.path() {
                Some(p) => joins.push(Join::open(ns.typ(), p)?),
                None => new |= namespaces::clone_flag(ns.typ()),
            }
        }
        // The user namespace is joined first: it owns the ones created after.
        joins.sort_by_key(|j| j.kind != LinuxNamespaceType::User);
        Ok(NsPlan {
            new,
            joins,
            late_cgroupns: false,
            unshared: CloneFlags::empty(),
        })
    }

    pub fn has(&self, kind: LinuxNamespaceType) -> bool {
        self.new.contains(namespaces::clone_flag(kind)) || self.joins.iter().any(|j| j.kind == kind)
    }

    /// Namespaces created at clone time. The time namespace is not: its
    /// offsets can only be written before a process lives in it. Nor is a
    /// cgroup namespace when init must first be moved into its cgroup (the
    /// namespace is rooted wherever init is when it is made).
    pub fn clone_flags(&self) -> CloneFlags {
        let mut f = self.new - namespaces::clone_flag(LinuxNamespaceType::Time);
        if self.late_cgroupns {
            f -= CloneFlags::CLONE_NEWCGROUP;
        }
        f
    }

    /// Joining by path means init must setns, then unshare what is new, and
    /// (for a pid namespace) fork once more to land inside it.
    pub fn needs_setns(&self) -> bool {
        !self.joins.is_empty()
    }
}

pub struct Spawned {
    pub pid: i32,
    pub channel: Channel,
}

pub fn spawn(l: &Launch) -> Result<Spawned> {
    let mut plan = NsPlan::from_spec(l.bundle)?;
    let deferred = l.cgroup_rest.is_some()
        && !plan.needs_setns()
        && !plan.new.contains(CloneFlags::CLONE_NEWUSER);
    if let (Some(rest), false) = (l.cgroup_rest, deferred) {
        rest()?;
    }
    // After a setns init forks once more: the child we clone is placed (born
    // in the cgroup2 directory, joining the v1 hierarchies itself) before
    // that fork, so the real init inherits every cgroup.
    let place = Placement::plan(l.cgroup, deferred)?;
    // A cgroup namespace is rooted wherever init is when it is made: made at
    // clone time only when the clone already put init in all its cgroups.
    plan.late_cgroupns = l.cgroup.is_some()
        && plan.new.contains(CloneFlags::CLONE_NEWCGROUP)
        && (place.clone_into.is_none()
            || !place.self_join.is_empty()
            || !place.join_later.is_empty());
    if place.deferred {
        // Not the pid namespace: only children of an unshare enter it.
        plan.unshared = plan.clone_flags()
            & (CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS);
    }
    // Init mounts as root of the container's user namespace, which the
    // host may keep out of a bind source: copy them now, as the host's root.
    let bind_sources = if plan.has(LinuxNamespaceType::User) {
        let mounts = l.bundle.spec.mounts().as_deref().unwrap_or(&[]);
        BindSources::open(mounts, &l.bundle.dir)
    } else {
        BindSources::default()
    };
    let (parent, child) = sync::pair()?;
    let flags = if plan.needs_setns() {
        CloneFlags::empty()
    } else {
        plan.clone_flags() - plan.unshared
    };
    crate::logging::step("clone");
    let into = place.clone_into.as_ref().map(|fd| fd.as_raw_fd());
    let forked = fork_with(flags.bits() as u64, into)?;
    match forked {
        Forked::Child => {
            drop(parent);
            init::main(l, &plan, &place, child, bind_sources)
        }
        Forked::Parent(pid) => {
            drop(child);
            drop(bind_sources);
            crate::fault::point("cloned");
            let placed = match (l.cgroup, l.cgroup_rest) {
                (Some(cg), Some(rest)) if place.deferred => rest()
                    .and_then(|_| {
                        if place.parent_adds {
                            cg.add(pid)
                        } else {
                            Ok(())
                        }
                    })
                    .map(|_| {
                        // A child that failed meanwhile has closed its end;
                        // drive() reads why.
                        let _ = parent.send(&Msg::CgroupReady);
                    }),
                // The child waits for this before anything else, so it
                // cannot fork, or run anything, outside the cgroup.
                (Some(cg), _) if place.parent_adds => {
                    cg.add(pid).and_then(|_| parent.send(&Msg::Joined))
                }
                _ => Ok(()),
            };
            if let Err(e) = placed {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                return Err(e);
            }
            if !place.deferred {
                crate::logging::step("init in its cgroup");
            }
            // The child's copies are the ones in use.
            drop(place);
            drive(l, &plan, pid, parent)
        }
    }
}

/// A seccomp listener a process sent, to the agent once the process's
/// pid is known (it may come in a later message).
pub type OnListener<'a> = Option<&'a dyn Fn(i32, OwnedFd) -> Result<()>>;

pub(super) fn hand_over_listener(
    to: OnListener,
    pid: Option<i32>,
    listener: &mut Option<OwnedFd>,
) -> Result<()> {
    let Some(pid) = pid else { return Ok(()) };
    let Some(fd) = listener.take() else {
        return Ok(());
    };
    match to {
        Some(f) => f(pid, fd),
        None => Err(Error::Init(
            "a seccomp listener, and no agent to hand it to".into(),
        )),
    }
}

/// Answers init's requests until it is ready or has failed.
fn drive(l: &Launch, plan: &NsPlan, child: i32, ch: Channel) -> Result<Spawned> {
    let needs_pid = init::needs_extra_fork(plan);
    let linux = l.bundle.spec.linux().as_ref();
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    let mut init_pid = None;
    let mut ready = false;
    let mut listener = None;
    let fail = |init: Option<i32>, e: Error| -> Result<Spawned> {
        for p in [Some(child), init].into_iter().flatten() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(Pid::from_raw(child), None);
        Err(e)
    };
    loop {
        let (msg, fd) = match ch.recv_fd() {
            Ok(Some((m, fd))) => (Some(m), fd),
            Ok(None) => (None, None),
            Err(e) => return fail(init_pid, e),
        };
        match msg {
            Some(Msg::Listener) => match fd {
                Some(fd) => listener = Some(fd),
                None => return fail(init_pid, Error::Init("seccomp listener missing".into())),
            },
            Some(Msg::MapsNeeded) => {
                if let Err(e) = crate::linux::idmap::write(child, &uid_maps, &gid_maps) {
                    return fail(init_pid, e);
                }
                if let Err(e) = ch.send(&Msg::MapsDone) {
                    return fail(init_pid, e);
                }
            }
            Some(Msg::Pid(p)) => {
                // The intermediate process has done its job; reap it.
                let _ = nix::sys::wait::waitpid(Pid::from_raw(child), None);
                init_pid = Some(p);
            }
            Some(Msg::Ready) => ready = true,
            Some(Msg::Hooks) => {
                let pid = init_pid.unwrap_or(child);
                let answer = match l.on_hooks {
                    Some(f) => f(pid),
                    None => Err(Error::Init(
                        "init asked for hooks that are not there".into(),
                    )),
                };
                match answer.and_then(|state| ch.send(&Msg::HooksDone(state))) {
                    Ok(()) => {}
                    Err(e) => return fail(init_pid, e),
                }
            }
            Some(Msg::Error(e)) => return fail(init_pid, Error::Init(e)),
            Some(other) => {
                return fail(
                    init_pid,
                    Error::Init(format!("unexpected message {other:?}")),
                )
            }
            None => {
                return fail(
                    init_pid,
                    Error::Init("init exited before it was ready".into()),
                )
            }
        }
        // The real init sends its listener, the intermediate its Pid.
        let pid = if needs_pid { init_pid } else { Some(child) };
        if let Err(e) = hand_over_listener(l.on_listener, pid, &mut listener) {
            return fail(init_pid, e);
        }
        // With an extra fork, Ready may arrive before the intermediate's Pid.
        if ready && (!needs_pid || init_pid.is_some()) {
            return Ok(Spawned {
                pid: init_pid.unwrap_or(child),
                channel: ch,
            });
        }
    }
}

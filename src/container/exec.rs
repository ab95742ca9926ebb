//! `exec`: start another process in a live container.

use super::create::write_pid_file;
use super::foreground;
use super::store::Store;
use super::Status;
use crate::cgroups::SubPaths;
use crate::error::{Error, IoContext, Result, SysContext};
use crate::linux::pidfd::Pidfd;
use crate::process::enter::{self, Enter};
use crate::process::sync::Msg;
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub struct Options {
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Existing cgroups below the container's, for the process (runc's
    /// --cgroup): controller ("" for all) -> path.
    pub sub_cgroups: SubPaths,
    /// Exec into a paused container too (runc's --ignore-paused): the
    /// process is frozen with it until it is resumed.
    pub ignore_paused: bool,
}

/// runc's `--cgroup` arguments: one PATH for every controller, or any
/// number of CONTROLLER[,CONTROLLER...]:PATH.
pub fn parse_sub_cgroups(args: &[String]) -> Result<SubPaths> {
    let mut subs = SubPaths::new();
    for a in args {
        match a.split_once(':') {
            Some((_, path)) if path.contains(':') => {
                return Err(Error::Other(format!("invalid --cgroup argument: {a}")))
            }
            Some((controllers, path)) => {
                for c in controllers.split(',') {
                    subs.insert(c.to_string(), PathBuf::from(path));
                }
            }
            None if args.len() > 1 => {
                return Err(Error::Other(format!(
                    "invalid --cgroup argument: {a} (missing <controller>: prefix)"
                )))
            }
            None => {
                subs.insert(String::new(), PathBuf::from(a));
            }
        }
    }
    Ok(subs)
}

/// Reads a process.json (`exec --process`). Without `user` the process
/// runs as root (uid 0, gid 0), as runc's exec takes it.
pub fn read_process(path: &std::path::Path) -> Result<Process> {
    let raw = std::fs::read(path).at(path)?;
    let bad = |e: serde_json::Error| Error::Config {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let mut v: serde_json::Value = serde_json::from_slice(&raw).map_err(bad)?;
    crate::linux::sched::process_flag_spellings(&mut v);
    if let Some(obj) = v.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    crate::spec::capabilities::from_value(v, "").map_err(bad)
}

/// The container's own process spec as `create` saw it, the base of the
/// inline form (`exec ID CMD...`), as runc takes it.
pub fn container_process(store: &Store, id: &str) -> Result<Process> {
    let c = store.load(id)?;
    c.spec()?
        .process()
        .clone()
        .ok_or_else(|| Error::Other(format!("container \"{id}\" has no process")))
}

/// Runs the process; returns the exit code `brig exec` should exit with
/// (0 when detached).
pub fn exec(store: &Store, id: &str, o: &Options) -> Result<i32> {
    if o.process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Other(
            "exec: no command given (process.args is empty)".into(),
        ));
    }
    let terminal = o.process.terminal().unwrap_or(false);
    let own_tty = terminal && o.console_socket.is_none();
    if own_tty && o.detach {
        return Err(Error::Other(
            "exec --detach with a terminal needs --console-socket".into(),
        ));
    }
    if !terminal && o.console_socket.is_some() {
        return Err(Error::Other(
            "--console-socket given but the process has no terminal".into(),
        ));
    }
    let c = store.load(id)?;
    let paused = c.status() == Status::Paused;
    if paused && !o.ignore_paused {
        return Err(Error::Other(format!(
            "cannot exec in a paused container \"{id}\" (resume it first)"
        )));
    }
    let paused_too = [Status::Created, Status::Running, Status::Paused];
    c.expect(
        &paused_too[..if o.ignore_paused { 3 } else { 2 }],
        "cannot exec in a container that is not running",
    )?;
    // What create applied, not the bundle's config.json of now.
    let spec = c.spec()?;
    let seccomp = crate::linux::seccomp::Filter::from_spec(&spec)?;
    let init = Pidfd::open(c.state.pid, c.state.pid_start)?;
    let cgroup = match c.cgroup() {
        Some(cg) if o.sub_cgroups.is_empty() => Some(cg.placement_dirs()),
        Some(cg) => Some(cg.below(&o.sub_cgroups)?),
        None if o.sub_cgroups.is_empty() => None,
        None => {
            return Err(Error::Other(format!(
                "--cgroup: container \"{id}\" has no cgroup"
            )))
        }
    };
    let (ours, console): (Option<std::os::unix::net::UnixStream>, Option<OwnedFd>) =
        match &o.console_socket {
            Some(path) => (
                None,
                Some(
                    std::os::unix::net::UnixStream::connect(path)
                        .at(path)?
                        .into(),
                ),
            ),
            None if own_tty => {
                let (a, b) = foreground::console_pair()?;
                (Some(a), Some(b))
            }
            None => (None, None),
        };
    let forwarded = foreground::forwarded_signals();
    if !o.detach {
        forwarded.thread_block().sys(|| "blocking signals".into())?;
    }
    let agent = seccomp.as_ref().and_then(|f| f.listener.as_ref());
    let state = c.state.clone();
    // The process of a paused container waits, frozen, until `resume`,
    // which must not wait for us in turn: let go of the container now.
    // (Otherwise hold it until the process is in, so that no `delete`
    // removes the cgroup it is being born in.)
    let held = (!paused).then_some(c);
    let on_listener = |pid: i32, fd: OwnedFd| -> Result<()> {
        let Some(agent) = agent else {
            return Err(Error::Other(
                "a seccomp listener without listenerPath".into(),
            ));
        };
        // As runc: the process's pid, in the state of the running container.
        let json = state.to_oci_json(Status::Running);
        crate::linux::seccomp_agent::hand_over(agent, fd, pid, &json)
    };
    let entered = enter::enter(&Enter {
        init: &init,
        init_pid: state.pid,
        process: &o.process,
        seccomp: seccomp.as_ref(),
        cgroup,
        console,
        preserve_fds: o.preserve_fds,
        personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
        oom_score_adj: spec.process().as_ref().and_then(|p| p.oom_score_adj()),
        memory_policy: spec
            .linux()
            .as_ref()
            .and_then(|l| l.memory_policy().as_ref()),
        on_listener: agent.map(|_| &on_listener as &dyn Fn(i32, OwnedFd) -> Result<()>),
    })?;
    // Others may act on the container while this process runs.
    drop(held);
    let master = match &ours {
        Some(sock) => Some(foreground::recv_master(sock)?),
        None => None,
    };
    // The channel closes on exec; an error before that is the process's last word.
    if let Some(Msg::Error(e)) = entered.channel.recv()? {
        return Err(Error::Other(e));
    }
    if let Some(p) = &o.pid_file {
        write_pid_file(p, entered.pid)?;
    }
    crate::logging::debug(&format!("exec in {id}: process {} started", entered.pid));
    if o.detach {
        return Ok(0);
    }
    foreground::wait(entered.pid, &forwarded, master.as_ref(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_cgroup_arguments_as_runc_reads_them() {
        let s =
            |a: &[&str]| parse_sub_cgroups(&a.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let subs = s(&["memory:m", "cpu,cpuacct:c"]).unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(subs["cpuacct"], PathBuf::from("c"));
        assert_eq!(s(&["sub"]).unwrap()[""], PathBuf::from("sub"));
        assert!(s(&["a", "memory:m"])
            .unwrap_err()
            .to_string()
            .contains("missing <controller>: prefix"));
        assert!(s(&["a:b:c"])
            .unwrap_err()
            .to_string()
            .contains("invalid --cgroup argument"));
        assert!(s(&[]).unwrap().is_empty());
    }
}

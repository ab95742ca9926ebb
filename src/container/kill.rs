//! `kill`: signal a container's init, or with --all every process in it.

use super::store::{Locked, Store};
use super::Status;
use crate::error::{Error, Result};
use crate::linux::pidfd::Pidfd;
use crate::linux::procfs;
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Accepts "KILL", "SIGKILL", "kill" and "9", as runc does.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 sends nothing and only checks that init is alive, as kill(1) does.
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Other(format!("invalid signal number {n}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.trim_start_matches('+').parse().unwrap_or(-1)
        };
        if off >= 0 && base + off <= libc::SIGRTMAX() {
            return Ok(base + off);
        }
    }
    Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| Error::Other(format!("unknown signal {s:?}")))
}

/// Signals init through a pidfd, never a process that recycled its pid.
pub fn signal_pid(pid: i32, start: u64, sig: i32) -> Result<()> {
    Pidfd::open(pid, start)?.signal(sig)
}

/// Every process of a container: its cgroup's, or without one, every
/// process of its own pid namespace (only init when it shares one).
pub fn container_pids(c: &Locked) -> Vec<i32> {
    if let Some(cg) = c.cgroup() {
        if let Ok(pids) = cg.pids() {
            return pids;
        }
    }
    let init = c.state.pid;
    let own = procfs::namespace_id(std::process::id() as i32, "pid");
    match procfs::namespace_id(init, "pid") {
        Some(ns) if Some(&ns) != own.as_ref() => {
            let mut pids = procfs::pids_in_pid_namespace(&ns);
            if !pids.contains(&init) {
                pids.push(init);
            }
            pids
        }
        _ => vec![init],
    }
}

pub fn kill(store: &Store, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let c = store.load(id)?;
    // With --all, a container whose init has exited may still hold
    // processes in its cgroup (a pod's shared-pid workers): they are
    // signalled, as runc does, so that it can be stopped and removed.
    let mut live = vec![Status::Created, Status::Running, Status::Paused];
    if all && c.cgroup().is_some() {
        live.push(Status::Stopped);
    }
    let status = c.expect(&live, "container not running")?;
    if all {
        // Frozen, nothing can fork a process the signal would miss.
        let cg = c.cgroup().filter(|_| status != Status::Paused);
        let frozen = cg.as_ref().is_some_and(|cg| cg.freeze(true).is_ok());
        for pid in container_pids(&c) {
            if pid != c.state.pid {
                // SAFETY: kill(2) on a pid of the container's cgroup or pid namespace.
                unsafe { libc::kill(pid, sig) };
            }
        }
        let sent = if status == Status::Stopped {
            Ok(())
        } else {
            signal_pid(c.state.pid, c.state.pid_start, sig)
        };
        if let (true, Some(cg)) = (frozen, &cg) {
            cg.freeze(false)?;
        }
        return sent;
    }
    signal_pid(c.state.pid, c.state.pid_start, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_prefixes() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("SIGRTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("99").is_err());
    }
}

//! What brig records about a container, and its status as read from the kernel.

use crate::linux::procfs;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Running, with its cgroup frozen.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init; 0 until create has one.
    pub pid: i32,
    /// Start time of `pid` (clock ticks after boot), so a recycled pid is
    /// never taken for the container.
    pub pid_start: u64,
    /// The `create` process, and its start time, while the container is being made.
    pub creator: i32,
    pub creator_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub owner: String,
    /// The spec's hooks, kept from create: start and delete must run the
    /// hooks the container was created with, whatever config.json says now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The container's cgroup, relative to each hierarchy's root. Recorded
    /// before the directories exist, so a crashed create can be cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The spec has no mount namespace: the container's mounts live in the
    /// runtime's namespace, under the rootfs, until delete takes them away.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_mounts: bool,
}

impl State {
    /// The init process, if it is still the one brig started and not a zombie.
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && procfs::is_same_live_process(self.pid, self.pid_start)
    }

    /// Status from the kernel: a live init behind an unopened exec fifo is
    /// `created`, a live init that has been released is `running`.
    pub fn status(&self, fifo_exists: bool) -> Status {
        if self.pid == 0 {
            if procfs::is_same_live_process(self.creator, self.creator_start) {
                return Status::Creating;
            }
            return Status::Stopped;
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if fifo_exists {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The OCI state object with the fields containerd and runc print.
    pub fn to_oci_json(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": crate::spec::OCI_VERSION,
            "id": self.id,
            "pid": if status == Status::Stopped { 0 } else { self.pid },
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pid: i32, pid_start: u64) -> State {
        State {
            id: "t".into(),
            pid,
            pid_start,
            creator: 0,
            creator_start: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: HashMap::new(),
            owner: String::new(),
            hooks: None,
            cgroup: None,
            shared_mounts: false,
        }
    }

    #[test]
    fn status_follows_the_kernel() {
        let me = std::process::id() as i32;
        let start = procfs::start_time(me).expect("own stat readable");
        assert_eq!(state(me, start).status(true), Status::Created);
        assert_eq!(state(me, start).status(false), Status::Running);
        // Same pid, other start time: a recycled pid is not the container.
        assert_eq!(state(me, start + 1).status(false), Status::Stopped);
        assert_eq!(state(0, 0).status(false), Status::Stopped);
    }

    #[test]
    fn stopped_state_reports_pid_zero() {
        let v = state(42, 1).to_oci_json(Status::Stopped);
        assert_eq!(v["pid"], 0);
        assert_eq!(v["status"], "stopped");
        assert!(v.get("annotations").is_none());
    }
}

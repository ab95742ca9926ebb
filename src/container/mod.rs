//! The state store and one file per CLI verb.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod record;
pub mod run;
pub mod start;
pub mod state;
pub mod store;
pub mod update;

pub use record::{State, Status};
pub use store::{Locked, Store};

impl Locked {
    /// The kernel's view: init's liveness, the exec fifo, the freezer.
    pub fn status(&self) -> Status {
        let s = self.state.status(self.fifo_path().exists());
        if s == Status::Running && self.cgroup().is_some_and(|c| c.is_frozen()) {
            return Status::Paused;
        }
        s
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<Box<dyn crate::cgroups::Cgroup>> {
        self.state
            .cgroup
            .as_deref()
            .and_then(|rel| crate::cgroups::open(rel).ok())
    }

    /// Fails unless the container is in one of `allowed` states.
    pub fn expect(&self, allowed: &[Status], why: &'static str) -> crate::Result<Status> {
        let status = self.status();
        if allowed.contains(&status) {
            Ok(status)
        } else {
            Err(crate::Error::WrongState {
                id: self.state.id.clone(),
                status: status.to_string(),
                why,
            })
        }
    }
}

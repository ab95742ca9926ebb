//! `pause` and `resume`: freeze and thaw the container's cgroup.

use super::store::Store;
use super::Status;
use crate::error::{Error, Result};

pub fn pause(store: &Store, id: &str) -> Result<()> {
    freeze(store, id, true)
}

pub fn resume(store: &Store, id: &str) -> Result<()> {
    freeze(store, id, false)
}

fn freeze(store: &Store, id: &str, frozen: bool) -> Result<()> {
    let c = store.load(id)?;
    let (from, why) = if frozen {
        (Status::Running, "only a running container can be paused")
    } else {
        (Status::Paused, "only a paused container can be resumed")
    };
    c.expect(&[from], why)?;
    let cg = c
        .cgroup()
        .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup to freeze")))?;
    cg.freeze(frozen)
}

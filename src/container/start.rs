//! `start`: release a created container's init through the exec fifo.

use super::store::Store;
use super::Status;
use crate::error::{Error, Result};
use crate::hooks::{self, Point};
use crate::linux::pidfd::Pidfd;
use crate::process::fifo;

pub fn start(store: &Store, id: &str) -> Result<()> {
    let c = store.load(id)?;
    let status = c.status();
    if status != Status::Created {
        return Err(Error::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            why: "only a created container can be started",
        });
    }
    let init = Pidfd::open(c.state.pid, c.state.pid_start)?;
    fifo::release(&c.fifo_path(), &init)?;
    let state = c.state.to_oci_json(Status::Running);
    hooks::run_logged(c.state.hooks.as_ref(), Point::Poststart, &state);
    Ok(())
}

//! The state store and one file per CLI verb.

pub mod create;
pub mod delete;
pub mod kill;
pub mod list;
pub mod record;
pub mod run;
pub mod start;
pub mod state;
pub mod store;

pub use record::{State, Status};
pub use store::{Locked, Store};

impl Locked {
    pub fn status(&self) -> Status {
        self.state.status(self.fifo_path().exists())
    }
}

//! How a container's processes come to be: clone, the parent<->init sync
//! channel, the init sequence, and the exec fifo.

pub mod clone;
pub mod enter;
pub mod exec;
pub mod fifo;
pub mod finish;
mod init;
pub mod spawn;
pub mod sync;

pub use spawn::{spawn, Launch, Spawned, Wait};

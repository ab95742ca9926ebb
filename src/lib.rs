//! brig: an OCI container runtime. The binaries in src/bin/ only parse
//! arguments; everything they do lives here.

pub mod build;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod fault;
pub mod hooks;
pub mod image;
pub mod interrupt;
pub mod linux;
pub mod logging;
pub mod process;
pub mod rootless;
pub mod spec;

pub use error::{Error, Result};

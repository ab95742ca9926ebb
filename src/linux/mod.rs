//! One file per kernel facility the container's init touches.

pub mod bind_sources;
pub mod capabilities;
pub mod devices;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod early_reexec;
pub mod fds;
pub mod idmap;
pub mod lsm;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod numa;
pub mod paths;
pub mod pidfd;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod sealed_exe;
pub mod seccomp;
pub mod seccomp_agent;
pub mod sysctl;
pub mod terminal;
pub mod user;

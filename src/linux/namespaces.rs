//! Namespace kinds, their clone flags, and joining one by path.

use crate::error::{IoContext, Result, SysContext};
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of the kind under /proc/PID/ns/.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join, opened by the parent while host paths still resolve.
pub struct Join {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

impl Join {
    pub fn open(kind: LinuxNamespaceType, path: &Path) -> Result<Join> {
        let file = File::open(path).at(path)?;
        Ok(Join {
            kind,
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn enter(&self) -> Result<()> {
        nix::sched::setns(self.file.as_fd(), clone_flag(self.kind)).sys(|| {
            format!(
                "joining {} namespace {}",
                proc_name(self.kind),
                self.path.display()
            )
        })
    }
}

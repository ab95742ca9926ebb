//! Namespace kinds, their clone flags, and joining one by path.

use crate::error::{Error, IoContext, Result, SysContext};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};
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

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes a child's uid and gid maps; only a process outside the new user
/// namespace may do this, so it is the parent's job.
pub fn write_id_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
        if maps.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map_text(maps)).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    #[test]
    fn id_map_text_is_one_line_per_range() {
        let m = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        assert_eq!(map_text(&[m, m]), "0 100000 65536\n0 100000 65536\n");
    }
}

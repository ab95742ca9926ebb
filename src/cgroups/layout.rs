//! Which cgroup layout the host has, and where each hierarchy is mounted.

use crate::error::{Error, Result};
use crate::linux::mountinfo;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A hierarchy per controller.
    V1,
    /// One cgroup2 tree.
    V2,
    /// v1 controllers, plus a cgroup2 tree (usually /sys/fs/cgroup/unified)
    /// that holds no controllers but tracks processes (and device programs).
    Hybrid,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub mode: Mode,
    /// v1: controller name (or "name=systemd") -> its hierarchy's mount point.
    /// Co-mounted controllers (cpu,cpuacct) share one entry each.
    pub v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount point, if any.
    pub v2: Option<PathBuf>,
}

/// Mount options of a v1 hierarchy that name its controllers.
pub fn controllers_of(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| {
            !matches!(
                *o,
                "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode"
            ) && (!o.contains('=') || o.starts_with("name="))
        })
        .map(str::to_string)
        .collect()
}

impl Layout {
    /// Read once per process: mountinfo is long on a busy host, and the
    /// cgroup mounts do not move under a running command.
    pub fn detect() -> Result<Layout> {
        static LAYOUT: std::sync::OnceLock<std::result::Result<Layout, String>> =
            std::sync::OnceLock::new();
        LAYOUT
            .get_or_init(|| Self::from_mounts(&mountinfo::read_self()).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Other)
    }

    pub fn from_mounts(mounts: &[mountinfo::MountInfo]) -> Result<Layout> {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for m in mounts {
            match m.fs_type.as_str() {
                "cgroup" => {
                    for c in controllers_of(&m.super_options) {
                        v1.entry(c).or_insert_with(|| m.mount_point.clone());
                    }
                }
                "cgroup2" if v2.is_none() => v2 = Some(m.mount_point.clone()),
                _ => {}
            }
        }
        let mode = match (v1.is_empty(), &v2) {
            (true, Some(_)) => Mode::V2,
            (false, Some(_)) => Mode::Hybrid,
            (false, None) => Mode::V1,
            (true, None) => return Err(Error::Other("no cgroup filesystem is mounted".into())),
        };
        Ok(Layout { mode, v1, v2 })
    }

    /// The distinct v1 hierarchies, each with the controllers it carries.
    pub fn hierarchies(&self) -> BTreeMap<PathBuf, Vec<String>> {
        let mut h: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (c, mp) in &self.v1 {
            h.entry(mp.clone()).or_default().push(c.clone());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_v1_and_v2_are_told_apart() {
        let text = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let l = Layout::from_mounts(&mountinfo::parse(text)).unwrap();
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(l.v1["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            l.v1["name=systemd"],
            PathBuf::from("/sys/fs/cgroup/systemd")
        );
        assert_eq!(l.hierarchies().len(), 3);
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Layout::from_mounts(&mountinfo::parse(v2)).unwrap().mode,
            Mode::V2
        );
        let v1 = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            Layout::from_mounts(&mountinfo::parse(v1)).unwrap().mode,
            Mode::V1
        );
    }
}

//! cgroups: one trait, [`Cgroup`], with a v1 implementation (which, on a
//! hybrid host, also joins the cgroup2 tree) and a v2 one. The layout is
//! read from /proc/self/mountinfo, never assumed.
//!
//! As in runc, a zero in linux.resources means "not set" (Docker sends
//! zeros for everything it does not limit); [`set`](Cgroup::set) skips them.
//!
//! The systemd driver (`--systemd-cgroup`, `slice:prefix:name` paths) would
//! be a third implementation of the same trait, talking to systemd over
//! D-Bus; it does not exist yet and asking for it is an error.

pub mod devices;
pub mod devices_bpf;
mod fs;
mod layout;
mod path;
mod placement;
pub mod rootless;
mod stats;
mod v1;
mod v2;
pub mod validate;

pub use layout::{controllers_of, Layout, Mode};
pub use path::resolve;
pub use placement::Placement;

use crate::error::Result;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

/// A container's cgroup, in whatever layout the host has.
pub trait Cgroup {
    /// Makes the directories (and, on v2, enables the controllers above).
    fn create(&self) -> Result<()> {
        self.create_clone_target()?;
        self.create_rest()
    }
    /// Makes only the cgroup2 directory a new process can be born in
    /// (CLONE_INTO_CGROUP), where the host has one; `create_rest` makes the
    /// rest, which `create` can do after the clone, while init builds its
    /// rootfs.
    fn create_clone_target(&self) -> Result<()>;
    /// Everything `create_clone_target` leaves out.
    fn create_rest(&self) -> Result<()>;
    /// Moves a process in.
    fn add(&self, pid: i32) -> Result<()>;
    /// Applies linux.resources but devices (also used by `update`).
    fn set(&self, r: &LinuxResources) -> Result<()>;
    /// Applies device rules, replacing earlier ones.
    fn set_devices(&self, rules: &[devices::Rule]) -> Result<()>;
    /// Freezes or thaws, returning once the kernel reports the new state.
    fn freeze(&self, frozen: bool) -> Result<()>;
    fn is_frozen(&self) -> bool;
    /// Every process in the container's cgroup.
    fn pids(&self) -> Result<Vec<i32>>;
    /// runc's `events --stats` data object.
    fn stats(&self) -> serde_json::Value;
    /// How many times the OOM killer acted in this cgroup.
    fn oom_kills(&self) -> u64;
    /// Removes every directory; processes must be gone.
    fn destroy(&self) -> Result<()>;
    /// The container's cgroup, relative to each hierarchy's root.
    fn path(&self) -> &Path;
    /// Where a new process must go, for [`Placement`].
    fn placement_dirs(&self) -> Dirs;
    /// `exec --cgroup`: the directories of existing sub-cgroups, per
    /// controller or ("" in `subs`) for all; the container's own for
    /// controllers `subs` does not name.
    fn below(&self, subs: &SubPaths) -> Result<Dirs>;
}

/// exec --cgroup's sub-cgroups: controller ("" for every one) -> path
/// below the container's cgroup.
pub type SubPaths = std::collections::BTreeMap<String, PathBuf>;

/// The directories a process of the container lives in: the cgroup2 one,
/// if any, and one per v1 hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirs {
    pub unified: Option<PathBuf>,
    pub v1: Vec<PathBuf>,
}

impl Dirs {
    /// Moves a process into every directory.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in self.unified.iter().chain(&self.v1) {
            fs::write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }
}

/// `dir` descended into `sub`, which must stay below it ("/" is `dir`
/// itself) and exist, in runc's words.
fn descend(dir: &Path, sub: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut rel = PathBuf::new();
    for c in sub.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::ParentDir if rel.pop() => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(crate::Error::Other(format!(
                    "{} is not a sub cgroup path",
                    sub.display()
                )))
            }
            Component::RootDir | Component::CurDir => {}
        }
    }
    let full = dir.join(rel);
    if !full.is_dir() {
        return Err(crate::Error::Other(format!(
            "adding pid to cgroups: {}/cgroup.procs: no such file or directory",
            full.display()
        )));
    }
    Ok(full)
}

/// A controller `subs` names that `known` does not have.
fn unknown_controller<'a>(subs: &'a SubPaths, known: &[&str]) -> Option<&'a str> {
    subs.keys()
        .map(String::as_str)
        .find(|k| !k.is_empty() && !known.contains(k))
}

fn unknown(controller: &str) -> crate::Error {
    crate::Error::Other(format!("unknown controller {controller} in --cgroup"))
}

/// The container's cgroup at `rel` (a path relative to each hierarchy root).
pub fn open(rel: &Path) -> Result<Box<dyn Cgroup>> {
    let layout = Layout::detect()?;
    Ok(match layout.mode {
        Mode::V2 => Box::new(v2::V2::new(layout, rel)),
        Mode::V1 | Mode::Hybrid => Box::new(v1::V1::new(layout, rel)),
    })
}

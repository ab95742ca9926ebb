//! Loading and validating a bundle's config.json.

pub mod capabilities;
mod default;
mod rootless;

pub use default::{default_spec_json, OCI_VERSION};
pub use rootless::to_rootless;

use crate::error::{Error, IoContext, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A validated spec together with where it came from.
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the rootfs.
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// linux.seccomp compiled once here: load validates it, init and exec
    /// load it.
    pub seccomp: Option<crate::linux::seccomp::Filter>,
}

impl Bundle {
    /// Whether the container's process wants a terminal.
    pub fn terminal(&self) -> bool {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }

    /// Whether the container gets or joins a user namespace.
    pub fn has_user_namespace(&self) -> bool {
        self.has_namespace(LinuxNamespaceType::User)
    }

    /// Whether linux.namespaces lists `kind` (new or joined).
    pub fn has_namespace(&self, kind: LinuxNamespaceType) -> bool {
        self.spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == kind))
    }

    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::fs::canonicalize(dir).at(dir)?;
        let path = dir.join("config.json");
        let raw = std::fs::read(&path).at(&path)?;
        let raw = crate::linux::sched::spec_flag_spellings(&raw);
        let spec: Spec = capabilities::from_slice(&raw, "/process").map_err(|e| Error::Config {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let root = spec.root().as_ref().ok_or_else(|| Error::Config {
            path: path.clone(),
            msg: "root.path is required".into(),
        })?;
        let rootfs = dir.join(root.path());
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::Config {
            path: path.clone(),
            msg: format!("root.path {}: {e}", rootfs.display()),
        })?;
        if !rootfs.is_dir() {
            return Err(Error::Config {
                path,
                msg: format!("root.path {} is not a directory", rootfs.display()),
            });
        }
        validate(&spec).map_err(|msg| Error::Config {
            path: path.clone(),
            msg,
        })?;
        let seccomp =
            crate::linux::seccomp::Filter::from_spec(&spec).map_err(|e| Error::Config {
                path,
                msg: e.to_string(),
            })?;
        Ok(Bundle {
            dir,
            rootfs,
            spec,
            seccomp,
        })
    }
}

/// Checks the parts of the spec that serde cannot, so that create fails
/// before anything is set up rather than halfway through.
fn validate(spec: &Spec) -> std::result::Result<(), String> {
    let process = spec.process().as_ref().ok_or("process is required")?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err("process.args must name a program".into()),
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    for env in process.env().iter().flatten() {
        if !env.contains('=') {
            return Err(format!("process.env entry {env:?} is not KEY=VALUE"));
        }
    }
    for rl in process.rlimits().iter().flatten() {
        if rl.soft() > rl.hard() {
            return Err(format!(
                "process.rlimits {}: soft limit {} exceeds hard limit {}",
                serde_json::to_value(rl.typ()).unwrap_or_default(),
                rl.soft(),
                rl.hard()
            ));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(format!(
                "mount destination {:?} must be an absolute path",
                m.destination()
            ));
        }
    }
    if let Some(h) = spec.hooks() {
        crate::hooks::validate(h)?;
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(format!(
                "process.ioPriority.priority {} is outside 0..7",
                io.priority()
            ));
        }
    }
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
    crate::linux::lsm::check(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        mount_label.as_deref(),
    )?;
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if let Some(r) = linux.resources() {
        crate::cgroups::validate::resources(r)?;
    }
    let mut seen = HashSet::new();
    let mut new_user = false;
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            let name = serde_json::to_value(ns.typ()).unwrap_or_default();
            return Err(format!("namespace {name} listed twice"));
        }
        if ns.typ() == LinuxNamespaceType::User && ns.path().is_none() {
            new_user = true;
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(format!("namespace path {p:?} must be absolute"));
            }
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_user && !has_maps {
        return Err("a new user namespace needs linux.uidMappings and linux.gidMappings".into());
    }
    if !seen.contains(&LinuxNamespaceType::User) && has_maps {
        return Err("linux.uidMappings given without a user namespace".into());
    }
    if linux.time_offsets().is_some() && !seen.contains(&LinuxNamespaceType::Time) {
        return Err("linux.timeOffsets given without a time namespace".into());
    }
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        let ns = crate::linux::sysctl::namespace_of(key)?;
        let kind = match ns {
            "ipc" => LinuxNamespaceType::Ipc,
            "network" => LinuxNamespaceType::Network,
            _ => LinuxNamespaceType::Uts,
        };
        if !seen.contains(&kind) {
            return Err(format!(
                "linux.sysctl: {key} needs the container's own {ns} namespace"
            ));
        }
    }
    if let Some(p) = linux.rootfs_propagation() {
        crate::linux::mounts::propagation_flag(p)
            .ok_or_else(|| format!("unknown linux.rootfsPropagation {p:?}"))?;
    }
    if let Some(p) = linux.personality() {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(format!(
                "linux.personality.flags {:?} are not supported yet",
                p.flags()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The validation error for the default spec after `edit`.
    fn error_after(edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(&default_spec_json(false)).unwrap();
        edit(&mut v);
        let spec: Spec = serde_json::from_value(v).expect("test spec parses");
        validate(&spec).unwrap_err()
    }

    fn add_namespace(v: &mut Value, ns: Value) {
        v["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
    }

    #[test]
    fn default_spec_is_valid() {
        let spec: Spec = serde_json::from_str(&default_spec_json(false)).unwrap();
        assert_eq!(validate(&spec), Ok(()));
    }

    #[test]
    fn rejects_empty_args_and_relative_cwd() {
        let err = error_after(|v| v["process"]["args"] = json!([]));
        assert!(err.contains("process.args"), "{err}");
        let err = error_after(|v| v["process"]["cwd"] = json!("rel"));
        assert!(err.contains("process.cwd"), "{err}");
    }

    #[test]
    fn rejects_user_namespace_without_maps() {
        let err = error_after(|v| add_namespace(v, json!({"type": "user"})));
        assert!(err.contains("uidMappings"), "{err}");
    }

    #[test]
    fn rejects_soft_rlimit_above_hard() {
        let err = error_after(|v| {
            v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
        });
        assert!(
            err.contains("RLIMIT_NOFILE") && err.contains("soft limit 10"),
            "{err}"
        );
    }

    #[test]
    fn rejects_duplicate_namespace() {
        let err = error_after(|v| add_namespace(v, json!({"type": "pid"})));
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let err = error_after(|v| {
            v["linux"]["namespaces"] = json!([{"type": "mount"}]);
            v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        });
        assert!(
            err.contains("net.ipv4.ip_forward") && err.contains("network"),
            "{err}"
        );
    }

    #[test]
    fn relative_hook_path_is_rejected() {
        let err = error_after(|v| v["hooks"] = json!({"poststart": [{"path": "rel/hook"}]}));
        assert!(err.contains("hooks.poststart"), "{err}");
    }
}

//! Running unprivileged: whether brig is rootless (`--rootless
//! true|false|auto`), and where a rootless brig keeps its state.
//!
//! Auto means rootless when not root, and also when root only of a user
//! namespace (rootless podman runs its runtime so): no cgroup there is ours
//! unless delegated, as runc decides.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The `--rootless` flag's value (None when not given, which is auto).
pub fn mode(flag: Option<&str>) -> Result<bool> {
    match flag {
        None | Some("auto") => {
            Ok(!nix::unistd::geteuid().is_root() || crate::linux::idmap::in_user_namespace())
        }
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(Error::Other(format!(
            "--rootless {v}: want true, false or auto"
        ))),
    }
}

/// `$XDG_RUNTIME_DIR/brig`, as runc keeps `$XDG_RUNTIME_DIR/runc`: the
/// per-user tmpfs that systemd-logind makes and removes with the session.
pub fn state_root() -> Result<PathBuf> {
    if nix::unistd::geteuid().is_root() && std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // Root of a user namespace with no runtime dir of its own.
        return Ok(PathBuf::from("/run/brig"));
    }
    let hint = "rootless brig keeps its state in $XDG_RUNTIME_DIR/brig (or give --root DIR)";
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Other(format!("XDG_RUNTIME_DIR is not set: {hint}")))?;
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "XDG_RUNTIME_DIR={} does not exist: {hint}",
            dir.display()
        )));
    }
    Ok(dir.join("brig"))
}

//! linux.sysctl: only keys that belong to a namespace the container owns,
//! as runc allows them; anything else would change the host.

use super::paths;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::Path;

/// IPC-namespaced keys outside fs.mqueue.*.
const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a key needs ("ipc", "network", "uts"), or an error naming
/// the key when no namespace makes it safe.
pub fn namespace_of(key: &str) -> std::result::Result<&'static str, String> {
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok("ipc");
    }
    if key.starts_with("net.") {
        return Ok("network");
    }
    if key == "kernel.domainname" {
        return Ok("uts");
    }
    if key == "kernel.hostname" {
        return Err("linux.sysctl: kernel.hostname: set the spec's hostname instead".into());
    }
    Err(format!(
        "linux.sysctl: {key:?} is not namespaced and would change the host"
    ))
}

/// Writes the values through the container's own procfs (under `root`), so
/// each lands in the namespace init lives in. Called before read-only paths
/// make /proc/sys read-only.
pub fn apply(root: BorrowedFd, sysctl: &HashMap<String, String>) -> Result<()> {
    for (key, value) in sysctl {
        let rel = format!("/proc/sys/{}", key.replace('.', "/"));
        let fd = paths::open_in_root(root, Path::new(&rel), libc::O_WRONLY)
            .map_err(|e| Error::sys(format!("linux.sysctl {key}: opening {rel}"), e))?;
        // The rootfs may ship its own /proc: only a real procfs takes the value.
        let on_procfs = nix::sys::statfs::fstatfs(&fd)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
        if !on_procfs {
            return Err(Error::Other(format!(
                "linux.sysctl {key}: {rel} is not on procfs (is /proc mounted?)"
            )));
        }
        nix::unistd::write(&fd, value.as_bytes())
            .map_err(|e| Error::sys(format!("linux.sysctl {key}={value}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_keys_pass() {
        assert_eq!(namespace_of("net.ipv4.ip_forward"), Ok("network"));
        assert_eq!(namespace_of("kernel.shm_rmid_forced"), Ok("ipc"));
        assert_eq!(namespace_of("fs.mqueue.msg_max"), Ok("ipc"));
        assert_eq!(namespace_of("kernel.domainname"), Ok("uts"));
        let e = namespace_of("kernel.panic").unwrap_err();
        assert!(e.contains("kernel.panic"), "{e}");
        assert!(namespace_of("vm.swappiness").is_err());
        assert!(namespace_of("kernel.hostname").is_err());
    }
}

//! cgroups for an unprivileged user: usable only where the user was
//! delegated a subtree (it owns the directories). Without one, a container
//! runs in the user's own cgroup, as runc does, unless its spec asks for a
//! limit, which nothing could enforce: that is an error, not a silent skip.

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;

/// Whether creating the container's cgroup failed for want of permission.
pub fn not_delegated(e: &Error) -> bool {
    let errno = match e {
        Error::Io { err, .. } => err.raw_os_error(),
        Error::Sys { err, .. } => Some(*err as i32),
        _ => None,
    };
    matches!(errno, Some(libc::EACCES | libc::EPERM | libc::EROFS))
}

/// Fails, naming the limits, when `r` asks for any (device rules aside:
/// the user namespace already keeps the container from device nodes).
pub fn check_no_limits(r: Option<&LinuxResources>, cause: &Error) -> Result<()> {
    let Some(r) = r else { return Ok(()) };
    let mut asked = Vec::new();
    if r.memory().is_some() {
        asked.push("memory");
    }
    if r.cpu().is_some() {
        asked.push("cpu");
    }
    if r.pids().is_some() {
        asked.push("pids");
    }
    if r.block_io().is_some() {
        asked.push("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        asked.push("hugepageLimits");
    }
    if r.network().is_some() {
        asked.push("network");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        asked.push("rdma");
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        asked.push("unified");
    }
    if asked.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "rootless: linux.resources sets {} but this user has no delegated cgroup to enforce it in ({cause})",
        asked.join(", ")
    )))
}

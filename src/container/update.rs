//! `update`: change a live container's resources.

use super::store::Store;
use super::Status;
use crate::cgroups;
use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;

/// Parses LinuxResources JSON (runc's `--resources` format).
pub fn parse(json: &str, source: &str) -> Result<LinuxResources> {
    serde_json::from_str(json).map_err(|e| Error::Other(format!("{source}: {e}")))
}

pub fn update(store: &Store, id: &str, r: &LinuxResources) -> Result<()> {
    cgroups::validate::resources(r).map_err(Error::Other)?;
    let c = store.load(id)?;
    c.expect(
        &[Status::Created, Status::Running, Status::Paused],
        "only a live container can be updated",
    )?;
    let cg = c
        .cgroup()
        .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup")))?;
    // Device rules first: they are the ones that can still be refused.
    if let Some(devices) = r.devices().as_deref().filter(|d| !d.is_empty()) {
        let rules = cgroups::devices::rules_from(devices)?;
        cg.set_devices(&rules)?;
    }
    cg.set(r)
}

//! The five capability sets of process.capabilities, applied around the uid
//! switch the way runc does.

use crate::error::{Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

/// The spec's names mapped to the kernel's. Names nobody knows were
/// rejected when config.json was parsed; names this kernel (or the caps
/// crate) does not know are skipped, as runc does.
fn convert(set: &Option<Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| {
            let name = serde_json::to_value(c).ok()?;
            Capability::from_str(name.as_str()?).ok()
        })
        .filter(|cap| supported.contains(cap))
        .collect()
}

/// The capabilities this kernel has, from one read of cap_last_cap rather
/// than one prctl probe per capability.
fn supported() -> CapsHashSet {
    let last: Option<u8> = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match last {
        Some(last) => caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect(),
        None => caps::runtime::thread_all_supported(),
    }
}

pub struct Plan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl Plan {
    pub fn new(c: &LinuxCapabilities) -> Plan {
        let supported = supported();
        Plan {
            bounding: convert(c.bounding(), &supported),
            effective: convert(c.effective(), &supported),
            permitted: convert(c.permitted(), &supported),
            inheritable: convert(c.inheritable(), &supported),
            ambient: convert(c.ambient(), &supported),
        }
    }

    /// Step one, while still root: shrink the bounding set (needs
    /// CAP_SETPCAP). Dropping a cap that is already gone is harmless, so the
    /// set is not read first.
    pub fn drop_bounding(&self) -> Result<()> {
        for cap in supported().difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|e| Error::Other(format!("dropping {cap} from bounding set: {e}")))?;
        }
        Ok(())
    }

    /// Step two, after setuid: the working sets, then ambient.
    pub fn apply(&self) -> Result<()> {
        let set = |which, value: &CapsHashSet, name: &str| {
            caps::set(None, which, value)
                .map_err(|e| Error::Other(format!("setting {name} capabilities: {e}")))
        };
        // Each capset must keep effective within permitted and inheritable
        // within what is permitted now: inheritable first, then shrink
        // effective, then permitted.
        set(CapSet::Inheritable, &self.inheritable, "inheritable")?;
        set(CapSet::Effective, &self.effective, "effective")?;
        set(CapSet::Permitted, &self.permitted, "permitted")?;
        // Ambient needs each cap permitted and inheritable; runc skips the
        // ones that are not, and so does brig (runc's default spec asks for
        // ambient caps without inheritable ones).
        for cap in &self.ambient {
            let _ = caps::raise(None, CapSet::Ambient, *cap);
        }
        Ok(())
    }
}

//! Where a container's processes run and allocate: process.execCPUAffinity
//! (sched_setaffinity) and linux.memoryPolicy (set_mempolicy).

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

/// "0-3,7" as a sorted list of numbers; the spec's format for CPU lists and
/// NUMA node lists.
pub fn parse_list(what: &str, s: &str) -> Result<Vec<usize>> {
    let bad = || Error::Other(format!("{what} {s:?}: not a list like \"0-3,7\""));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Pins the calling process to `cpus` (execCPUAffinity's "initial" before
/// set-up, "final" just before exec).
pub fn set_affinity(what: &str, cpus: &str) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in parse_list(what, cpus)? {
        set.set(cpu)
            .map_err(|e| Error::sys(format!("{what} {cpus:?}: cpu {cpu}"), e))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| Error::sys(format!("{what} {cpus:?}: sched_setaffinity"), e))
}

fn mode_number(m: MemoryPolicyModeType) -> libc::c_int {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn flag_bits(f: MemoryPolicyFlagType) -> libc::c_int {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
    }
}

/// The nodemask words and the maxnode argument set_mempolicy takes for
/// `nodes` (one more than the bits it may read, as libnuma passes it).
fn nodemask(nodes: &[usize]) -> (Vec<libc::c_ulong>, libc::c_ulong) {
    let bits = libc::c_ulong::BITS as usize;
    let words = nodes.last().map_or(0, |n| n / bits + 1);
    let mut mask = vec![0 as libc::c_ulong; words];
    for n in nodes {
        mask[n / bits] |= 1 << (n % bits);
    }
    (mask, (words * bits + 1) as libc::c_ulong)
}

/// linux.memoryPolicy for the calling process; inherited by what it forks
/// and kept across exec.
pub fn set_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    let nodes = match p.nodes() {
        Some(n) => parse_list("linux.memoryPolicy.nodes", n)?,
        None => Vec::new(),
    };
    let mode = p
        .flags()
        .iter()
        .flatten()
        .fold(mode_number(p.mode()), |m, f| m | flag_bits(*f));
    let (mask, maxnode) = nodemask(&nodes);
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: set_mempolicy reads at most maxnode-1 bits from a buffer of
    // that many bits (or nothing from a null mask).
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            ptr,
            if mask.is_empty() { 0 } else { maxnode },
        )
    };
    if r != 0 {
        return Err(Error::sys(
            format!("linux.memoryPolicy {} {:?}", p.mode(), p.nodes()),
            nix::Error::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_masks() {
        assert_eq!(parse_list("x", "0-2,5,1").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_list("x", "3-1").is_err());
        assert!(parse_list("x", "a").is_err());
        let (mask, maxnode) = nodemask(&[0, 65]);
        assert_eq!(mask, vec![1, 2]);
        assert_eq!(maxnode, 129);
    }
}

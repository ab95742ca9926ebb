//! Scheduling of the container's process: process.ioPriority,
//! process.scheduler, and linux.personality.

use crate::error::{Error, Result};
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

pub fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Other(format!(
            "process.ioPriority.priority {} is outside 0..7",
            p.priority()
        )));
    }
    let value = (class << IOPRIO_CLASS_SHIFT) | p.priority();
    // SAFETY: ioprio_set on ourselves (who 0) with a computed priority value.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } < 0 {
        return Err(Error::sys("ioprio_set", nix::Error::last()));
    }
    Ok(())
}

/// struct sched_attr of sched_setattr(2).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// The runtime spec's names of two `process.scheduler.flags` that
/// oci-spec 0.10 spells otherwise (its serde renaming makes them
/// SCHED_RESET_ON_FORK and SCHED_FLAG_D_L_OVERRUN), each with oci-spec's.
const FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// A config.json with the spec's spellings of those flags, rewritten to
/// the ones oci-spec reads, so that valid specs load (runc's and crun's
/// spelling). Only a document that names one of them is parsed twice;
/// only `process.scheduler.flags` is changed.
pub fn spec_flag_spellings(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let named = FLAG_SPELLINGS
        .iter()
        .any(|(spec, _)| raw.windows(spec.len()).any(|w| w == spec.as_bytes()));
    if !named {
        return raw.into();
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        // Malformed: let the real parse say why.
        return raw.into();
    };
    process_flag_spellings(&mut v["process"]);
    serde_json::to_vec(&v).map_or(raw.into(), Into::into)
}

/// The same for a process object (config.json's `process`, or exec's
/// process.json).
pub fn process_flag_spellings(process: &mut serde_json::Value) {
    let Some(flags) = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for flag in flags {
        if let Some((_, ours)) = FLAG_SPELLINGS.iter().find(|(spec, _)| flag == spec) {
            *flag = serde_json::Value::from(*ours);
        }
    }
}

pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |f, flag| {
        f | match flag {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: sched_setattr on ourselves (pid 0) with a fully initialised sched_attr.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        return Err(Error::sys(
            format!("process.scheduler {:?}", s.policy()),
            nix::Error::last(),
        ));
    }
    Ok(())
}

pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::Unsupported(format!(
            "linux.personality.flags {:?}",
            p.flags()
        )));
    }
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality(2) with a plain persona value.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(Error::sys("personality", nix::Error::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_spellings_of_scheduler_flags_load() {
        let raw = br#"{"ociVersion": "1.2.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "scheduler": {"policy": "SCHED_RR",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}},
            "annotations": {"x": "SCHED_FLAG_DL_OVERRUN"}}"#;
        let fixed = spec_flag_spellings(raw);
        let spec: oci_spec::runtime::Spec = serde_json::from_slice(&fixed).unwrap();
        let flags = spec
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap()
            .flags();
        assert_eq!(
            flags.as_deref().unwrap(),
            [
                LinuxSchedulerFlag::SchedResetOnFork,
                LinuxSchedulerFlag::SchedFlagDLOverrun,
                LinuxSchedulerFlag::SchedFlagReclaim
            ]
        );
        // Nothing else is touched.
        let annotations = spec.annotations().as_ref().unwrap();
        assert_eq!(annotations["x"], "SCHED_FLAG_DL_OVERRUN");
        // A document without them is not parsed here at all.
        let plain = br#"{"ociVersion": "1.2.0"}"#;
        assert!(matches!(
            spec_flag_spellings(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

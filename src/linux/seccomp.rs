//! linux.seccomp: the OCI profile compiled into one classic-BPF program and
//! loaded with seccomp(2) at the end of the container's init.
//!
//! seccompiler compiles the argument conditions of a rule (64-bit compares
//! split in halves, masked compares, long jumps). Its `SeccompFilter` has a
//! single match action for the whole filter, while a profile gives each rule
//! its own, so brig lays out the program around those rules itself:
//!
//! ```text
//! load arch; x86_64 -> A; i386 -> B (if listed); else KILL_PROCESS
//! A: load nr; nr >= 0x40000000 -> C (x32, if listed) or KILL_PROCESS
//!    [ENOSYS stub] unconditional syscalls by action, conditional chains,
//!    default action
//! B, C: the same for i386 and x32 numbers
//! ```
//!
//! The compares run in a line, but a syscall the filter allows whatever its
//! arguments costs nothing after its first call: since Linux 5.11 the kernel
//! emulates the program on syscall numbers alone (which this layout lets it
//! do) and caches those verdicts.
//!
//! What this means for a profile, and where it follows runc 1.1 (libseccomp
//! 2.5):
//! - **Architectures.** The native x86_64 ABI is always filtered.
//!   `SCMP_ARCH_X86` and `SCMP_ARCH_X32` add the same rules for i386 and x32
//!   callers, with those ABIs' own numbers and 32-bit argument compares, as
//!   libseccomp does. An ABI not listed never reaches the rules: its
//!   syscalls kill the process (libseccomp kills the thread), so a 32-bit
//!   `int 0x80` cannot step around the profile. Other architectures in the
//!   list cannot occur on this kernel and are accepted as no-ops.
//! - **Rules.** Syscall names this ABI does not have are skipped, as runc
//!   does. A rule whose action is the default action is dropped, as runc
//!   does. Conditions of one rule are ANDed; when two of them test the same
//!   argument, runc adds every condition as a rule of its own (ORed), and
//!   so does brig. For one syscall, the first rule without conditions wins
//!   over everything else (libseccomp's merge); otherwise its conditional
//!   rules are tried in profile order and the first match decides.
//!   libseccomp orders overlapping conditional rules with different actions
//!   by its own decision tree instead: such profiles are ambiguous and may
//!   differ from runc.
//! - **MASKED_EQ** takes the mask in `value` and the datum in `valueTwo`
//!   (0 when absent); the datum is masked too, as libseccomp does.
//! - **errnoRet** defaults to EPERM for ERRNO and TRACE, as runc.
//!   `SCMP_ACT_KILL` is `KILL_THREAD`, as runc.
//! - **ENOSYS stub.** As runc does, when the default action refuses
//!   (neither ALLOW, LOG nor TRACE), syscalls numbered above the highest one
//!   the profile names return ENOSYS instead, for each ABI the profile lists
//!   in `architectures`, so that a libc falls back from syscalls newer than
//!   the profile (clone3, faccessat2, ...).
//! - **i386 socketcall and ipc.** A rule on `socket`, `semop`, ... also
//!   applies to `socketcall`/`ipc` with that call number, as libseccomp does.
//!   The real arguments sit behind a pointer there, so a conditional rule
//!   applies to the multiplexer unconditionally when it is stricter than the
//!   default action, and not at all when it is more permissive (libseccomp
//!   keeps comparing the pointer arguments). `ipc` compares only the low 16
//!   bits of its call number, which is all the kernel reads.
//! - **Flags.** TSYNC, LOG and SPEC_ALLOW are passed to seccomp(2), checked
//!   against the kernel at create. Without `flags` none is set, as runc 1.1
//!   (runc 1.2 adds SPEC_ALLOW, which turns off the Speculative Store Bypass
//!   mitigation: brig keeps the kernel's choice). runc 1.1 refuses every flag.
//! - **SCMP_ACT_NOTIFY** rules need `listenerPath` (an absolute path):
//!   the filter is then loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER and the
//!   listener goes to the seccomp agent listening there (`seccomp_agent`).
//!   The process that loads the filter hands the listener to brig's parent
//!   with one sendmsg, before any agent has it, so `sendmsg` itself cannot
//!   be notified, nor can the default action (both refused: the process
//!   would wait for an agent that never comes). runc also refuses `write`,
//!   which its own hand-over uses; brig does not need to. WAIT_KILLABLE_RECV
//!   is passed on with notify rules and ignored without them, and TSYNC
//!   becomes TSYNC|TSYNC_ESRCH, the only form the kernel takes with a
//!   listener. Without notify rules, `listenerPath` and `listenerMetadata`
//!   are accepted and unused, as runc does.

#[path = "seccomp_syscalls.rs"]
mod syscalls;

use crate::error::{Error, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall, Spec,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

// linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE, EM_386 | __AUDIT_ARCH_LE.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;
/// linux/seccomp.h: ask the agent holding the filter's listener.
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// What a syscall from an ABI the profile does not cover gets.
const BAD_ABI: u32 = libc::SECCOMP_RET_KILL_PROCESS;
/// i386 multiplexers: socketcall(call, args) and ipc(call, ...).
const I386_SOCKETCALL: u32 = 102;
const I386_IPC: u32 = 117;

/// linux/net.h SYS_* call numbers of socketcall, sorted by name.
const SOCKETCALLS: &[(&str, u64)] = &[
    ("accept", 5),
    ("accept4", 18),
    ("bind", 2),
    ("connect", 3),
    ("getpeername", 7),
    ("getsockname", 6),
    ("getsockopt", 15),
    ("listen", 4),
    ("recv", 10),
    ("recvfrom", 12),
    ("recvmmsg", 19),
    ("recvmsg", 17),
    ("send", 9),
    ("sendmmsg", 20),
    ("sendmsg", 16),
    ("sendto", 11),
    ("setsockopt", 14),
    ("shutdown", 13),
    ("socket", 1),
    ("socketpair", 8),
];

/// linux/ipc.h call numbers of ipc, sorted by name.
const IPCCALLS: &[(&str, u64)] = &[
    ("msgctl", 14),
    ("msgget", 13),
    ("msgrcv", 12),
    ("msgsnd", 11),
    ("semctl", 3),
    ("semget", 2),
    ("semop", 1),
    ("semtimedop", 4),
    ("shmat", 21),
    ("shmctl", 24),
    ("shmdt", 22),
    ("shmget", 23),
];

/// A profile brig cannot turn into a filter. The message names the field
/// under `linux.seccomp` and its value, so that `create` can say which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("linux.seccomp.{field} {value}: {why}")]
    Invalid {
        field: String,
        value: String,
        why: String,
    },
    #[error("linux.seccomp.{field} {value}: not supported: {why}")]
    Unsupported {
        field: String,
        value: String,
        why: &'static str,
    },
    #[error("linux.seccomp: the filter needs {0} BPF instructions, the kernel takes at most {MAX_INSNS}")]
    TooLarge(usize),
}

impl From<ProfileError> for Error {
    fn from(e: ProfileError) -> Self {
        Error::Other(e.to_string())
    }
}

fn invalid(field: impl Into<String>, value: impl ToString, why: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        field: field.into(),
        value: value.to_string(),
        why: why.into(),
    }
}

fn unsupported(field: impl Into<String>, value: impl ToString, why: &'static str) -> ProfileError {
    ProfileError::Unsupported {
        field: field.into(),
        value: value.to_string(),
        why,
    }
}

/// A compiled profile, ready to load.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// Where the listener of a filter with notify rules goes.
    pub listener: Option<Listener>,
}

/// linux.seccomp.listenerPath and listenerMetadata of a profile with
/// notify rules.
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: std::path::PathBuf,
    pub metadata: String,
}

impl Filter {
    /// The spec's filter, if it has one.
    pub fn from_spec(spec: &Spec) -> Result<Option<Filter>> {
        let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        Ok(profile.map(compile).transpose()?)
    }

    /// Installs the filter on the calling thread (all threads with TSYNC).
    /// Without no_new_privs this needs CAP_SYS_ADMIN. Returns the listener
    /// of a filter with notify rules: until an agent reads it, a notified
    /// syscall of this process waits.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            // compile() keeps programs within MAX_INSNS, which fits.
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies `len` instructions out of a buffer that outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match r {
            0 => Ok(None),
            fd if fd > 0 && self.listener.is_some() => {
                // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
                Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
            }
            tid if tid > 0 => Err(Error::Other(format!(
                "loading the seccomp filter: thread {tid} cannot be synchronised (SECCOMP_FILTER_FLAG_TSYNC)"
            ))),
            _ => {
                let err = nix::Error::last();
                let op = if err == nix::Error::EACCES {
                    "loading the seccomp filter (without noNewPrivileges it needs CAP_SYS_ADMIN)"
                } else {
                    "loading the seccomp filter"
                };
                Err(Error::sys(op, err))
            }
        }
    }
}

/// `name`'s value in a table sorted by name. Names are narrowed down by
/// their first byte before any string compare: lookups are most of what
/// compiling a long profile costs.
fn find<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    let first = |n: &str| n.as_bytes().first().copied();
    let key = first(name);
    let start = table.partition_point(|(n, _)| first(n) < key);
    let end = start + table[start..].partition_point(|(n, _)| first(n) == key);
    let bucket = &table[start..end];
    let i = bucket.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
    Some(bucket[i].1)
}

/// A syscall's numbers on the three ABIs, if any of them knows the name.
fn numbers(name: &str) -> Option<[u16; 3]> {
    find(syscalls::SYSCALLS, name).or_else(|| find(syscalls::SINCE_6_1, name))
}

/// The x86 ABIs a syscall can arrive through on an x86_64 kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    const ALL: [Abi; 3] = [Abi::X86_64, Abi::I386, Abi::X32];

    /// The number the filter sees for a syscall of `numbers` (x32 numbers
    /// carry their bit).
    fn pick(self, numbers: [u16; 3]) -> Option<u32> {
        let n = numbers[self.index()];
        let n = (n != syscalls::NONE).then_some(u32::from(n))?;
        Some(if self == Abi::X32 {
            n | X32_SYSCALL_BIT
        } else {
            n
        })
    }

    #[cfg(test)]
    fn number(self, name: &str) -> Option<u32> {
        numbers(name).and_then(|n| self.pick(n))
    }

    /// libseccomp compares 64-bit arguments on x86_64 and only the low 32
    /// bits, all that the kernel reads, for the 32-bit ABIs.
    fn arg_len(self) -> SeccompCmpArgLen {
        match self {
            Abi::X86_64 => SeccompCmpArgLen::Qword,
            Abi::I386 | Abi::X32 => SeccompCmpArgLen::Dword,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One condition on one syscall argument.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cond {
    index: u8,
    op: SeccompCmpOp,
    value: u64,
}

/// Conditions (ANDed; none: always) and the action taken when they hold.
#[derive(Clone, Debug)]
struct Rule {
    conds: Vec<Cond>,
    ret: u32,
}

/// What one syscall number compiles to.
enum Chain<'a> {
    Always(u32),
    /// Tried in order; none matching means the default action.
    Conditional(Vec<&'a Rule>),
}

/// The kernel return value of an action, with errnoRet for ERRNO and TRACE.
/// `fields` name the action and errnoRet fields, for errors.
fn action_ret(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    fields: (&str, &str),
) -> Result<u32, ProfileError> {
    let data = || match errno_ret {
        None => Ok(libc::EPERM as u32),
        Some(v) if v <= libc::SECCOMP_RET_DATA => Ok(v),
        Some(v) => Err(invalid(
            fields.1,
            v,
            "does not fit the 16 bits of SECCOMP_RET_DATA",
        )),
    };
    let action = match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(data()?),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(data()?),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => return Ok(SECCOMP_RET_USER_NOTIF),
    };
    Ok(u32::from(action))
}

/// Whether `a` takes precedence over `b` in the kernel's order (KILL_PROCESS
/// first, ALLOW last).
fn stricter(a: u32, b: u32) -> bool {
    let class = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
    class(a) < class(b)
}

fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<Cond, ProfileError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| {
            invalid(
                format!("{field}.index"),
                arg.index(),
                "a syscall has 6 arguments, 0 to 5",
            )
        })?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(Cond { index, op, value })
}

/// The condition sets of one profile entry, each a rule of its own: one
/// (possibly empty) set, or one set per condition when two test the same
/// argument (runc's matchCall).
fn condition_sets(entry: &LinuxSyscall, i: usize) -> Result<Vec<Vec<Cond>>, ProfileError> {
    let conds = entry
        .args()
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, a)| condition(a, &format!("syscalls[{i}].args[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = [false; 6];
    let repeated = conds
        .iter()
        .any(|c| std::mem::replace(&mut seen[usize::from(c.index)], true));
    Ok(if repeated {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

/// The multiplexer and call-number condition through which i386 reaches
/// `name`, if it is a socket or SysV IPC call.
fn i386_multiplexed(name: &str) -> Option<(u32, Cond)> {
    let (mux, op, value) = match find(SOCKETCALLS, name) {
        Some(call) => (I386_SOCKETCALL, SeccompCmpOp::Eq, call),
        // ipc() takes the call from the low 16 bits and a version from the rest.
        None => (
            I386_IPC,
            SeccompCmpOp::MaskedEq(0xffff),
            find(IPCCALLS, name)?,
        ),
    };
    Some((
        mux,
        Cond {
            index: 0,
            op,
            value,
        },
    ))
}

/// Which ABIs get the rules, and which the profile lists by name (those
/// get runc's ENOSYS stub).
struct Abis {
    enabled: [bool; 3],
    listed: [bool; 3],
}

fn abis(list: Option<&Vec<Arch>>) -> Abis {
    let mut listed = [false; 3];
    for arch in list.into_iter().flatten() {
        match arch {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => listed[Abi::X86_64.index()] = true,
            Arch::ScmpArchX86 => listed[Abi::I386.index()] = true,
            Arch::ScmpArchX32 => listed[Abi::X32.index()] = true,
            // Another architecture's syscalls cannot reach an x86_64 kernel.
            _ => {}
        }
    }
    let mut enabled = listed;
    // libseccomp always filters the native ABI, listed or not.
    enabled[Abi::X86_64.index()] = true;
    Abis { enabled, listed }
}

/// The seccomp(2) flags of a profile; `notify` when it has notify rules.
fn flags(
    list: Option<&Vec<LinuxSeccompFilterFlag>>,
    notify: bool,
) -> Result<libc::c_ulong, ProfileError> {
    let mut bits = 0;
    for flag in list.into_iter().flatten() {
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful (and only taken by the kernel) with a listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if notify {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if bits & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    if bits != 0 && !kernel_takes_flags(bits) {
        let names: Vec<String> = list.into_iter().flatten().map(|f| f.to_string()).collect();
        return Err(unsupported(
            "flags",
            names.join(","),
            "this kernel does not know all of them",
        ));
    }
    Ok(bits)
}

/// The kernel checks the flags (EINVAL) before it reads the program, so a
/// NULL program tells the two apart (EFAULT) without installing anything.
fn kernel_takes_flags(bits: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced by user space; the kernel fails with EFAULT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            bits,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    !(r < 0 && nix::Error::last() == nix::Error::EINVAL)
}

/// Whether the profile has notify rules, and if so whether brig can serve
/// them (see the module's notes).
fn notify_rules(profile: &LinuxSeccomp) -> Result<bool, ProfileError> {
    let notify = LinuxSeccompAction::ScmpActNotify;
    if profile.default_action() == notify {
        return Err(invalid(
            "defaultAction",
            notify,
            "cannot be the default action: the process that loads the filter \
             would wait for an agent before it could hand the listener over",
        ));
    }
    let mut any = false;
    for (i, entry) in profile.syscalls().iter().flatten().enumerate() {
        if entry.action() != notify {
            continue;
        }
        any = true;
        if entry.names().iter().any(|n| n == "sendmsg") {
            return Err(invalid(
                format!("syscalls[{i}].action"),
                notify,
                "SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall: \
                 brig hands the listener to the seccomp agent with it",
            ));
        }
    }
    if any {
        match profile.listener_path() {
            Some(p) if p.is_absolute() => {}
            Some(p) if !p.as_os_str().is_empty() => {
                return Err(invalid(
                    "listenerPath",
                    p.display(),
                    "must be an absolute path (of the seccomp agent's socket)",
                ))
            }
            _ => {
                return Err(invalid(
                    "listenerPath",
                    "\"\"",
                    "SCMP_ACT_NOTIFY rules need a seccomp agent: set the path of its socket",
                ))
            }
        }
    }
    Ok(any)
}

/// Translates a whole `linux.seccomp` object. Fails on anything the filter
/// could not enforce as written.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, ProfileError> {
    // listenerPath and listenerMetadata only serve SCMP_ACT_NOTIFY rules,
    // which are refused below: without any, the agent would never be asked,
    // and runc accepts such a profile.
    let default = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        ("defaultAction", "defaultErrnoRet"),
    )?;
    let notify = notify_rules(profile)?;
    let flags = flags(profile.flags().as_ref(), notify)?;
    let abis = abis(profile.architectures().as_ref());

    // Rules in profile order, and for each ABI the (syscall number, rule
    // index) pairs packed in a u64 that sorts by number, then by order.
    let mut rules: Vec<Rule> = Vec::new();
    let mut keys: [Vec<u64>; 3] = Default::default();
    let key = |nr: u32, rule: usize| (u64::from(nr) << 32) | rule as u64;
    // The highest syscall number the profile names, whatever the action.
    let mut highest: [Option<u32>; 3] = [None; 3];
    for (i, entry) in profile.syscalls().iter().flatten().enumerate() {
        let ret = action_ret(
            entry.action(),
            entry.errno_ret(),
            (
                &format!("syscalls[{i}].action"),
                &format!("syscalls[{i}].errnoRet"),
            ),
        )?;
        let sets = condition_sets(entry, i)?;
        let first = rules.len();
        if ret != default {
            rules.extend(sets.iter().map(|conds| Rule {
                conds: conds.clone(),
                ret,
            }));
        }
        let entry_rules = first..rules.len();
        for name in entry.names() {
            if name.is_empty() {
                return Err(invalid(
                    format!("syscalls[{i}].names"),
                    "\"\"",
                    "a syscall name cannot be empty",
                ));
            }
            let row = numbers(name);
            for abi in Abi::ALL.into_iter().filter(|a| abis.enabled[a.index()]) {
                let nr = row.and_then(|r| abi.pick(r));
                let top = &mut highest[abi.index()];
                *top = (*top).max(nr);
                if ret == default {
                    continue;
                }
                let table = &mut keys[abi.index()];
                if let Some(nr) = nr {
                    table.extend(entry_rules.clone().map(|r| key(nr, r)));
                }
                if abi != Abi::I386 {
                    continue;
                }
                let Some((mux, call)) = i386_multiplexed(name) else {
                    continue;
                };
                for conds in &sets {
                    if conds.is_empty() || stricter(ret, default) {
                        let conds = vec![call.clone()];
                        table.push(key(mux, rules.len()));
                        rules.push(Rule { conds, ret });
                    }
                }
            }
        }
    }

    let refuses = !matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let enosys = u32::from(SeccompAction::Errno(libc::ENOSYS as u32));
    let mut sections = Vec::new();
    for abi in Abi::ALL {
        if !abis.enabled[abi.index()] {
            continue;
        }
        let stub = highest[abi.index()]
            .filter(|_| refuses && default != enosys && abis.listed[abi.index()]);
        let table = std::mem::take(&mut keys[abi.index()]);
        sections.push((abi, section(abi, &rules, table, stub, default)?));
    }
    let program = assemble(sections);
    if program.len() > MAX_INSNS {
        return Err(ProfileError::TooLarge(program.len()));
    }
    Ok(Filter {
        program,
        flags,
        listener: notify.then(|| Listener {
            path: profile.listener_path().clone().unwrap_or_default(),
            metadata: profile.listener_metadata().clone().unwrap_or_default(),
        }),
    })
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(op: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn load_word(offset: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn ret(value: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, value)
}

fn skip(n: usize) -> libc::sock_filter {
    // Programs stay within MAX_INSNS, so any jump fits.
    stmt(libc::BPF_JMP | libc::BPF_JA, n as u32)
}

// struct seccomp_data: int nr; __u32 arch; ...
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// One ABI's part of the program, from the load of the syscall number.
fn section(
    abi: Abi,
    rules: &[Rule],
    mut keys: Vec<u64>,
    enosys_above: Option<u32>,
    default: u32,
) -> Result<Vec<libc::sock_filter>, ProfileError> {
    let mut out = vec![load_word(NR_OFFSET)];
    if let Some(highest) = enosys_above {
        out.push(jump(libc::BPF_JGT, highest, 0, 1));
        out.push(ret(u32::from(SeccompAction::Errno(libc::ENOSYS as u32))));
    }
    // By syscall number, each syscall's rules in profile order.
    keys.sort_unstable();
    let chains = keys.chunk_by(|a, b| a >> 32 == b >> 32).map(|group| {
        let nr = (group[0] >> 32) as u32;
        let group = group.iter().map(|k| &rules[(k & 0xffff_ffff) as usize]);
        // libseccomp: an unconditional rule replaces a syscall's conditional
        // ones, and the first unconditional rule stays.
        let chain = match group.clone().find(|r| r.conds.is_empty()) {
            Some(r) => Chain::Always(r.ret),
            None => Chain::Conditional(group.collect()),
        };
        (nr, chain)
    });
    let mut always: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut conditional = Vec::new();
    for (nr, chain) in chains {
        match chain {
            Chain::Always(r) => always.entry(r).or_default().push(nr),
            Chain::Conditional(rules) => conditional.push((nr, rules)),
        }
    }
    // Syscalls with the same action share one return, behind a run of
    // compares whose 8-bit jumps reach it.
    for (r, nrs) in always {
        for run in nrs.chunks(usize::from(u8::MAX)) {
            for (i, nr) in run.iter().enumerate() {
                out.push(jump(libc::BPF_JEQ, *nr, (run.len() - i) as u8, 0));
            }
            out.push(skip(1));
            out.push(ret(r));
        }
    }
    for (nr, rules) in conditional {
        let mut chain = Vec::new();
        for rule in rules {
            chain.extend(rule_program(abi, rule)?);
            chain.push(ret(rule.ret));
        }
        chain.push(ret(default));
        out.push(jump(libc::BPF_JEQ, nr, 1, 0));
        out.push(skip(chain.len()));
        out.extend(chain);
    }
    out.push(ret(default));
    Ok(out)
}

/// seccompiler's code for one rule: it falls through to the next
/// instruction (the rule's return) when all conditions hold, and jumps just
/// past that return when one fails.
fn rule_program(abi: Abi, rule: &Rule) -> Result<Vec<libc::sock_filter>, ProfileError> {
    let backend = |e: seccompiler::BackendError| invalid("syscalls", "", e.to_string());
    let conds = rule
        .conds
        .iter()
        .map(|c| SeccompCondition::new(c.index, abi.arg_len(), c.op.clone(), c.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let rule = SeccompRule::new(conds).map_err(backend)?;
    Ok(seccompiler::BpfProgram::from(rule)
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

/// The architecture dispatch in front of the sections.
fn assemble(sections: Vec<(Abi, Vec<libc::sock_filter>)>) -> Vec<libc::sock_filter> {
    let len_of = |abi| {
        sections
            .iter()
            .find(|(a, _)| *a == abi)
            .map(|(_, s)| s.len())
    };
    let (i386, x32) = (len_of(Abi::I386), len_of(Abi::X32));
    // load arch; jeq x86_64; ja; [jeq i386; ja]; ret bad
    let head = 4 + if i386.is_some() { 2 } else { 0 };
    // The x86_64 section starts with its own load, then the x32 split.
    let x86_64 = len_of(Abi::X86_64).unwrap_or(0) + 2;
    let start_x86_64 = head;
    let start_i386 = start_x86_64 + x86_64;
    let start_x32 = start_i386 + i386.unwrap_or(0);

    let mut p = vec![load_word(ARCH_OFFSET)];
    p.push(jump(libc::BPF_JEQ, AUDIT_ARCH_X86_64, 0, 1));
    p.push(skip(start_x86_64 - p.len() - 1));
    if i386.is_some() {
        p.push(jump(libc::BPF_JEQ, AUDIT_ARCH_I386, 0, 1));
        p.push(skip(start_i386 - p.len() - 1));
    }
    p.push(ret(BAD_ABI));
    for (abi, mut code) in sections {
        if abi == Abi::X86_64 {
            // x32 syscalls also say AUDIT_ARCH_X86_64; their numbers carry
            // bit 30 (libseccomp sends everything from there up to x32).
            let split = code.split_off(1);
            p.extend(code);
            p.push(jump(libc::BPF_JGE, X32_SYSCALL_BIT, 0, 1));
            if x32.is_some() {
                let here = p.len();
                p.push(skip(start_x32 - here - 1));
            } else {
                p.push(ret(BAD_ABI));
            }
            p.extend(split);
        } else {
            p.extend(code);
        }
    }
    p
}

/// The seccomp part of `brig features`, in runc's shape.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "enabled": true,
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "knownFlags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ],
        "supportedFlags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("test profile parses")
    }

    fn filter(v: serde_json::Value) -> Filter {
        compile(&profile(v)).expect("test profile compiles")
    }

    fn error(v: serde_json::Value) -> ProfileError {
        match compile(&profile(v)) {
            Ok(_) => panic!("profile compiled"),
            Err(e) => e,
        }
    }

    /// A classic-BPF interpreter for the instructions the compiler emits,
    /// so that tests check what the kernel would decide.
    fn eval(f: &Filter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = vec![nr, arch, 0, 0];
        for a in args {
            data.push(a as u32);
            data.push((a >> 32) as u32);
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = f.program[pc];
            pc += 1;
            let code = u32::from(i.code);
            let cond = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = data[i.k as usize / 4],
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += cond(a == i.k),
                c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += cond(a > i.k),
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += cond(a >= i.k),
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    /// x86_64 `nr` with arguments.
    fn call(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
        let nr = Abi::X86_64.number(name).expect("known syscall");
        eval(f, AUDIT_ARCH_X86_64, nr, args)
    }

    fn rule(action: &str, args: serde_json::Value) -> serde_json::Value {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": action, "args": args}],
        })
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        for t in [syscalls::SYSCALLS, syscalls::SINCE_6_1] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", &t[..3]);
        }
        for t in [SOCKETCALLS, IPCCALLS] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", &t[..3]);
        }
        assert!(syscalls::SINCE_6_1
            .iter()
            .all(|(n, _)| numbers(n).is_some()));
        assert!(syscalls::SINCE_6_1
            .iter()
            .all(|(n, _)| syscalls::SYSCALLS.iter().all(|(m, _)| m != n)));
        assert_eq!(Abi::X86_64.number("mkdir"), Some(83));
        assert_eq!(Abi::I386.number("mkdir"), Some(39));
        assert_eq!(Abi::X32.number("execve"), Some(X32_SYSCALL_BIT | 520));
        assert_eq!(Abi::X86_64.number("mseal"), Some(462));
        assert_eq!(Abi::I386.number("uretprobe"), None);
    }

    #[test]
    fn every_action() {
        let cases = [
            ("SCMP_ACT_ALLOW", None, ALLOW),
            ("SCMP_ACT_ERRNO", None, errno(libc::EPERM)),
            ("SCMP_ACT_ERRNO", Some(28), errno(libc::ENOSPC)),
            ("SCMP_ACT_KILL", None, libc::SECCOMP_RET_KILL_THREAD),
            ("SCMP_ACT_KILL_THREAD", None, libc::SECCOMP_RET_KILL_THREAD),
            ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
            ("SCMP_ACT_TRAP", None, libc::SECCOMP_RET_TRAP),
            ("SCMP_ACT_TRACE", None, libc::SECCOMP_RET_TRACE | 1),
            ("SCMP_ACT_TRACE", Some(7), libc::SECCOMP_RET_TRACE | 7),
            ("SCMP_ACT_LOG", None, libc::SECCOMP_RET_LOG),
        ];
        for (action, errno_ret, want) in cases {
            let f = filter(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "syscalls": [{"names": ["getpid"], "action": action, "errnoRet": errno_ret}],
            }));
            assert_eq!(call(&f, "getpid", [0; 6]), want, "{action} {errno_ret:?}");
            assert_eq!(call(&f, "getppid", [0; 6]), errno(libc::ENOSYS), "default");
        }
    }

    #[test]
    fn default_errno_is_eperm_and_errno_ret_is_checked() {
        let f = filter(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
        assert_eq!(call(&f, "getpid", [0; 6]), errno(libc::EPERM));
        let e = error(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}],
        }));
        assert_eq!(
            e.to_string().split(' ').next(),
            Some("linux.seccomp.syscalls[0].errnoRet")
        );
    }

    #[test]
    fn every_operator() {
        const BIG: u64 = 0x1_0000_0005; // the halves must be compared apart
                                        // (operator, value, [(argument, refused)])
        type Case = (&'static str, u64, &'static [(u64, bool)]);
        let cases: &[Case] = &[
            (
                "SCMP_CMP_EQ",
                BIG,
                &[(BIG, true), (5, false), (BIG + 1, false)],
            ),
            ("SCMP_CMP_NE", BIG, &[(BIG, false), (5, true), (0, true)]),
            (
                "SCMP_CMP_LT",
                BIG,
                &[(BIG - 1, true), (5, true), (BIG, false), (u64::MAX, false)],
            ),
            (
                "SCMP_CMP_LE",
                BIG,
                &[
                    (BIG, true),
                    (0, true),
                    (BIG + 1, false),
                    (0x2_0000_0000, false),
                ],
            ),
            (
                "SCMP_CMP_GE",
                BIG,
                &[(BIG, true), (u64::MAX, true), (BIG - 1, false), (6, false)],
            ),
            (
                "SCMP_CMP_GT",
                BIG,
                &[
                    (BIG + 1, true),
                    (0x2_0000_0000, true),
                    (BIG, false),
                    (6, false),
                ],
            ),
        ];
        for (op, value, probes) in cases {
            let f = filter(rule(
                "SCMP_ACT_ERRNO",
                json!([{"index": 2, "value": value, "op": op}]),
            ));
            for (arg, blocked) in *probes {
                let got = call(&f, "getpid", [0, 0, *arg, 0, 0, 0]);
                let want = if *blocked { errno(libc::EPERM) } else { ALLOW };
                assert_eq!(got, want, "{op} {value:#x} on {arg:#x}");
            }
        }
    }

    #[test]
    fn masked_eq_takes_mask_in_value_and_datum_in_value_two() {
        // (arg & 0xf0) == 0x20, across the 32-bit halves too.
        let mask = 0xf0_0000_00f0u64;
        let f = filter(rule(
            "SCMP_ACT_ERRNO",
            json!([{"index": 0, "value": mask, "valueTwo": 0x20_0000_0020u64, "op": "SCMP_CMP_MASKED_EQ"}]),
        ));
        let blocked = |a: u64| call(&f, "getpid", [a, 0, 0, 0, 0, 0]) != ALLOW;
        assert!(blocked(0x20_0000_0020));
        assert!(blocked(0x2f_0000_002f));
        assert!(!blocked(0x20));
        assert!(!blocked(0x30_0000_0020));
        // valueTwo absent is 0, as runc: Docker's clone rule.
        let f = filter(rule(
            "SCMP_ACT_ERRNO",
            json!([{"index": 0, "value": 0x7e02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]),
        ));
        assert_ne!(call(&f, "getpid", [0x11, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(call(&f, "getpid", [0x2000_0000, 0, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn conditions_on_different_arguments_are_anded() {
        let f = filter(rule(
            "SCMP_ACT_ERRNO",
            json!([
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},
            ]),
        ));
        assert_ne!(call(&f, "getpid", [1, 2, 0, 0, 0, 0]), ALLOW);
        assert_eq!(call(&f, "getpid", [1, 3, 0, 0, 0, 0]), ALLOW);
        assert_eq!(call(&f, "getpid", [0, 2, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn conditions_on_the_same_argument_are_ored_like_runc() {
        let f = filter(rule(
            "SCMP_ACT_ERRNO",
            json!([
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
            ]),
        ));
        for (a0, a1, blocked) in [(1, 0, true), (5, 0, true), (0, 9, true), (2, 2, false)] {
            let got = call(&f, "getpid", [a0, a1, 0, 0, 0, 0]) != ALLOW;
            assert_eq!(got, blocked, "({a0}, {a1})");
        }
    }

    #[test]
    fn unconditional_rule_wins_and_first_conditional_match_decides() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28,
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28,
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 4, "op": "SCMP_CMP_GE"}]},
            ],
        }));
        assert_eq!(call(&f, "getpid", [5, 0, 0, 0, 0, 0]), errno(libc::EPERM));
        assert_eq!(call(&f, "getppid", [5, 0, 0, 0, 0, 0]), errno(libc::ENOSPC));
        assert_eq!(call(&f, "getppid", [4, 0, 0, 0, 0, 0]), errno(libc::EPERM));
        assert_eq!(call(&f, "getppid", [3, 0, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn rules_with_the_default_action_are_dropped() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            ],
        }));
        assert_eq!(call(&f, "getpid", [0; 6]), ALLOW);
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_call", "getpid"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["another_one"], "action": "SCMP_ACT_KILL"}],
        }));
        assert_eq!(call(&f, "getpid", [0; 6]), errno(libc::EPERM));
        assert_eq!(call(&f, "getppid", [0; 6]), ALLOW);
    }

    #[test]
    fn notify_rules_need_an_agent_and_get_a_listener() {
        let notify = |extra: serde_json::Value| {
            let mut p = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
            });
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        };
        let f = filter(notify(json!({"listenerPath": "/run/agent.sock",
                                     "listenerMetadata": "bar",
                                     "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
                                               "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})));
        assert_eq!(call(&f, "mkdir", [0; 6]), SECCOMP_RET_USER_NOTIF);
        assert_eq!(call(&f, "getpid", [0; 6]), ALLOW);
        let l = f.listener.as_ref().expect("a listener");
        assert_eq!(l.path, std::path::Path::new("/run/agent.sock"));
        assert_eq!(l.metadata, "bar");
        assert_eq!(
            f.flags,
            libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
                | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        for (extra, field) in [
            (json!({}), "listenerPath"),
            (json!({"listenerPath": ""}), "listenerPath"),
            (json!({"listenerPath": "@abstract"}), "listenerPath"),
            (
                json!({"listenerPath": "/a", "defaultAction": "SCMP_ACT_NOTIFY"}),
                "defaultAction",
            ),
        ] {
            let e = error(notify(extra.clone()));
            assert!(
                e.to_string()
                    .starts_with(&format!("linux.seccomp.{field} ")),
                "{extra}: {e}"
            );
        }
        let mut p = notify(json!({"listenerPath": "/a"}));
        p["syscalls"][0]["names"] = json!(["mkdir", "sendmsg"]);
        let e = error(p);
        assert!(
            e.to_string()
                .contains("cannot be used for the sendmsg syscall"),
            "{e}"
        );
        // Without notify rules: no listener, and the listener fields and
        // WAIT_KILLABLE_RECV are accepted and unused.
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "relative/agent.sock",
            "listenerMetadata": "x",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        }));
        assert!(f.listener.is_none());
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn bad_argument_index_and_empty_name_are_rejected() {
        let e = error(rule(
            "SCMP_ACT_ERRNO",
            json!([{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
        ));
        assert_eq!(
            e.to_string(),
            "linux.seccomp.syscalls[0].args[0].index 6: a syscall has 6 arguments, 0 to 5"
        );
        let e = error(json!({"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]}));
        assert!(
            e.to_string().starts_with("linux.seccomp.syscalls[0].names"),
            "{e}"
        );
    }

    #[test]
    fn flags_are_translated() {
        let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        assert_eq!(f.flags, 0);
        let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}));
        assert_eq!(
            f.flags,
            libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_LOG
                | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
    }

    fn mkdir_blocked(arches: serde_json::Value) -> Filter {
        filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]}],
        }))
    }

    #[test]
    fn abis_not_listed_are_killed() {
        let f = mkdir_blocked(json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, 83, [0, 0o700, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, 83, [0, 0o755, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 39, [0; 6]), KILL_PROCESS);
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 83, [0; 6]),
            KILL_PROCESS
        );
        assert_eq!(eval(&f, 0xc000_00b7, 83, [0; 6]), KILL_PROCESS); // aarch64
    }

    #[test]
    fn listed_32_bit_abis_get_the_rules_with_their_numbers() {
        let f = mkdir_blocked(json!([
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32"
        ]));
        // i386 mkdir is 39; only the low 32 bits of an argument count.
        assert_eq!(
            eval(&f, AUDIT_ARCH_I386, 39, [0, 0o700, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            eval(
                &f,
                AUDIT_ARCH_I386,
                39,
                [0, 0x1_0000_0000 | 0o700, 0, 0, 0, 0]
            ),
            errno(libc::EPERM)
        );
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 39, [0, 0o755, 0, 0, 0, 0]), ALLOW);
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 83, [0, 0o700, 0, 0, 0, 0]), ALLOW); // i386 83 is symlink
        let x32 = X32_SYSCALL_BIT | 83;
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, x32, [0, 0o700, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, x32, [0, 0o755, 0, 0, 0, 0]),
            ALLOW
        );
        // SCMP_ARCH_X86 alone still filters the native ABI, as libseccomp.
        let f = mkdir_blocked(json!(["SCMP_ARCH_X86"]));
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, 83, [0, 0o700, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, x32, [0; 6]), KILL_PROCESS);
    }

    #[test]
    fn i386_socketcall_and_ipc_follow_the_direct_calls() {
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["socket", "shmget"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["connect"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28,
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
            ],
        }));
        let i386 = |nr, a0| eval(&f, AUDIT_ARCH_I386, nr, [a0, 0, 0, 0, 0, 0]);
        assert_eq!(i386(359, 0), errno(libc::EPERM)); // socket
        assert_eq!(i386(I386_SOCKETCALL, 1), errno(libc::EPERM)); // SYS_SOCKET
        assert_eq!(i386(I386_SOCKETCALL, 2), ALLOW); // SYS_BIND
        assert_eq!(i386(I386_IPC, 23), errno(libc::EPERM)); // SHMGET
        assert_eq!(i386(I386_IPC, 0x1_0017), errno(libc::EPERM)); // SHMGET, version 1
        assert_eq!(i386(I386_IPC, 22), ALLOW); // SHMDT
                                               // A stricter conditional rule holds for every call through socketcall.
        assert_eq!(i386(I386_SOCKETCALL, 3), errno(libc::ENOSPC));
        assert_eq!(i386(362, 4), ALLOW);
        // A more permissive one does not apply there.
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}],
        }));
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 359, [2, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            eval(&f, AUDIT_ARCH_I386, I386_SOCKETCALL, [1, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn enosys_above_the_highest_named_syscall_when_arches_are_listed() {
        let profile = |arches: serde_json::Value| {
            filter(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": arches,
                "syscalls": [{"names": ["read", "openat", "mkdir"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO"}],
            }))
        };
        let f = profile(json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
        // fchmodat (268) is the highest x86_64 name, whatever its action.
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 268, [0; 6]), errno(libc::EPERM));
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 267, [0; 6]), errno(libc::EPERM));
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, 435, [0; 6]),
            errno(libc::ENOSYS)
        );
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 0, [0; 6]), ALLOW);
        // i386: fchmodat is 306.
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 306, [0; 6]), errno(libc::EPERM));
        assert_eq!(eval(&f, AUDIT_ARCH_I386, 307, [0; 6]), errno(libc::ENOSYS));
        // Without an architectures list runc adds no stub.
        let f = profile(json!([]));
        assert_eq!(eval(&f, AUDIT_ARCH_X86_64, 435, [0; 6]), errno(libc::EPERM));
        // Nor when the default allows.
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_LOG",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}],
        }));
        assert_eq!(
            eval(&f, AUDIT_ARCH_X86_64, 435, [0; 6]),
            libc::SECCOMP_RET_LOG
        );
    }

    #[test]
    fn programs_beyond_the_kernel_limit_are_refused() {
        // A conditional rule on every syscall of three ABIs: about 10
        // instructions each.
        let names: Vec<&str> = syscalls::SYSCALLS.iter().map(|(n, _)| *n).collect();
        let e = error(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}],
        }));
        assert!(
            matches!(e, ProfileError::TooLarge(n) if n > MAX_INSNS),
            "{e}"
        );
    }

    #[test]
    fn long_profiles_fit_and_every_syscall_is_reached() {
        // Every known x86_64 syscall allowed, one by one, on three ABIs:
        // runs of compares longer than a conditional jump reaches.
        let names: Vec<&str> = syscalls::SYSCALLS
            .iter()
            .filter(|(n, _)| Abi::X86_64.number(n).is_some())
            .map(|(n, _)| *n)
            .collect();
        let f = filter(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": names, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            ],
        }));
        assert!(f.program.len() <= MAX_INSNS);
        for (name, nrs) in syscalls::SYSCALLS {
            let on_x86_64 = Abi::X86_64.pick(*nrs);
            if let Some(nr) = on_x86_64 {
                assert_eq!(eval(&f, AUDIT_ARCH_X86_64, nr, [0; 6]), ALLOW, "{name}");
            }
            // Names only the 32-bit ABIs have are not in the profile.
            let want = if on_x86_64.is_some() {
                ALLOW
            } else {
                errno(libc::EPERM)
            };
            if let Some(nr) = Abi::I386.pick(*nrs) {
                assert_eq!(eval(&f, AUDIT_ARCH_I386, nr, [0; 6]), want, "i386 {name}");
            }
            if let Some(nr) = Abi::X32.pick(*nrs) {
                assert_eq!(eval(&f, AUDIT_ARCH_X86_64, nr, [0; 6]), want, "x32 {name}");
            }
        }
    }
}

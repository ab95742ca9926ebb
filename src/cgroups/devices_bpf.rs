//! The cgroup v2 device filter: `linux.resources.devices` compiled into an
//! eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, loaded and attached
//! through the raw bpf(2) syscall.
//!
//! cgroup v2 has no devices.allow/devices.deny files; the kernel instead runs
//! every BPF_CGROUP_DEVICE program attached to the cgroup (and its ancestors)
//! on each open/mknod of a device node, and the access is granted only if all
//! of them return 1.
//!
//! The semantics are runc's (libcontainer/cgroups/devices): the spec's rules
//! are first replayed, in order, through a model of the cgroup v1 devices
//! controller, which leaves a default verdict plus a set of exceptions; only
//! then is code generated, one block per exception, each returning the
//! opposite of the default. Going through the v1 model keeps v1 and v2 hosts
//! giving the same answer for the same config, including v1's refusal to
//! "punch a hole" in a wildcard exception.

use std::collections::BTreeMap;
use std::ffi::c_long;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Instructions

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn` so a
/// program can be handed to BPF_PROG_LOAD as is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg and src_reg, 4 bits each (C bitfields: dst first).
    regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcode pieces from include/uapi/linux/bpf_common.h and bpf.h.
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

const LDX_W: u8 = BPF_LDX | BPF_MEM | BPF_W;
const AND32_K: u8 = BPF_ALU | BPF_AND | BPF_K;
const RSH32_K: u8 = BPF_ALU | BPF_RSH | BPF_K;
const MOV32_K: u8 = BPF_ALU | BPF_MOV | BPF_K;
const MOV32_X: u8 = BPF_ALU | BPF_MOV | BPF_X;
const JNE_K: u8 = BPF_JMP | BPF_JNE | BPF_K;
const JNE_X: u8 = BPF_JMP | BPF_JNE | BPF_X;
const EXIT: u8 = BPF_JMP | BPF_EXIT;

// Registers: R1 holds the context on entry; R0 is the verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        // The bitfield order in `struct bpf_insn` follows the byte order.
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0x0f);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0x0f);
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    pub fn dst(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs & 0x0f;
        #[cfg(target_endian = "big")]
        return self.regs >> 4;
    }

    pub fn src(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs >> 4;
        #[cfg(target_endian = "big")]
        return self.regs & 0x0f;
    }

    fn is_jump(&self) -> bool {
        self.code == JNE_K || self.code == JNE_X
    }
}

/// bpftool-like rendering; jump offsets are relative to the next instruction.
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s, off, imm) = (self.dst(), self.src(), self.off, self.imm);
        match self.code {
            LDX_W => write!(f, "r{d} = *(u32 *)(r{s} {off:+})"),
            AND32_K => write!(f, "w{d} &= {imm:#x}"),
            RSH32_K => write!(f, "w{d} >>= {imm}"),
            MOV32_K => write!(f, "w{d} = {imm}"),
            MOV32_X => write!(f, "w{d} = w{s}"),
            JNE_K => write!(f, "if r{d} != {imm} goto {off:+}"),
            JNE_X => write!(f, "if r{d} != r{s} goto {off:+}"),
            EXIT => write!(f, "exit"),
            c => write!(
                f,
                ".insn code={c:#04x} dst=r{d} src=r{s} off={off} imm={imm}"
            ),
        }
    }
}

/// A numbered listing with jump targets made absolute, for logs and tests.
pub fn disassemble(prog: &[Insn]) -> String {
    let mut out = String::new();
    for (pc, insn) in prog.iter().enumerate() {
        let text = if insn.is_jump() {
            let target = pc as i64 + 1 + i64::from(insn.off);
            let shown = insn.to_string();
            match shown.rfind("goto ") {
                Some(at) => format!("{}goto {target}", &shown[..at]),
                None => shown,
            }
        } else {
            insn.to_string()
        };
        out.push_str(&format!("{pc:3}: {text}\n"));
    }
    out
}

// ---------------------------------------------------------------------------
// Rules and the cgroup v1 model

// struct bpf_cgroup_dev_ctx.access_type: device type in the low 16 bits,
// requested access in the high 16 bits.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// runc's spelling of "any major/minor" (an absent number in the spec).
const WILDCARD: i64 = -1;

/// Declared in the order runc sorts exceptions: 'b' before 'c'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Block,
    Char,
}

/// The "which devices" half of an exception. Field order is the sort order
/// (major, minor, type), so a BTreeMap yields runc's block order and the
/// generated program is the same whatever the order of equivalent rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Meta {
    major: i64,
    minor: i64,
    kind: Kind,
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: i64| {
            if n == WILDCARD {
                "*".to_string()
            } else {
                n.to_string()
            }
        };
        let kind = match self.kind {
            Kind::Block => 'b',
            Kind::Char => 'c',
        };
        write!(f, "{kind} {}:{}", num(self.major), num(self.minor))
    }
}

fn access_str(access: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

enum Rule {
    /// Type "a": whatever its numbers and access say, v1 (and so runc)
    /// treats it as "reset everything to allow-all / deny-all".
    All {
        allow: bool,
    },
    Device {
        allow: bool,
        meta: Meta,
        access: u8,
    },
}

/// How a rule is named in errors: its place in linux.resources.devices and
/// its own text, so the user can find it in config.json.
fn rule_name(index: usize, rule: &LinuxDeviceCgroup) -> String {
    let verb = if rule.allow() { "allow" } else { "deny" };
    format!("linux.resources.devices[{index}] ({verb} {rule})")
}

fn parse(index: usize, rule: &LinuxDeviceCgroup) -> Result<Rule> {
    let bad = |why: String| Error::Other(format!("{}: {why}", rule_name(index, rule)));

    // runc refuses an empty access string even on "a" rules; so do we, so a
    // config means the same thing under both.
    let text = rule.access().as_deref().unwrap_or("");
    if text.is_empty() {
        return Err(bad("access must not be empty (want r, w and/or m)".into()));
    }
    let mut access = 0;
    for c in text.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(bad(format!(
                    "access {text:?} has {c:?}; want a combination of r, w and m"
                )))
            }
        };
    }

    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => {
            return Ok(Rule::All {
                allow: rule.allow(),
            })
        }
        LinuxDeviceType::B => Kind::Block,
        LinuxDeviceType::C => Kind::Char,
        t @ (LinuxDeviceType::U | LinuxDeviceType::P) => {
            return Err(bad(format!(
                "device type {:?} cannot be used in a device cgroup rule (want a, b or c)",
                t.as_str()
            )))
        }
    };

    // The kernel hands the filter 32-bit numbers; anything bigger can never
    // match and is surely a typo. Negative means "any", as in runc.
    let number = |what: &str, n: Option<i64>| -> Result<i64> {
        match n {
            None => Ok(WILDCARD),
            Some(n) if n < 0 => Ok(WILDCARD),
            Some(n) if n > i64::from(u32::MAX) => {
                Err(bad(format!("{what} number {n} is out of range")))
            }
            Some(n) => Ok(n),
        }
    };
    let meta = Meta {
        major: number("major", rule.major())?,
        minor: number("minor", rule.minor())?,
        kind,
    };
    Ok(Rule::Device {
        allow: rule.allow(),
        meta,
        access,
    })
}

/// The state of a cgroup v1 devices controller: a default verdict and the
/// exceptions to it, keyed by device with the access bits they cover.
struct Model {
    default_allow: bool,
    exceptions: BTreeMap<Meta, u8>,
}

impl Model {
    /// A fresh v2 cgroup as brig sees it: nothing is allowed until a rule
    /// says so (runc starts its emulator the same way).
    fn new() -> Model {
        Model {
            default_allow: false,
            exceptions: BTreeMap::new(),
        }
    }

    fn apply(&mut self, rule: Rule, name: impl Fn() -> String) -> Result<()> {
        match rule {
            Rule::All { allow } => {
                self.default_allow = allow;
                self.exceptions.clear();
                Ok(())
            }
            // A rule against the default adds an exception; a rule that
            // agrees with the default takes access away from one.
            Rule::Device {
                allow,
                meta,
                access,
            } if allow != self.default_allow => {
                *self.exceptions.entry(meta).or_insert(0) |= access;
                Ok(())
            }
            Rule::Device { meta, access, .. } => self.remove(meta, access, name),
        }
    }

    fn remove(&mut self, meta: Meta, access: u8, name: impl Fn() -> String) -> Result<()> {
        // v1 only removes an exception that matches exactly; taking a device
        // out of a broader wildcard exception is silently ignored there. That
        // would leave the device reachable while the config says otherwise,
        // so (like runc) refuse it.
        let wider = [
            Meta {
                major: WILDCARD,
                ..meta
            },
            Meta {
                minor: WILDCARD,
                ..meta
            },
            Meta {
                major: WILDCARD,
                minor: WILDCARD,
                ..meta
            },
        ];
        for w in wider.iter().filter(|w| **w != meta) {
            let covered = self.exceptions.get(w).copied().unwrap_or(0);
            if covered & access != 0 {
                return Err(Error::Other(format!(
                    "{}: cannot take {} {} out of the earlier wildcard rule \"{} {}\" \
                     (the device cgroup cannot punch holes in wildcard rules)",
                    name(),
                    meta,
                    access_str(access),
                    w,
                    access_str(covered)
                )));
            }
        }
        if let Some(have) = self.exceptions.get_mut(&meta) {
            *have &= !access;
            if *have == 0 {
                self.exceptions.remove(&meta);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Code generation

/// Compile the spec's device rules (linux.resources.devices, in order) into
/// an eBPF program with runc's semantics: the last rule that applies wins,
/// "a" rules reset to allow-all or deny-all, no rules at all deny everything.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut model = Model::new();
    for (index, rule) in rules.iter().enumerate() {
        let parsed = parse(index, rule)?;
        model.apply(parsed, || rule_name(index, rule))?;
    }
    Ok(generate(&model))
}

fn generate(model: &Model) -> Vec<Insn> {
    // Unpack struct bpf_cgroup_dev_ctx { u32 access_type, major, minor }.
    let mut prog = vec![
        Insn::new(LDX_W, R2, R1, 0, 0),
        Insn::new(AND32_K, R2, 0, 0, 0xffff), // R2 = device type
        Insn::new(LDX_W, R3, R1, 0, 0),
        Insn::new(RSH32_K, R3, 0, 0, 16), // R3 = requested access
        Insn::new(LDX_W, R4, R1, 4, 0),   // R4 = major
        Insn::new(LDX_W, R5, R1, 8, 0),   // R5 = minor
    ];
    // Exceptions never overlap in verdict (all are the opposite of the
    // default), so their order does not change the result.
    let verdict = i32::from(!model.default_allow);
    for (meta, &access) in &model.exceptions {
        prog.extend(block(meta, access, verdict));
    }
    prog.push(Insn::new(MOV32_K, R0, 0, 0, i32::from(model.default_allow)));
    prog.push(Insn::new(EXIT, 0, 0, 0, 0));
    prog
}

/// One exception: fall through to `verdict` if the request matches,
/// otherwise jump past the block to the next one.
fn block(meta: &Meta, access: u8, verdict: i32) -> Vec<Insn> {
    let kind = match meta.kind {
        Kind::Block => BPF_DEVCG_DEV_BLOCK,
        Kind::Char => BPF_DEVCG_DEV_CHAR,
    };
    let mut b = vec![Insn::new(JNE_K, R2, 0, 0, kind)];
    if access != ACC_ALL {
        // Match only if the requested bits are a subset of the rule's:
        // (R3 & access) == R3, computed in R1 (the context is no longer
        // needed).
        b.push(Insn::new(MOV32_X, R1, R3, 0, 0));
        b.push(Insn::new(AND32_K, R1, 0, 0, i32::from(access)));
        b.push(Insn::new(JNE_X, R1, R3, 0, 0));
    }
    // Numbers were checked to fit in u32 by parse(). Like runc, a 64-bit
    // compare against the sign-extended immediate; it differs from a 32-bit
    // one only above 2^31, where Linux has no devices (12-bit majors,
    // 20-bit minors).
    if meta.major != WILDCARD {
        b.push(Insn::new(JNE_K, R4, 0, 0, meta.major as u32 as i32));
    }
    if meta.minor != WILDCARD {
        b.push(Insn::new(JNE_K, R5, 0, 0, meta.minor as u32 as i32));
    }
    b.push(Insn::new(MOV32_K, R0, 0, 0, verdict));
    b.push(Insn::new(EXIT, 0, 0, 0, 0));
    // Every jump goes to the first instruction after the block.
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.is_jump() {
            insn.off = (len - i - 1) as i16;
        }
    }
    b
}

// ---------------------------------------------------------------------------
// bpf(2)

const BPF_PROG_LOAD: c_long = 5;
const BPF_PROG_ATTACH: c_long = 8;
const BPF_PROG_DETACH: c_long = 9;
const BPF_PROG_GET_FD_BY_ID: c_long = 13;
const BPF_PROG_QUERY: c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

const LICENSE: &[u8] = b"Apache-2.0\0";
/// Shows up in `bpftool prog` so people can tell whose program this is.
const PROG_NAME: &[u8] = b"brig_devices";
const VERIFIER_LOG_SIZE: usize = 256 * 1024;

/// The BPF_PROG_LOAD part of union bpf_attr, up to prog_name.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part of union bpf_attr.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part of union bpf_attr.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The whole BPF_PROG_QUERY part of union bpf_attr (through `revision`):
/// the kernel writes output fields straight into the caller's memory, so
/// every field it may write must be ours.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// bpf(cmd, attr, sizeof attr).
///
/// # Safety
/// Every pointer stored in `attr` must be valid for what `cmd` does with it
/// (reads of the program and license, writes to log and id buffers of the
/// sizes given alongside).
unsafe fn bpf<T>(cmd: c_long, attr: &mut T) -> nix::Result<i64> {
    // SAFETY: attr is a live #[repr(C)] prefix of union bpf_attr and we pass
    // its exact size; the pointers inside it are the caller's promise.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor bpf(2) just returned.
fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn prog_load(prog: &[Insn], log: Option<&mut [u8]>) -> nix::Result<OwnedFd> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    // SAFETY: insns points at prog.len() instructions, license at a
    // NUL-terminated string, log_buf (if set) at log_size writable bytes; all
    // outlive the call.
    unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
}

/// Loads the program; if the kernel refuses it, loads it once more with the
/// verifier's log switched on so the error can say why.
fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let first = match prog_load(prog, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    // ENOSPC here only means the log was cut short; what is there is enough.
    if let Ok(fd) = prog_load(prog, Some(&mut log)) {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let text = text.trim();
    let mut msg = format!(
        "bpf(BPF_PROG_LOAD) of the {}-instruction device filter: {}",
        prog.len(),
        first
    );
    if text.is_empty() {
        if first == Errno::EPERM {
            msg.push_str(" (loading BPF programs needs CAP_BPF or CAP_SYS_ADMIN)");
        }
    } else {
        msg.push_str(&format!("; verifier log: {}", text.replace('\n', " | ")));
    }
    Err(Error::Other(msg))
}

/// Ids of the BPF_CGROUP_DEVICE programs attached to this very cgroup (not
/// inherited from its parents).
fn attached(cgroup: BorrowedFd) -> Result<Vec<u32>> {
    // A cgroup holds at most 64 programs per attach type; if that ever
    // changes the kernel answers ENOSPC with the real count and we retry.
    let mut ids = vec![0u32; 64];
    for _ in 0..8 {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: prog_ids points at prog_cnt writable u32s that outlive the
        // call; no other pointer is set.
        match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(Errno::ENOSPC) => ids = vec![0u32; attr.prog_cnt.max(1) as usize * 2],
            Err(e) => {
                return Err(Error::sys(
                    "bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE) on the container's cgroup",
                    e,
                ))
            }
        }
    }
    Err(Error::Other(
        "bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE): the list of attached programs kept growing".into(),
    ))
}

fn prog_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: the attr holds no pointers.
    unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned)
}

fn prog_attach(cgroup: BorrowedFd, prog: &OwnedFd, replace: Option<&OwnedFd>) -> nix::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    if let Some(old) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    // SAFETY: the attr holds no pointers, only descriptors.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

fn prog_detach(cgroup: BorrowedFd, prog: &OwnedFd) -> nix::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: the attr holds no pointers, only descriptors.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// Load the program for `rules` and attach it to the cgroup2 directory
/// `cgroup`, replacing the device programs attached there before, so that
/// `update` can swap rules on a live container.
///
/// The new program is in place before an old one goes: with a single old
/// program the swap is atomic (BPF_F_REPLACE); otherwise both run for a
/// moment, which can only deny more, never allow more.
pub fn attach(cgroup: BorrowedFd, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = program(rules)?;
    let old_ids = attached(cgroup)?;
    let fd = load(&prog)?;

    let mut old = Vec::with_capacity(old_ids.len());
    for id in old_ids {
        match prog_by_id(id) {
            Ok(fd) => old.push((id, fd)),
            // Gone since the query: nothing to detach.
            Err(Errno::ENOENT) => {}
            // An LSM may keep us from touching someone else's program (runc
            // meets systemd's this way); it can only restrict further, so
            // leaving it is safe.
            Err(Errno::EPERM | Errno::EACCES) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("bpf(BPF_PROG_GET_FD_BY_ID, {id}) for the old device filter"),
                    e,
                ))
            }
        }
    }

    if let [(_, only)] = old.as_slice() {
        match prog_attach(cgroup, &fd, Some(only)) {
            Ok(()) => return Ok(()),
            // EINVAL: a kernel before 5.6 without BPF_F_REPLACE; ENOENT: the
            // old program was detached meanwhile. Either way, attach next to
            // whatever is there and clean up after.
            Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::sys(
                    "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI|BPF_F_REPLACE)",
                    e,
                ))
            }
        }
    }
    prog_attach(cgroup, &fd, None).map_err(|e| {
        Error::sys(
            "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)",
            e,
        )
    })?;
    for (id, old_fd) in &old {
        match prog_detach(cgroup, old_fd) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("bpf(BPF_PROG_DETACH) of the old device filter (program id {id})"),
                    e,
                ))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let typ = match typ {
            "a" => LinuxDeviceType::A,
            "b" => LinuxDeviceType::B,
            "c" => LinuxDeviceType::C,
            "u" => LinuxDeviceType::U,
            "p" => LinuxDeviceType::P,
            other => panic!("test bug: type {other}"),
        };
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("rule")
    }

    fn allow(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        rule(true, typ, major, minor, access)
    }

    fn deny(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        rule(false, typ, major, minor, access)
    }

    /// runc's spec default: deny everything, then its list of allowed
    /// devices (specconv.AllowedDevices).
    fn runc_default() -> Vec<LinuxDeviceCgroup> {
        vec![
            deny("a", None, None, "rwm"),
            allow("c", None, None, "m"),
            allow("b", None, None, "m"),
            allow("c", Some(1), Some(3), "rwm"),
            allow("c", Some(1), Some(8), "rwm"),
            allow("c", Some(1), Some(7), "rwm"),
            allow("c", Some(5), Some(0), "rwm"),
            allow("c", Some(1), Some(5), "rwm"),
            allow("c", Some(1), Some(9), "rwm"),
            allow("c", Some(136), None, "rwm"),
            allow("c", Some(5), Some(2), "rwm"),
            allow("c", Some(10), Some(200), "rwm"),
        ]
    }

    /// Runs a program the way the kernel would, for the handful of opcodes
    /// we emit, so tests can check verdicts and not only listings.
    fn run(prog: &[Insn], kind: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(u32::from(access) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                AND32_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                RSH32_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
                MOV32_K => r[d] = i.imm as u32 as u64,
                MOV32_X => r[d] = r[s] as u32 as u64,
                JNE_K if r[d] != i.imm as i64 as u64 => {
                    pc = (pc as i64 + i64::from(i.off)) as usize
                }
                JNE_X if r[d] != r[s] => pc = (pc as i64 + i64::from(i.off)) as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const C: i32 = BPF_DEVCG_DEV_CHAR;
    const B: i32 = BPF_DEVCG_DEV_BLOCK;
    const R: u8 = ACC_READ;
    const W: u8 = ACC_WRITE;
    const M: u8 = ACC_MKNOD;

    const PROLOGUE: &str = "  0: r2 = *(u32 *)(r1 +0)
  1: w2 &= 0xffff
  2: r3 = *(u32 *)(r1 +0)
  3: w3 >>= 16
  4: r4 = *(u32 *)(r1 +4)
  5: r5 = *(u32 *)(r1 +8)
";

    #[test]
    fn no_rules_denies_everything() {
        let p = program(&[]).expect("program");
        assert_eq!(
            disassemble(&p),
            format!("{PROLOGUE}  6: w0 = 0\n  7: exit\n")
        );
    }

    #[test]
    fn runc_default_list() {
        let p = program(&runc_default()).expect("program");
        let expected = format!(
            "{PROLOGUE}  6: if r2 != 1 goto 12
  7: w1 = w3
  8: w1 &= 0x1
  9: if r1 != r3 goto 12
 10: w0 = 1
 11: exit
 12: if r2 != 2 goto 18
 13: w1 = w3
 14: w1 &= 0x1
 15: if r1 != r3 goto 18
 16: w0 = 1
 17: exit
 18: if r2 != 2 goto 23
 19: if r4 != 1 goto 23
 20: if r5 != 3 goto 23
 21: w0 = 1
 22: exit
 23: if r2 != 2 goto 28
 24: if r4 != 1 goto 28
 25: if r5 != 5 goto 28
 26: w0 = 1
 27: exit
 28: if r2 != 2 goto 33
 29: if r4 != 1 goto 33
 30: if r5 != 7 goto 33
 31: w0 = 1
 32: exit
 33: if r2 != 2 goto 38
 34: if r4 != 1 goto 38
 35: if r5 != 8 goto 38
 36: w0 = 1
 37: exit
 38: if r2 != 2 goto 43
 39: if r4 != 1 goto 43
 40: if r5 != 9 goto 43
 41: w0 = 1
 42: exit
 43: if r2 != 2 goto 48
 44: if r4 != 5 goto 48
 45: if r5 != 0 goto 48
 46: w0 = 1
 47: exit
 48: if r2 != 2 goto 53
 49: if r4 != 5 goto 53
 50: if r5 != 2 goto 53
 51: w0 = 1
 52: exit
 53: if r2 != 2 goto 58
 54: if r4 != 10 goto 58
 55: if r5 != 200 goto 58
 56: w0 = 1
 57: exit
 58: if r2 != 2 goto 62
 59: if r4 != 136 goto 62
 60: w0 = 1
 61: exit
 62: w0 = 0
 63: exit
"
        );
        assert_eq!(disassemble(&p), expected);

        assert_eq!(run(&p, C, R | W, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&p, C, R | W | M, 1, 3), 1, "/dev/null rwm");
        assert_eq!(run(&p, C, R, 1, 4), 0, "/dev/port r");
        assert_eq!(run(&p, C, M, 1, 4), 1, "mknod any char");
        assert_eq!(run(&p, B, M, 8, 0), 1, "mknod any block");
        assert_eq!(run(&p, B, R, 8, 0), 0, "read a disk");
        assert_eq!(run(&p, C, R | W, 136, 7), 1, "a pty");
        assert_eq!(run(&p, B, R | W, 136, 7), 0, "block 136:7 is not a pty");
        assert_eq!(run(&p, C, R | W, 10, 200), 1, "tun");
    }

    #[test]
    fn privileged_allows_everything() {
        let p = program(&[allow("a", None, None, "rwm")]).expect("program");
        assert_eq!(
            disassemble(&p),
            format!("{PROLOGUE}  6: w0 = 1\n  7: exit\n")
        );
    }

    #[test]
    fn allow_all_but_one_device() {
        let p = program(&[
            allow("a", None, None, "rwm"),
            deny("b", Some(8), Some(0), "rwm"),
        ])
        .expect("program");
        let expected = format!(
            "{PROLOGUE}  6: if r2 != 1 goto 11
  7: if r4 != 8 goto 11
  8: if r5 != 0 goto 11
  9: w0 = 0
 10: exit
 11: w0 = 1
 12: exit
"
        );
        assert_eq!(disassemble(&p), expected);
    }

    #[test]
    fn an_a_rule_resets_what_came_before() {
        // runc's "weird" case: the deny of 8:1 is wiped by the allow-all.
        let p = program(&[
            deny("b", Some(8), Some(1), "rwm"),
            allow("a", None, None, "rwm"),
            deny("b", Some(8), Some(2), "rwm"),
        ])
        .expect("program");
        assert_eq!(run(&p, B, R, 8, 1), 1);
        assert_eq!(run(&p, B, R, 8, 2), 0);
        assert_eq!(p.len(), 13);

        // And a trailing deny-all wins over everything before it.
        let p = program(&[
            allow("c", Some(1), Some(3), "rwm"),
            deny("a", None, None, "r"),
        ])
        .expect("program");
        assert_eq!(
            disassemble(&p),
            format!("{PROLOGUE}  6: w0 = 0\n  7: exit\n")
        );
    }

    #[test]
    fn access_is_a_subset_match() {
        let p = program(&[allow("c", Some(1), Some(5), "rw")]).expect("program");
        let expected = format!(
            "{PROLOGUE}  6: if r2 != 2 goto 14
  7: w1 = w3
  8: w1 &= 0x6
  9: if r1 != r3 goto 14
 10: if r4 != 1 goto 14
 11: if r5 != 5 goto 14
 12: w0 = 1
 13: exit
 14: w0 = 0
 15: exit
"
        );
        assert_eq!(disassemble(&p), expected);
        assert_eq!(run(&p, C, R, 1, 5), 1);
        assert_eq!(run(&p, C, R | W, 1, 5), 1);
        assert_eq!(run(&p, C, M, 1, 5), 0);
        assert_eq!(run(&p, C, R | M, 1, 5), 0);
        assert_eq!(run(&p, B, R, 1, 5), 0);
    }

    #[test]
    fn later_rules_refine_earlier_ones() {
        // Same device twice: the access bits merge into one exception.
        let p = program(&[
            allow("c", Some(1), Some(3), "r"),
            allow("c", Some(1), Some(3), "w"),
        ])
        .expect("program");
        assert_eq!(p.len(), 6 + 8 + 2);
        assert_eq!(p[8].imm, i32::from(R | W));
        assert_eq!(run(&p, C, R | W, 1, 3), 1);

        // A deny that agrees with the default takes bits away again.
        let p = program(&[
            deny("a", None, None, "rwm"),
            allow("c", Some(1), Some(3), "rwm"),
            deny("c", Some(1), Some(3), "w"),
        ])
        .expect("program");
        assert_eq!(run(&p, C, R, 1, 3), 1);
        assert_eq!(run(&p, C, R | W, 1, 3), 0);
        assert_eq!(run(&p, C, M, 1, 3), 1);

        // Taking all bits away leaves no exception at all.
        let p = program(&[
            allow("c", Some(1), Some(3), "rw"),
            deny("c", Some(1), Some(3), "rwm"),
        ])
        .expect("program");
        assert_eq!(p.len(), 8);

        // The order of equivalent rules does not matter.
        let mut rev = runc_default();
        rev[1..].reverse();
        assert_eq!(
            program(&rev).expect("program"),
            program(&runc_default()).expect("program")
        );
    }

    #[test]
    fn absent_or_negative_numbers_are_wildcards() {
        let a = program(&[allow("c", Some(-1), None, "rwm")]).expect("program");
        let b = program(&[allow("c", None, Some(-1), "rwm")]).expect("program");
        assert_eq!(a, b);
        assert_eq!(run(&a, C, R, 42, 42), 1);
        assert_eq!(run(&a, B, R, 42, 42), 0);
    }

    fn err(rules: &[LinuxDeviceCgroup]) -> String {
        match program(rules) {
            Ok(p) => panic!("expected an error, got\n{}", disassemble(&p)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let e = err(&[
            deny("a", None, None, "rwm"),
            allow("c", Some(1), Some(3), "rwx"),
        ]);
        assert!(
            e.contains("linux.resources.devices[1]") && e.contains("\"rwx\"") && e.contains("'x'"),
            "{e}"
        );

        let e = err(&[allow("u", Some(1), Some(3), "rwm")]);
        assert!(
            e.contains("linux.resources.devices[0]") && e.contains("\"u\""),
            "{e}"
        );
        let e = err(&[allow("p", None, None, "rwm")]);
        assert!(e.contains("\"p\""), "{e}");

        let e = err(&[allow("c", Some(1), Some(3), "")]);
        assert!(e.contains("access must not be empty"), "{e}");
        let e = err(&[LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .expect("rule")]);
        assert!(e.contains("access must not be empty"), "{e}");

        let e = err(&[allow("c", Some(1 << 32), Some(3), "rwm")]);
        assert!(e.contains("major number 4294967296"), "{e}");
        let e = err(&[allow("b", Some(1), Some(i64::MAX), "rwm")]);
        assert!(e.contains("minor number"), "{e}");
    }

    #[test]
    fn holes_in_wildcards_are_refused() {
        // As runc: v1 would silently keep allowing c 1:3 here.
        let e = err(&[
            allow("c", None, None, "m"),
            deny("c", Some(1), Some(3), "m"),
        ]);
        assert!(
            e.contains("linux.resources.devices[1]") && e.contains("c *:* m"),
            "{e}"
        );
        let e = err(&[
            allow("a", None, None, "rwm"),
            deny("c", Some(1), None, "rw"),
            allow("c", Some(1), Some(3), "r"),
        ]);
        assert!(e.contains("c 1:* rw"), "{e}");
        // Disjoint access bits are fine.
        let p = program(&[
            allow("c", None, None, "m"),
            deny("c", Some(1), Some(3), "rw"),
        ])
        .expect("program");
        assert_eq!(run(&p, C, M, 1, 3), 1);
    }

    #[test]
    fn insn_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let i = Insn::new(JNE_X, R1, R3, 5, 0);
        assert_eq!((i.dst(), i.src()), (1, 3));
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 64);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 64);
    }

    // -----------------------------------------------------------------------
    // On the real kernel (root).

    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    use std::path::PathBuf;
    use std::process::Command;

    const UNIFIED: &str = "/sys/fs/cgroup/unified";

    /// A scratch cgroup2 directory, emptied and removed however the test ends.
    struct Scratch {
        path: PathBuf,
        dir: OwnedFd,
        /// Device nodes the test makes, so it needs nothing from the host's
        /// /dev but null and zero.
        nodes: PathBuf,
    }

    impl Scratch {
        fn new() -> Scratch {
            let root = if std::path::Path::new(UNIFIED).join("cgroup.procs").exists() {
                PathBuf::from(UNIFIED)
            } else {
                // A pure v2 host.
                PathBuf::from("/sys/fs/cgroup")
            };
            let path = root.join(format!("brig-bpftest-{}", std::process::id()));
            let _ = std::fs::remove_dir(&path);
            std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
            let dir = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
                .into();
            let nodes = std::env::temp_dir().join(format!("brig-bpftest-{}", std::process::id()));
            let scratch = Scratch { path, dir, nodes };
            let _ = std::fs::remove_dir_all(&scratch.nodes);
            std::fs::create_dir(&scratch.nodes).expect("mkdir for device nodes");
            // c 1:11 is /dev/kmsg: on no list below, harmless to open.
            let status = Command::new("mknod")
                .arg(scratch.node("kmsg"))
                .args(["c", "1", "11"])
                .status()
                .expect("run mknod");
            assert!(status.success(), "mknod kmsg outside the cgroup");
            scratch
        }

        fn node(&self, name: &str) -> String {
            self.nodes
                .join(name)
                .to_str()
                .expect("utf-8 temp dir")
                .to_string()
        }

        fn fd(&self) -> BorrowedFd<'_> {
            use std::os::fd::AsFd;
            self.dir.as_fd()
        }

        /// Runs `sh -c script` inside the cgroup; returns (success, output).
        fn sh(&self, script: &str, arg: &str) -> (bool, String) {
            let procs = CString::new(
                self.path
                    .join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .expect("path");
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(script).arg("sh").arg(arg);
            // SAFETY: the hook only calls open/write/close (async-signal-safe)
            // on memory prepared before fork.
            unsafe {
                cmd.pre_exec(move || {
                    // Join the cgroup before exec, so every open the script
                    // makes is checked by the filter.
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let err = std::io::Error::last_os_error();
                    libc::close(fd);
                    if n != 1 {
                        return Err(err);
                    }
                    Ok(())
                });
            }
            let out = cmd.output().expect("spawn sh");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }

        /// Opens `path` for reading and writing from inside the cgroup.
        fn open_rw(&self, path: &str) -> (bool, String) {
            self.sh(r#"exec 3<>"$1""#, path)
        }

        fn open_r(&self, path: &str) -> (bool, String) {
            self.sh(r#"exec 3<"$1""#, path)
        }

        /// mknod of a char device node in a scratch directory.
        fn mknod(&self, major: u32, minor: u32) -> (bool, String) {
            let node = self.node("made");
            let _ = std::fs::remove_file(&node);
            let r = self.sh(&format!(r#"mknod "$1" c {major} {minor}"#), &node);
            let _ = std::fs::remove_file(&node);
            r
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            // Move any straggler out so the directory can go; the programs
            // attached to it go with it.
            let parent = self.path.parent().map(|p| p.join("cgroup.procs"));
            if let (Ok(procs), Some(parent)) = (
                std::fs::read_to_string(self.path.join("cgroup.procs")),
                parent,
            ) {
                for pid in procs.lines() {
                    let _ = std::fs::write(&parent, pid);
                }
            }
            if let Err(e) = std::fs::remove_dir(&self.path) {
                eprintln!("cleanup: rmdir {}: {e}", self.path.display());
            }
            let _ = std::fs::remove_dir_all(&self.nodes);
        }
    }

    fn denied((ok, out): (bool, String)) -> bool {
        !ok && out.contains("Operation not permitted")
    }

    fn assert_allowed(what: &str, (ok, out): (bool, String)) {
        assert!(ok, "{what} should be allowed, got: {out}");
    }

    fn assert_denied(what: &str, r: (bool, String)) {
        assert!(
            denied(r.clone()),
            "{what} should fail with EPERM, got: ok={} {}",
            r.0,
            r.1
        );
    }

    #[test]
    fn filter_on_a_real_cgroup() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test loads BPF programs and makes cgroups: run it as root"
        );
        let cg = Scratch::new();

        // Nothing attached yet: everything is reachable.
        assert!(attached(cg.fd()).expect("query").is_empty());
        assert_allowed("/dev/null rw, no filter", cg.open_rw("/dev/null"));
        assert_allowed("c 1:11 r, no filter", cg.open_r(&cg.node("kmsg")));

        // Deny all, allow /dev/zero read/write only.
        attach(
            cg.fd(),
            &[
                deny("a", None, None, "rwm"),
                allow("c", Some(1), Some(5), "rw"),
            ],
        )
        .expect("attach the first filter");
        let first = attached(cg.fd()).expect("query");
        assert_eq!(first.len(), 1, "one program after the first attach");
        assert_allowed("/dev/zero rw", cg.open_rw("/dev/zero"));
        assert_allowed("/dev/zero r", cg.open_r("/dev/zero"));
        assert_denied("/dev/null rw", cg.open_rw("/dev/null"));
        assert_denied("/dev/null r", cg.open_r("/dev/null"));
        assert_denied("c 1:11 r", cg.open_r(&cg.node("kmsg")));
        assert_denied("mknod c 1:3", cg.mknod(1, 3));
        assert_denied("mknod c 1:5", cg.mknod(1, 5));

        // Swap in the inverse: allow all but /dev/null read/write.
        attach(
            cg.fd(),
            &[
                allow("a", None, None, "rwm"),
                deny("c", Some(1), Some(3), "rw"),
            ],
        )
        .expect("attach the second filter");
        let second = attached(cg.fd()).expect("query");
        assert_eq!(
            second.len(),
            1,
            "the old program was replaced, not added to"
        );
        assert_ne!(first, second, "a new program is attached");
        assert_allowed("/dev/zero rw", cg.open_rw("/dev/zero"));
        assert_denied("/dev/null rw", cg.open_rw("/dev/null"));
        assert_denied("/dev/null r", cg.open_r("/dev/null"));
        assert_allowed("c 1:11 r", cg.open_r(&cg.node("kmsg")));
        assert_allowed("mknod c 1:3", cg.mknod(1, 3));

        // Two programs there already (not our doing): both are replaced by
        // one, through the attach-then-detach path.
        for rules in [
            vec![allow("a", None, None, "rwm")],
            vec![deny("a", None, None, "rwm")],
        ] {
            let fd = load(&program(&rules).expect("program")).expect("load");
            prog_attach(cg.fd(), &fd, None).expect("attach an extra program");
        }
        assert_eq!(attached(cg.fd()).expect("query").len(), 3);
        assert_denied("/dev/zero rw under deny-all", cg.open_rw("/dev/zero"));
        attach(cg.fd(), &runc_default()).expect("attach runc's defaults");
        let third = attached(cg.fd()).expect("query");
        assert_eq!(third.len(), 1, "every old program was detached");
        assert!(!second.contains(&third[0]));
        assert_allowed("/dev/null rw", cg.open_rw("/dev/null"));
        assert_allowed("/dev/zero rw", cg.open_rw("/dev/zero"));
        assert_denied("c 1:11 r", cg.open_r(&cg.node("kmsg")));
        assert_allowed("mknod c 1:4 (c *:* m)", cg.mknod(1, 4));

        // A bad rule leaves the attached filter untouched.
        assert!(attach(cg.fd(), &[allow("c", Some(1), Some(3), "rwx")]).is_err());
        assert_eq!(attached(cg.fd()).expect("query"), third);
    }

    #[test]
    fn a_program_the_verifier_refuses_says_why() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test loads BPF programs: run it as root"
        );
        // Returns without setting R0.
        let e = load(&[Insn::new(EXIT, 0, 0, 0, 0)]).expect_err("the verifier must refuse this");
        let e = e.to_string();
        assert!(
            e.contains("BPF_PROG_LOAD") && e.contains("verifier log") && e.contains("R0"),
            "{e}"
        );
    }
}

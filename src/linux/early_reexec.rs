//! [`sealed_exe`](super::sealed_exe)'s re-exec, done before the C library
//! starts. brig's ELF entry point is `brig_entry` (build.rs links with
//! `--entry=brig_entry`), which runs [`preflight`] and then jumps to the C
//! library's `_start` as if nothing had happened.
//!
//! Why: everything the first image does before it re-executes is thrown
//! away, and most of it is start-up. A static glibc probes the CPU (some 80
//! CPUID instructions, each a trap to the hypervisor in a VM: 0.3 ms of the
//! 0.5 ms a static no-op C program takes on the test host) and Rust's
//! runtime sets itself up. Here the common case takes seven raw system
//! calls. Anything else returns, and the normal start-up does the same work
//! with its error reporting: a command that does not enter a container,
//! `BRIG_SEALED_EXE` or the re-exec marker set, a binary already protected,
//! an environment too large for the array below, or any call failing.
//!
//! Nothing is set up yet, which rules this code: no libc calls (IFUNC
//! relocations and the TLS that holds errno come later), no allocation, no
//! panics, and nothing the compiler would turn into memcpy, memset or
//! memcmp (std's slice operations, or a plain copying loop): byte loops over
//! raw pointers, and volatile stores into the new environment.

use core::arch::asm;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use super::mounts::MountAttr;

/// What [`preflight`]'s look at argv found (create, run or exec).
static ENTERS_CONTAINER: AtomicBool = AtomicBool::new(false);

/// Whether the command line, at a quick look past the global options, names
/// a command that enters a container. False when brig did not start at
/// brig_entry; `main` then relies on clap's parse alone.
pub fn argv_enters_container() -> bool {
    ENTERS_CONTAINER.load(Ordering::Relaxed)
}

// The kernel enters with the stack pointer at argc. r12 and r13 survive the
// call (callee-saved): the original stack pointer, and rdx, which under a
// dynamic loader holds its finaliser for _start to register.
core::arch::global_asm!(
    ".globl brig_entry",
    ".type brig_entry, @function",
    "brig_entry:",
    "mov r12, rsp",
    "mov r13, rdx",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {preflight}",
    "mov rsp, r12",
    "mov rdx, r13",
    "jmp _start",
    preflight = sym preflight,
);

const SELF_EXE: &[u8] = b"/proc/self/exe\0";
const EMPTY: &[u8] = b"\0";
/// Must match sealed_exe's MARKER: the re-executed brig removes it.
const MARKER: &[u8] = b"_BRIG_SEALED_EXE=1\0";
const MAX_ENV: usize = 1024;

const SYS_CLOSE: usize = 3;
const SYS_OPEN: usize = 2;
const SYS_FCNTL: usize = 72;
const SYS_FSTATFS: usize = 138;
const SYS_EXECVEAT: usize = 322;
const SYS_OPEN_TREE: usize = 428;
const SYS_MOUNT_SETATTR: usize = 442;
const O_CLOEXEC: usize = 0o2000000;
const AT_FDCWD: isize = -100;
const AT_EMPTY_PATH: usize = 0x1000;
const AT_RECURSIVE: usize = 0x8000;
const OPEN_TREE_CLONE: usize = 1;
const F_GET_SEALS: usize = 1034;
const F_SEAL_WRITE: isize = 8;
const ST_RDONLY: i64 = 1;
const MOUNT_ATTR_RDONLY: u64 = 1;
const MOUNT_ATTR_NODEV: u64 = 4;

/// The kernel's struct statfs on x86_64.
#[repr(C)]
struct StatFs {
    f_type: i64,
    f_bsize: i64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [i32; 2],
    f_namelen: i64,
    f_frsize: i64,
    f_flags: i64,
    f_spare: [i64; 4],
}

#[inline(always)]
unsafe fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize, e: usize) -> isize {
    let r: isize;
    // SAFETY: a raw system call; the caller passes arguments valid for `n`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => r,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") e,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    r
}

/// Does the C string at `s` begin with `prefix` (whose NUL, if it has one,
/// then requires the whole string to match)?
unsafe fn starts_with(s: *const u8, prefix: &[u8]) -> bool {
    for (i, &b) in prefix.iter().enumerate() {
        // SAFETY: s is NUL-terminated and we stop at its first mismatch,
        // which its NUL is unless the prefix ends there too.
        if unsafe { *s.add(i) } != b {
            return false;
        }
    }
    true
}

/// The quick look: the first word that is neither an option nor a global
/// option's value.
unsafe fn enters_container(argv: *const *const u8, argc: usize) -> bool {
    let mut i = 1;
    while i < argc {
        // SAFETY: i < argc, and argv holds argc valid C strings.
        let a = unsafe { *argv.add(i) };
        // SAFETY: a is a valid C string.
        let is = |w: &[u8]| unsafe { starts_with(a, w) };
        if is(b"--root\0") || is(b"--log\0") || is(b"--log-format\0") {
            i += 2;
        } else if is(b"-") {
            i += 1;
        } else {
            return is(b"create\0") || is(b"run\0") || is(b"exec\0");
        }
    }
    false
}

/// Sealed (memfd) or on a read-only mount, as sealed_exe::protection says.
unsafe fn is_protected(fd: usize) -> bool {
    // SAFETY: fcntl on an fd we own.
    let seals = unsafe { syscall(SYS_FCNTL, fd, F_GET_SEALS, 0, 0, 0) };
    if seals >= 0 && seals & F_SEAL_WRITE != 0 {
        return true;
    }
    let mut st = MaybeUninit::<StatFs>::uninit();
    // SAFETY: fstatfs fills a struct statfs, whose x86_64 layout StatFs is.
    let r = unsafe { syscall(SYS_FSTATFS, fd, st.as_mut_ptr() as usize, 0, 0, 0) };
    // SAFETY: the kernel filled st when it returned 0.
    r == 0 && unsafe { st.assume_init_ref() }.f_flags & ST_RDONLY != 0
}

/// Re-executes brig from a read-only detached bind mount of its own binary
/// when the command enters a container; returns when it does not, or did not
/// manage to (the normal start-up then takes over).
///
/// # Safety
/// Only for brig_entry: `sp` is the initial stack the kernel built.
unsafe extern "C" fn preflight(sp: *const usize) {
    // SAFETY: the kernel's initial stack: argc, argv[argc] and a NULL, then
    // the environment, NULL-terminated.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        if !enters_container(argv, argc) {
            return;
        }
        ENTERS_CONTAINER.store(true, Ordering::Relaxed);
        let mut n = 0;
        while !(*envp.add(n)).is_null() {
            let e = *envp.add(n);
            if starts_with(e, b"_BRIG_SEALED_EXE=") || starts_with(e, b"BRIG_SEALED_EXE=") {
                return;
            }
            n += 1;
        }
        if n + 2 > MAX_ENV {
            return;
        }
        let fd = syscall(SYS_OPEN, SELF_EXE.as_ptr() as usize, O_CLOEXEC, 0, 0, 0);
        if fd < 0 {
            return;
        }
        let protected = is_protected(fd as usize);
        syscall(SYS_CLOSE, fd as usize, 0, 0, 0, 0);
        if protected {
            return;
        }
        let tree = syscall(
            SYS_OPEN_TREE,
            AT_FDCWD as usize,
            SELF_EXE.as_ptr() as usize,
            OPEN_TREE_CLONE | O_CLOEXEC,
            0,
            0,
        );
        if tree < 0 {
            return;
        }
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let set = syscall(
            SYS_MOUNT_SETATTR,
            tree as usize,
            EMPTY.as_ptr() as usize,
            AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr as usize,
            core::mem::size_of::<MountAttr>(),
        );
        if set == 0 {
            let mut env = MaybeUninit::<[*const u8; MAX_ENV]>::uninit();
            let new = env.as_mut_ptr() as *mut *const u8;
            for i in 0..n {
                ptr::write_volatile(new.add(i), *envp.add(i));
            }
            ptr::write_volatile(new.add(n), MARKER.as_ptr());
            ptr::write_volatile(new.add(n + 1), ptr::null());
            syscall(
                SYS_EXECVEAT,
                tree as usize,
                EMPTY.as_ptr() as usize,
                argv as usize,
                new as usize,
                AT_EMPTY_PATH,
            );
        }
        syscall(SYS_CLOSE, tree as usize, 0, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn look(line: &str) -> bool {
        let args: Vec<CString> = std::iter::once("brig")
            .chain(line.split_whitespace())
            .map(|a| CString::new(a).unwrap())
            .collect();
        let argv: Vec<*const u8> = args.iter().map(|a| a.as_ptr().cast()).collect();
        // SAFETY: argv holds args.len() valid C strings.
        unsafe { enters_container(argv.as_ptr(), argv.len()) }
    }

    #[test]
    fn the_quick_look_finds_the_command_past_global_options() {
        assert!(look("create -b . x"));
        assert!(look("--root /run/x --log-format json run -b . x"));
        assert!(look("--debug --log=/tmp/l exec x true"));
        // A global option's value is not the command.
        assert!(!look("--root run state x"));
        assert!(!look("--log exec list"));
        assert!(!look("state run"));
        assert!(!look("runs"));
        assert!(!look("--version"));
        assert!(!look(""));
    }

    #[test]
    fn the_marker_is_the_one_sealed_exe_removes() {
        assert_eq!(
            MARKER,
            format!("{}=1\0", super::super::sealed_exe::MARKER).as_bytes()
        );
    }
}

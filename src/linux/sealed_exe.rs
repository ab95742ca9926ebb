//! Running brig from a handle on its binary that cannot be written.
//!
//! A process that enters a container (create's init, exec's child, a build's
//! RUN step) starts as a copy of brig, so /proc/PID/exe points at brig's
//! binary. A container program that is a `#!/proc/self/exe` script makes the
//! kernel run that binary again, inside the container, where any container
//! process may take /proc/PID/exe and, once brig has exited, open it for
//! writing: the host's runtime is replaced (CVE-2019-5736). Being
//! non-dumpable hides the handle only from processes without CAP_SYS_PTRACE.
//!
//! So before entering a container, brig executes itself once more from a
//! handle that refuses writes: first a detached, read-only bind mount of its
//! own binary (open_tree + mount_setattr: no mount appears in any namespace,
//! no copy, page cache shared), and where that is not allowed, a sealed memfd
//! copy. Either way /proc/PID/exe of every brig process inside a container
//! leads only to a file the kernel will not open for writing.

use crate::error::{Error, IoContext, Result, SysContext};
use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
use nix::sys::stat::Mode;
use std::ffi::{CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;

const SELF_EXE: &str = "/proc/self/exe";
/// Set on the re-executed process so that a kernel which does not report the
/// protection back cannot make brig execute itself forever.
pub(crate) const MARKER: &str = "_BRIG_SEALED_EXE";

/// `memfd` skips the read-only bind and always runs from a sealed copy.
pub const STRATEGY: &str = "BRIG_SEALED_EXE";

/// How this process's binary is protected, if it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Protection {
    /// The binary sits on a read-only mount (our detached bind, or a host
    /// whose /usr is read-only).
    ReadOnlyMount,
    /// The binary is a memfd sealed against writes.
    SealedMemfd,
}

/// How this process's binary is protected now, or None when
/// /proc/self/exe is a writable host file.
pub fn protection() -> Result<Option<Protection>> {
    let fd = nix::fcntl::open(SELF_EXE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .sys(|| format!("opening {SELF_EXE}"))?;
    if let Ok(seals) = fcntl(&fd, FcntlArg::F_GET_SEALS) {
        if SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_WRITE) {
            return Ok(Some(Protection::SealedMemfd));
        }
    }
    let vfs = nix::sys::statvfs::fstatvfs(&fd).sys(|| format!("statvfs {SELF_EXE}"))?;
    if vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(Some(Protection::ReadOnlyMount));
    }
    Ok(None)
}

/// Make sure this process runs from a write-protected binary: return at once
/// when it already does, otherwise execute it again from one (on success this
/// does not return). Call it before anything opens files or starts threads.
pub fn ensure() -> Result<()> {
    let protected = protection()?;
    let marked = std::env::var_os(MARKER).is_some();
    if marked {
        // Not inherited by anything brig starts afterwards.
        std::env::remove_var(MARKER);
    }
    if protected.is_some() {
        return Ok(());
    }
    if marked {
        return Err(Error::Other(format!(
            "{SELF_EXE} is still writable after re-executing from a protected copy"
        )));
    }
    let argv = cstrings(std::env::args_os())?;
    let mut env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    env.push(format!("{MARKER}=1").into());
    let envp = cstrings(env)?;
    // A read-only mount shares the page cache with the host binary; a sealed
    // copy costs memory but also holds against page-cache corruption bugs.
    let bind_err = if std::env::var_os(STRATEGY).is_some_and(|v| v == "memfd") {
        Error::Other(format!("skipped ({STRATEGY}=memfd)"))
    } else {
        match read_only_bind() {
            Ok(fd) => exec_fd(&fd, &argv, &envp),
            Err(e) => e,
        }
    };
    let memfd_err = match sealed_copy() {
        Ok(fd) => exec_fd(&fd, &argv, &envp),
        Err(e) => e,
    };
    Err(Error::Other(format!(
        "cannot run brig from a write-protected copy of its binary (CVE-2019-5736): \
         read-only bind: {bind_err}; sealed memfd: {memfd_err}"
    )))
}

fn cstrings(items: impl IntoIterator<Item = OsString>) -> Result<Vec<CString>> {
    items
        .into_iter()
        .map(|s| {
            CString::new(s.into_vec())
                .map_err(|_| Error::Other("an argument or variable holds a NUL byte".into()))
        })
        .collect()
}

/// execveat(fd, "", AT_EMPTY_PATH); returns only on failure.
fn exec_fd(fd: &OwnedFd, argv: &[CString], envp: &[CString]) -> Error {
    match nix::unistd::fexecve(fd, argv, envp) {
        Ok(never) => match never {},
        Err(e) => Error::sys("executing the protected copy of brig", e),
    }
}

/// A detached bind mount of our binary, made read-only. It is never attached
/// anywhere, and once exec closes its fd nothing can make it writable again.
fn read_only_bind() -> Result<OwnedFd> {
    let fd = super::bind_sources::open_tree(std::path::Path::new(SELF_EXE), false)
        .map_err(|e| Error::sys("open_tree", e))?;
    super::mounts::set_mount_attr(
        &fd,
        nix::mount::MsFlags::MS_RDONLY | nix::mount::MsFlags::MS_NODEV,
    )
    .sys(|| "mount_setattr read-only".into())?;
    Ok(fd)
}

/// A memfd holding a copy of our binary, sealed against every change.
fn sealed_copy() -> Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"brig";
    // Kernels since 6.3 want MFD_EXEC said explicitly (vm.memfd_noexec);
    // older ones reject the flag they do not know.
    let base = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let memfd = memfd_create(name, base | MFdFlags::from_bits_retain(MFD_EXEC))
        .or_else(|_| memfd_create(name, base))
        .sys(|| "memfd_create".into())?;
    let mut src = std::fs::File::open(SELF_EXE).at(SELF_EXE)?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst).at("memfd copy of brig")?;
    let fd = OwnedFd::from(dst);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).sys(|| "sealing the memfd copy".into())?;
    Ok(fd)
}

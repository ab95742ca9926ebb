//! Namespace kinds, their clone flags, and joining one by path.

use crate::error::{IoContext, Result, SysContext};
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of the kind under /proc/PID/ns/.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join, opened by the parent while host paths still resolve.
pub struct Join {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

impl Join {
    pub fn open(kind: LinuxNamespaceType, path: &Path) -> Result<Join> {
        let file = File::open(path).at(path)?;
        Ok(Join {
            kind,
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn enter(&self) -> Result<()> {
        nix::sched::setns(self.file.as_fd(), clone_flag(self.kind)).sys(|| {
            format!(
                "joining {} namespace {}",
                proc_name(self.kind),
                self.path.display()
            )
        })
    }
}

/// A new network namespace starts with `lo` down; runc brings it up, and
/// programs expect 127.0.0.1 to answer.
pub fn loopback_up() -> Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .sys(|| "socket for lo".into())?;
    // SAFETY: ifreq is plain data; all-zero is a valid empty request.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags of the named interface in `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(crate::error::Error::sys(
            "reading lo's flags",
            nix::Error::last(),
        ));
    }
    // SAFETY: the union's flags member is what SIOCGIFFLAGS just filled.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(crate::error::Error::sys(
            "bringing lo up",
            nix::Error::last(),
        ));
    }
    Ok(())
}

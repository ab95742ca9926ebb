//! Switching to the container's user: groups, gid, uid, and the umask.

use crate::error::{Result, SysContext};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// Whether this process may call setgroups: a user namespace whose
/// /proc/self/setgroups says "deny" forbids it. None when /proc cannot
/// tell (exec's helper is not in the pid namespace of the container's
/// procfs).
fn setgroups_allowed() -> Option<bool> {
    std::fs::read_to_string("/proc/self/setgroups")
        .ok()
        .map(|s| s.trim() != "deny")
}

/// Root of the user namespace just entered, where its maps allow it (and
/// nothing otherwise): the host's ids are unmapped there.
pub fn become_namespace_root() {
    let _ = setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0));
    let _ = setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0));
}

/// Hands stdio to the process's user, keeping each one's group (the pty
/// slave's is the tty group), so that a non-root process can use its
/// terminal; as runc does. /dev/null and what the user already owns are
/// left alone, and so is what the kernel will not let us change (an id
/// unmapped in a user namespace, a read-only /dev).
pub fn give_stdio_to(uid: u32) -> Result<()> {
    let null = nix::sys::stat::stat("/dev/null").ok().map(|s| s.st_rdev);
    for fd in 0..3 {
        // SAFETY: stdio fds stay open for the life of the process.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null;
        if st.st_uid == uid || is_null {
            continue;
        }
        match nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(st.st_gid))) {
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::EPERM | nix::Error::EROFS) => {}
            Err(e) => return Err(crate::error::Error::sys("chown of stdio", e)),
        }
    }
    Ok(())
}

/// additionalGids as setgroups takes them: each once, in the order
/// first given (runc drops repeats too, and getgroups shows the list).
fn supplementary_gids(user: &User) -> Vec<Gid> {
    let mut gids: Vec<Gid> = Vec::new();
    for g in user.additional_gids().iter().flatten() {
        let g = Gid::from_raw(*g);
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    gids
}

pub fn switch(user: &User) -> Result<()> {
    let gids = supplementary_gids(user);
    let what = || format!("setgroups {:?}", user.additional_gids());
    match setgroups_allowed() {
        Some(true) => setgroups(&gids).sys(what)?,
        Some(false) => {}
        // Called as root of the namespace: EPERM can only mean "deny".
        None => match setgroups(&gids) {
            Err(nix::Error::EPERM) => {}
            other => other.sys(what)?,
        },
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).sys(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).sys(|| format!("setuid {}", user.uid()))
}

pub fn set_umask(user: &User) {
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
}

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

pub fn switch(user: &User) -> Result<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
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

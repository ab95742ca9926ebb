//! AppArmor profiles and SELinux labels: applied when the host runs the
//! LSM; when it does not, asking for one is an error (as in runc), never a
//! silent skip.

use crate::error::{Error, Result};

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checked at create time, before anything is set up.
pub fn check(
    apparmor: Option<&str>,
    selinux: Option<&str>,
    mount_label: Option<&str>,
) -> std::result::Result<(), String> {
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            return Err(format!(
                "process.apparmorProfile {p:?}: AppArmor is not enabled on this host"
            ));
        }
    }
    for (field, label) in [
        ("process.selinuxLabel", selinux),
        ("linux.mountLabel", mount_label),
    ] {
        if let Some(l) = label.filter(|l| !l.is_empty()) {
            if !selinux_enabled() {
                return Err(format!(
                    "{field} {l:?}: SELinux is not enabled on this host"
                ));
            }
        }
    }
    Ok(())
}

/// Arms the profile/label for the next execve. Written through the
/// procfs init opened before pivot_root, so the container's /proc (which may
/// be missing or fake) plays no part.
pub fn arm_exec(
    proc_self_attr: &std::fs::File,
    apparmor: Option<&str>,
    selinux: Option<&str>,
) -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    let write = |rel: &str, text: String| -> Result<()> {
        let fd = nix::fcntl::openat(
            proc_self_attr.as_fd(),
            rel,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("opening /proc/self/attr/{rel}"), e))?;
        std::fs::File::from(fd)
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("/proc/self/attr/{rel}"), e))
    };
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        write("apparmor/exec", format!("exec {p}"))?;
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        write("exec", l.to_string())?;
    }
    Ok(())
}

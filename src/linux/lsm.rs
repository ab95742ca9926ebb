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

/// The attr files to write for the next execve, opened while a procfs of
/// the process's own is reachable (the host's before pivot_root, or the
/// container's, verified). Each is a file of this process: it can be
/// written only by the process itself and leads nowhere else, unlike the
/// attr directory (whose `..` walks the host's procfs).
pub struct ExecAttrs {
    files: Vec<(std::fs::File, String, String)>,
}

/// Opens `PID/attr/...` under `proc` (a procfs root) for the labels asked
/// for; None when there are none.
pub fn open_exec_attrs(
    proc: std::os::fd::BorrowedFd,
    apparmor: Option<&str>,
    selinux: Option<&str>,
) -> Result<Option<ExecAttrs>> {
    let pid = nix::unistd::getpid();
    let mut files = Vec::new();
    let wanted = [
        (apparmor.filter(|p| !p.is_empty()), "apparmor/exec", "exec "),
        (selinux.filter(|l| !l.is_empty()), "exec", ""),
    ];
    for (value, rel, prefix) in wanted {
        let Some(value) = value else { continue };
        let path = format!("{pid}/attr/{rel}");
        let fd = nix::fcntl::openat(
            proc,
            path.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("opening /proc/self/attr/{rel}"), e))?;
        files.push((
            std::fs::File::from(fd),
            format!("/proc/self/attr/{rel}"),
            format!("{prefix}{value}"),
        ));
    }
    Ok((!files.is_empty()).then_some(ExecAttrs { files }))
}

impl ExecAttrs {
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.files.iter().map(|(f, _, _)| f.as_raw_fd()).collect()
    }

    /// Arms the profile/label for the next execve.
    pub fn arm(&self) -> Result<()> {
        use std::io::Write;
        for (file, path, text) in &self.files {
            (&*file)
                .write_all(text.as_bytes())
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }
}

//! Reading process facts back from /proc: the kernel is the source of truth.

/// (state letter, start time in clock ticks) of a process, from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses; the fields start after the last ')'.
    let rest = &raw[raw.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 of stat; `state` was field 3.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// True if `pid` is alive, not a zombie, and started at `start`.
pub fn is_same_live_process(pid: i32, start: u64) -> bool {
    matches!(stat(pid), Some((s, t)) if t == start && s != 'Z' && s != 'X')
}

/// The inode that identifies a process's namespace of the given kind.
pub fn namespace_id(pid: i32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Every pid on the host whose pid namespace is `ns`.
pub fn pids_in_pid_namespace(ns: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| namespace_id(pid, "pid").as_deref() == Some(ns))
        .collect()
}

/// The container's /proc, once it is the root: the root of a real procfs
/// mount, or an error (the rootfs may ship a fake /proc, or none). A
/// procfs mounted by init belongs to init's own pid namespace, so
/// `getpid()` names this process in it.
pub fn container_proc() -> crate::error::Result<std::os::fd::OwnedFd> {
    use crate::error::Error;
    use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
    const PROC_ROOT_INO: u64 = 1;
    let root = std::fs::File::open("/").map_err(|e| Error::io("/", e))?;
    let proc = super::paths::open_in_root(
        std::os::fd::AsFd::as_fd(&root),
        std::path::Path::new("/proc"),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| Error::sys("opening the container's /proc", e))?;
    let on_procfs = fstatfs(&proc).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
    let is_root = nix::sys::stat::fstat(&proc).is_ok_and(|st| st.st_ino == PROC_ROOT_INO);
    if !on_procfs || !is_root {
        return Err(Error::Other(
            "the container's /proc is not a procfs mount (the spec must mount proc at /proc)"
                .into(),
        ));
    }
    Ok(proc)
}

/// A procfs instance of this process's pid namespace, attached nowhere, for
/// a container whose spec mounts none at /proc. Made before pivot_root:
/// in a user namespace the kernel allows a new procfs only while a fully
/// visible one (the host's) is still in the mount namespace. `subset=pid`
/// shows nothing but the processes of the namespace.
pub fn detached() -> crate::error::Result<std::os::fd::OwnedFd> {
    use crate::error::Error;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x02;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x04;
    const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x08;
    let fail = |what: &str| Error::sys(format!("a private procfs: {what}"), nix::Error::last());
    // SAFETY: fsopen reads one C string and returns a new fd or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(fail("fsopen"));
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    // SAFETY: fsconfig reads two C strings on an fs context fd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"subset".as_ptr(),
            c"pid".as_ptr(),
            0,
        )
    };
    if r != 0 {
        return Err(fail("fsconfig subset=pid"));
    }
    // SAFETY: FSCONFIG_CMD_CREATE takes no pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r != 0 {
        return Err(fail("fsconfig create"));
    }
    // SAFETY: fsmount on an fs context fd we own; returns a new fd or -1.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        )
    };
    if m < 0 {
        return Err(fail("fsmount"));
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
}

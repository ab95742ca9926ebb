//! config-linux.md sysctl, seccomp, personality; config.md apparmorProfile
//! and selinuxLabel (only where the host has the LSM).

use crate::harness::{Case, TResult, Test};
use crate::reaper::Exit;
use crate::{check, skip, tests};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

pub fn tests() -> Vec<Test> {
    tests![
        sysctl_net,
        sysctl_ipc,
        seccomp_errno,
        seccomp_errno_ret,
        seccomp_args,
        seccomp_kill_process,
        seccomp_default_action_errno,
        personality_linux32,
        personality_linux,
        apparmor_profile,
        selinux_label,
    ]
}

fn read_text<'a>(r: &'a Value, p: &str) -> &'a str {
    r["reads"][p]["text"]
        .as_str()
        .unwrap_or("<unreadable>")
        .trim()
}

/// linux.sysctl "allows kernel parameters to be modified at runtime for the
/// container": network sysctls in the container's network namespace.
fn sysctl_net(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "net.ipv4.ip_default_ttl": "42",
    });
    b.probe(&[
        "--read",
        "/proc/sys/net/ipv4/ip_forward",
        "--read",
        "/proc/sys/net/ipv4/ip_default_ttl",
    ]);
    let r = c.run_probe(&b)?;
    check!(
        read_text(&r, "/proc/sys/net/ipv4/ip_forward") == "1",
        "net.ipv4.ip_forward is {:?}",
        read_text(&r, "/proc/sys/net/ipv4/ip_forward")
    );
    check!(
        read_text(&r, "/proc/sys/net/ipv4/ip_default_ttl") == "42",
        "net.ipv4.ip_default_ttl is {:?}",
        read_text(&r, "/proc/sys/net/ipv4/ip_default_ttl")
    );
    let host = fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap_or_default();
    check!(
        host.trim() != "42",
        "the host's ip_default_ttl changed to 42"
    );
    Ok(())
}

/// IPC sysctls in the container's IPC namespace.
fn sysctl_ipc(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["sysctl"] = json!({
        "kernel.shm_rmid_forced": "1",
        "kernel.msgmax": "12345",
    });
    b.probe(&[
        "--read",
        "/proc/sys/kernel/shm_rmid_forced",
        "--read",
        "/proc/sys/kernel/msgmax",
    ]);
    let r = c.run_probe(&b)?;
    check!(
        read_text(&r, "/proc/sys/kernel/shm_rmid_forced") == "1",
        "kernel.shm_rmid_forced is {:?}",
        read_text(&r, "/proc/sys/kernel/shm_rmid_forced")
    );
    check!(
        read_text(&r, "/proc/sys/kernel/msgmax") == "12345",
        "kernel.msgmax is {:?}",
        read_text(&r, "/proc/sys/kernel/msgmax")
    );
    Ok(())
}

/// A profile that allows everything but mkdir(2)/mkdirat(2).
fn deny_mkdir(action: &str, errno_ret: Option<u32>) -> Value {
    let mut rule = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Some(e) = errno_ret {
        rule["errnoRet"] = json!(e);
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [rule],
    })
}

/// SCMP_ACT_ERRNO without errnoRet: "If not specified its default value is
/// EPERM." The filter is in force (Seccomp: 2) and other calls still work.
fn seccomp_errno(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["seccomp"] = deny_mkdir("SCMP_ACT_ERRNO", None);
    b.probe(&["--mkdir", "/tmp/cf-dir", "--create", "/tmp/cf-file"]);
    let r = c.run_probe(&b)?;
    check!(
        r["seccomp"] == 2,
        "Seccomp mode is {}, want 2 (filter)",
        r["seccomp"]
    );
    check!(
        r["mkdirs"]["/tmp/cf-dir"]["errno"] == libc::EPERM,
        "mkdir under the profile: {}, want EPERM",
        r["mkdirs"]["/tmp/cf-dir"]
    );
    check!(
        r["creates"]["/tmp/cf-file"]["ok"] == true,
        "a call the profile allows failed: {}",
        r["creates"]["/tmp/cf-file"]
    );
    Ok(())
}

/// errnoRet: the errno the filtered call returns.
fn seccomp_errno_ret(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["seccomp"] = deny_mkdir("SCMP_ACT_ERRNO", Some(libc::EXDEV as u32));
    b.probe(&["--mkdir", "/tmp/cf-dir"]);
    let r = c.run_probe(&b)?;
    check!(
        r["mkdirs"]["/tmp/cf-dir"]["errno"] == libc::EXDEV,
        "mkdir: {}, want errnoRet EXDEV ({})",
        r["mkdirs"]["/tmp/cf-dir"],
        libc::EXDEV
    );
    Ok(())
}

/// syscalls[].args: a rule that matches only mkdir(path, 0711).
fn seccomp_args(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": ["mkdir"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 1, "value": 0o711, "op": "SCMP_CMP_EQ"}],
        }],
    });
    b.probe(&["--mkdir", "/tmp/cf-711:711", "--mkdir", "/tmp/cf-755:755"]);
    let r = c.run_probe(&b)?;
    check!(
        r["mkdirs"]["/tmp/cf-711:711"]["errno"] == libc::EPERM,
        "mkdir mode 0711 (matches the rule): {}",
        r["mkdirs"]["/tmp/cf-711:711"]
    );
    check!(
        r["mkdirs"]["/tmp/cf-755:755"]["ok"] == true,
        "mkdir mode 0755 (does not match): {}",
        r["mkdirs"]["/tmp/cf-755:755"]
    );
    Ok(())
}

/// SCMP_ACT_KILL_PROCESS: the process dies of SIGSYS at the call.
fn seccomp_kill_process(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["seccomp"] = deny_mkdir("SCMP_ACT_KILL_PROCESS", None);
    b.probe(&["--mkdir", "/tmp/cf-dir"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    let exit = c.wait_stopped(&ctr)?;
    check!(
        exit == Some(Exit::Signal(libc::SIGSYS)),
        "the process ended {exit:?}, want killed by SIGSYS; stdout {:?}",
        ctr.stdout()
    );
    check!(
        !b.host_path("/tmp/cf-dir").exists(),
        "the directory was made"
    );
    Ok(())
}

/// defaultAction SCMP_ACT_ERRNO with the probe's own calls allowed: a call
/// outside the list (mkdir) fails with EPERM, the listed ones work.
fn seccomp_default_action_errno(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    // Everything the runtime's last steps and the probe need, and not mkdir.
    let allowed = [
        "read",
        "write",
        "openat",
        "open",
        "close",
        "fstat",
        "newfstatat",
        "statx",
        "lstat",
        "stat",
        "lseek",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "pread64",
        "readv",
        "writev",
        "access",
        "pipe",
        "pipe2",
        "sched_yield",
        "madvise",
        "dup",
        "dup2",
        "dup3",
        "getpid",
        "getppid",
        "exit",
        "exit_group",
        "uname",
        "fcntl",
        "getdents64",
        "getcwd",
        "chdir",
        "fchdir",
        "readlink",
        "readlinkat",
        "getrlimit",
        "prlimit64",
        "getuid",
        "getgid",
        "geteuid",
        "getegid",
        "getresuid",
        "getresgid",
        "getgroups",
        "setgroups",
        "setuid",
        "setgid",
        "setresuid",
        "setresgid",
        "capget",
        "capset",
        "prctl",
        "arch_prctl",
        "personality",
        "statfs",
        "fstatfs",
        "statvfs",
        "sched_getscheduler",
        "sched_getparam",
        "getpriority",
        "ioprio_get",
        "clock_gettime",
        "clock_nanosleep",
        "nanosleep",
        "futex",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "sigaltstack",
        "poll",
        "ppoll",
        "execve",
        "execveat",
        "gettid",
        "tgkill",
        "getrandom",
        "sched_getaffinity",
        "faccessat",
        "faccessat2",
        "close_range",
        "epoll_pwait",
        "epoll_ctl",
        "epoll_create1",
        "setsid",
        "umask",
        "kill",
        "wait4",
        "fchown",
        "fchmod",
        "fchownat",
        "fsync",
        "getsockopt",
        "socket",
        "connect",
        "sendmsg",
        "recvmsg",
        "clone",
        "clone3",
        "getpgrp",
        "setpgid",
        "openat2",
        "mincore",
        "membarrier",
        "restart_syscall",
        "waitid",
        "gettimeofday",
        "mount",
        "umount2",
        "pivot_root",
        "sethostname",
        "setdomainname",
        "keyctl",
    ];
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed.as_slice(), "action": "SCMP_ACT_ALLOW"}],
    });
    b.probe(&["--mkdir", "/tmp/cf-dir"]);
    let r = c.run_probe(&b)?;
    check!(
        r["mkdirs"]["/tmp/cf-dir"]["errno"] == libc::EPERM,
        "mkdir (not in the allow list): {}, want EPERM",
        r["mkdirs"]["/tmp/cf-dir"]
    );
    Ok(())
}

/// linux.personality LINUX32: "will set the uname system call to show a 32
/// bit CPU type, such as i686". runc 1.1 predates the field (runc 1.2
/// added it) and ignores it.
fn personality_linux32(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let r = c.run_probe(&b)?;
    check!(
        r["uname"]["machine"] == "i686",
        "uname -m is {}, want i686",
        r["uname"]["machine"]
    );
    check!(
        r["personality"].as_i64().unwrap_or(-1) & 0xff == 0x0008,
        "personality is {:#x}, want PER_LINUX32",
        r["personality"].as_i64().unwrap_or(-1)
    );
    Ok(())
}

/// domain LINUX: the default persona, uname shows x86_64.
fn personality_linux(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["personality"] = json!({"domain": "LINUX"});
    let r = c.run_probe(&b)?;
    let host = fs::read_to_string("/proc/sys/kernel/arch").unwrap_or_else(|_| "x86_64".into());
    check!(
        r["uname"]["machine"] == host.trim(),
        "uname -m is {}",
        r["uname"]["machine"]
    );
    check!(
        r["personality"].as_i64().unwrap_or(-1) & 0xff == 0,
        "personality is {:#x}",
        r["personality"].as_i64().unwrap_or(-1)
    );
    Ok(())
}

fn apparmor_enabled() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
        && Path::new("/sys/kernel/security/apparmor").exists()
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// process.apparmorProfile: the process runs confined by the profile.
fn apparmor_profile(c: &mut Case) -> TResult {
    if !apparmor_enabled() {
        skip!("the host kernel has no AppArmor enabled (no /sys/kernel/security/apparmor)");
    }
    let profiles = fs::read_to_string("/sys/kernel/security/apparmor/profiles").unwrap_or_default();
    let Some(profile) = profiles
        .lines()
        .filter_map(|l| {
            l.strip_suffix(" (enforce)")
                .or_else(|| l.strip_suffix(" (complain)"))
        })
        .find(|p| p.contains("docker-default") || p.contains("container"))
    else {
        skip!("AppArmor is on but no container profile (docker-default) is loaded");
    };
    let mut b = c.bundle()?;
    b.config["process"]["apparmorProfile"] = json!(profile);
    b.probe(&["--read", "/proc/self/attr/current"]);
    let r = c.run_probe(&b)?;
    check!(
        read_text(&r, "/proc/self/attr/current").starts_with(profile),
        "confined by {:?}, want {profile}",
        read_text(&r, "/proc/self/attr/current")
    );
    Ok(())
}

/// process.selinuxLabel: the process runs with the label.
fn selinux_label(c: &mut Case) -> TResult {
    if !selinux_enabled() {
        skip!("the host kernel has no SELinux enabled (no /sys/fs/selinux)");
    }
    let label = "system_u:system_r:container_t:s0:c1,c2";
    let mut b = c.bundle()?;
    b.config["process"]["selinuxLabel"] = json!(label);
    b.probe(&["--read", "/proc/self/attr/current"]);
    let r = c.run_probe(&b)?;
    check!(
        read_text(&r, "/proc/self/attr/current").trim_end_matches('\0') == label,
        "label is {:?}",
        read_text(&r, "/proc/self/attr/current")
    );
    Ok(())
}

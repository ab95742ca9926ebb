//! linux.seccomp: real containers under a filter. Each profile blocks or
//! changes what one syscall does, and the container shows it: the errno a
//! busybox applet prints, a signal's exit code, /proc/self/status.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Sets `linux.seccomp` (and a writable root, so that mkdir can succeed
/// when it is allowed).
fn with_profile(profile: Value) -> impl FnOnce(&mut Value) {
    move |cfg| {
        writable_root(cfg);
        cfg["linux"]["seccomp"] = profile;
    }
}

/// A profile that allows everything but applies `action` to `names`.
fn only(names: &[&str], action: &str, extra: Value) -> Value {
    let mut rule = json!({"names": names, "action": action});
    if let (Some(r), Some(e)) = (rule.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

/// busybox's mkdir may use mkdir(2) or mkdirat(2): rules name both.
const MKDIR: &[&str] = &["mkdir", "mkdirat"];

#[test]
fn errno_fails_one_syscall_with_eperm_and_the_rest_works() {
    let out = run_in_container(
        "sc_errno",
        with_profile(only(MKDIR, "SCMP_ACT_ERRNO", json!({}))),
        &[
            "sh",
            "-c",
            "mkdir /tmp/x; echo mkdir=$?; touch /tmp/f && ls /tmp && echo ok",
        ],
    );
    assert_eq!(out.ok(), "mkdir=1\nf\nok\n");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "mkdir should fail with EPERM: {out}"
    );
}

#[test]
fn errno_ret_is_the_errno() {
    let out = run_in_container(
        "sc_errno_ret",
        with_profile(only(MKDIR, "SCMP_ACT_ERRNO", json!({"errnoRet": 28}))),
        &["mkdir", "/tmp/x"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("No space left on device"),
        "errnoRet 28 is ENOSPC: {out}"
    );
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let names = ["no_such_syscall", "mkdir", "mkdirat"];
    let out = run_in_container(
        "sc_unknown",
        with_profile(only(&names, "SCMP_ACT_ERRNO", json!({"errnoRet": 28}))),
        &["sh", "-c", "echo started; mkdir /tmp/x"],
    );
    assert_eq!(out.stdout, "started\n", "{out}");
    assert!(out.stderr.contains("No space left on device"), "{out}");
}

/// Sends each signal in `signals` to a sleeping child with kill(2) and
/// prints `SIG=STATUS` for each (status 1 when the filter refused it).
/// Only signals that leave `sleep` running are used.
const KILL_PROBES: &str = "sleep 30 & p=$!
for s in $PROBES; do kill -$s $p 2>/dev/null; echo \"$s=$?\"; done
kill -9 $p 2>/dev/null; true";

fn kill_probe(name: &str, args: Value, probes: &str) -> String {
    let script = KILL_PROBES.replace("$PROBES", probes);
    sh_in_container(
        name,
        with_profile(only(&["kill"], "SCMP_ACT_ERRNO", json!({"args": args}))),
        &script,
    )
}

#[test]
fn argument_condition_selects_the_calls() {
    // kill(pid, sig) is refused only for SIGUSR1 (10); SIGCONT (18) passes.
    let out = kill_probe(
        "sc_arg",
        json!([{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]),
        "10 18 0",
    );
    assert_eq!(out, "10=1\n18=0\n0=0\n");
}

#[test]
fn every_operator_including_masked_eq() {
    // The harmless signals 0, 18 (CONT), 23 (URG) and 28 (WINCH) against
    // each operator; the names are the ones refused.
    let cases = [
        ("SCMP_CMP_EQ", 18, None, "18"),
        ("SCMP_CMP_NE", 18, None, "0 23 28"),
        ("SCMP_CMP_LT", 18, None, "0"),
        ("SCMP_CMP_LE", 18, None, "0 18"),
        ("SCMP_CMP_GE", 23, None, "23 28"),
        ("SCMP_CMP_GT", 23, None, "28"),
        // (sig & 0x3) == 0x2: 18 = 0b10010 only.
        ("SCMP_CMP_MASKED_EQ", 0x3, Some(0x2), "18"),
        // (sig & 0x1c) == 0x1c: 28 only.
        ("SCMP_CMP_MASKED_EQ", 0x1c, Some(0x1c), "28"),
    ];
    for (op, value, value_two, refused) in cases {
        let mut arg = json!({"index": 1, "value": value, "op": op});
        if let Some(v2) = value_two {
            arg["valueTwo"] = json!(v2);
        }
        let out = kill_probe("sc_op", json!([arg]), "0 18 23 28");
        let want: String = ["0", "18", "23", "28"]
            .iter()
            .map(|s| {
                let status = if refused.split(' ').any(|r| r == *s) {
                    1
                } else {
                    0
                };
                format!("{s}={status}\n")
            })
            .collect();
        assert_eq!(out, want, "{op} {value} {value_two:?}");
    }
}

#[test]
fn conditions_on_two_arguments_are_anded() {
    // Refused: kill(1, 0) only. pid 1 is the container's shell.
    let script = "sleep 30 & p=$!
kill -0 1; echo a=$?; kill -0 $p; echo b=$?; kill -18 1; echo c=$?; kill -9 $p";
    let out = sh_in_container(
        "sc_and",
        with_profile(only(
            &["kill"],
            "SCMP_ACT_ERRNO",
            json!({"args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
            ]}),
        )),
        script,
    );
    assert_eq!(out, "a=1\nb=0\nc=0\n");
}

#[test]
fn conditions_on_one_argument_are_ored_like_runc() {
    // runc makes each condition a rule of its own when two test the same
    // argument: either signal is refused.
    let out = kill_probe(
        "sc_or",
        json!([
            {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 18, "op": "SCMP_CMP_EQ"},
        ]),
        "0 18 23",
    );
    assert_eq!(out, "0=1\n18=1\n23=0\n");
}

#[test]
fn kill_and_trap_end_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
    ] {
        let out = run_in_container(
            "sc_kill",
            with_profile(only(MKDIR, action, json!({}))),
            &["mkdir", "/tmp/x"],
        );
        assert_eq!(out.code, Some(128 + libc::SIGSYS), "{action}: {out}");
    }
}

#[test]
fn log_lets_the_call_through() {
    let out = sh_in_container(
        "sc_log",
        with_profile(only(MKDIR, "SCMP_ACT_LOG", json!({}))),
        "mkdir /tmp/x && echo made; grep -E '^Seccomp:' /proc/self/status",
    );
    assert_eq!(out, "made\nSeccomp:\t2\n");
}

#[test]
fn trace_without_a_tracer_fails_with_enosys() {
    let out = run_in_container(
        "sc_trace",
        with_profile(only(MKDIR, "SCMP_ACT_TRACE", json!({}))),
        &["mkdir", "/tmp/x"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("Function not implemented"), "{out}");
}

#[test]
fn setup_syscalls_are_not_filtered() {
    // Everything init needs to build the container is refused, yet the
    // container starts: the filter comes after the setup.
    let refused = [
        "mount",
        "umount2",
        "pivot_root",
        "sethostname",
        "setns",
        "unshare",
        "setgroups",
        "setresuid",
        "setresgid",
        "capset",
    ];
    let out = sh_in_container(
        "sc_setup",
        |cfg| {
            with_profile(only(&refused, "SCMP_ACT_ERRNO", json!({})))(cfg);
            cfg["hostname"] = json!("filtered");
        },
        "hostname; grep -E '^Seccomp:' /proc/self/status",
    );
    assert_eq!(out, "filtered\nSeccomp:\t2\n");
}

#[test]
fn without_no_new_privileges_an_unprivileged_user_is_filtered() {
    // Loading a filter without no_new_privs needs CAP_SYS_ADMIN, which the
    // user below does not have: the runtime must load it before dropping
    // to that user.
    let out = run_in_container(
        "sc_nnp",
        |cfg| {
            with_profile(only(MKDIR, "SCMP_ACT_ERRNO", json!({"errnoRet": 28})))(cfg);
            cfg["process"]["noNewPrivileges"] = json!(false);
            cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            cfg["process"]["capabilities"] = json!({});
        },
        &[
            "sh",
            "-c",
            "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; mkdir /tmp/x",
        ],
    );
    assert_eq!(
        out.stdout, "1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\n",
        "{out}"
    );
    assert!(out.stderr.contains("No space left on device"), "{out}");
}

/// An allow-list profile modelled on Docker's default one (moby's
/// profiles/seccomp/default.json, without its capability-dependent parts).
fn docker_like_profile() -> Value {
    let allowed = [
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "get_robust_list",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "get_thread_area",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "ioctl",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
        "io_setup",
        "io_submit",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listxattr",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "_newselect",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "set_robust_list",
        "setsid",
        "setsockopt",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "setxattr",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "vmsplice",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
    ];
    let personality = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff].map(|v| {
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
    });
    let mut syscalls = vec![json!({"names": &allowed[..], "action": "SCMP_ACT_ALLOW"})];
    syscalls.extend(personality);
    syscalls.extend([
        json!({"names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW"}),
        // clone without namespace flags; clone3's flags sit behind a
        // pointer, so it says ENOSYS and libc falls back to clone.
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 0x7e02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
        // Every socket family but AF_VSOCK (40).
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}),
    ]);
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

#[test]
fn docker_like_default_profile_runs_a_shell() {
    for nnp in [true, false] {
        let out = sh_in_container(
            "sc_docker",
            |cfg| {
                with_profile(docker_like_profile())(cfg);
                cfg["process"]["noNewPrivileges"] = json!(nnp);
            },
            "echo ok; ls /; mkdir /tmp/x && ls -d /tmp/x; grep -E '^Seccomp:' /proc/self/status",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"ok"), "nnp {nnp}: {out}");
        assert!(lines.contains(&"bin") && lines.contains(&"proc"), "{out}");
        assert_eq!(lines[lines.len() - 2..], ["/tmp/x", "Seccomp:\t2"], "{out}");
    }
}

#[test]
fn docker_like_profile_refuses_the_rest_with_default_errno_ret() {
    // chroot is not on the list: it gets defaultErrnoRet (ENOSPC here).
    let out = run_in_container(
        "sc_docker_default",
        |cfg| {
            let mut profile = docker_like_profile();
            profile["defaultErrnoRet"] = json!(libc::ENOSPC);
            with_profile(profile)(cfg);
            cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        },
        &["sh", "-c", "echo started; chroot / true"],
    );
    assert_eq!(out.stdout, "started\n", "{out}");
    assert!(out.stderr.contains("No space left on device"), "{out}");
}

/// A static helper that makes one raw syscall, natively or through the
/// i386 entry (`int $0x80`), and prints the result: `sc [-32] NR [ARGS...]`.
const SYSCALL_HELPER: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int i386 = argc > 1 && strcmp(argv[1], "-32") == 0;
  long a[7] = {0}, r;
  for (int i = 1 + i386, j = 0; i < argc && j < 7; i++, j++) a[j] = strtol(argv[i], 0, 0);
  if (i386) {
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(a[0]), "b"(a[1]), "c"(a[2]), "d"(a[3]),
                     "S"(a[4]), "D"(a[5]) : "memory");
    if (r < 0 && r > -4096) { errno = -r; r = -1; }
  } else {
    r = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
  }
  if (r == -1) { printf("errno %d\n", errno); return 1; }
  printf("ok\n");
  return 0;
}
"#;

/// Builds the helper into the container's /bin/sc (needs gcc and libc6-dev,
/// which hack/setup installs).
fn install_syscall_helper(c: &Container) {
    let src = c.dir.join("sc.c");
    fs::write(&src, SYSCALL_HELPER).expect("write helper source");
    let bin = c.rootfs().join("bin/sc");
    let out = exec(Command::new("gcc").args(["-static", "-O2", "-o", p(&bin), p(&src)]));
    assert!(
        out.success(),
        "building the syscall helper needs gcc and libc6-dev (hack/setup installs them): {out}"
    );
    assert!(Path::new(&bin).exists());
}

#[test]
fn i386_syscalls_cannot_step_around_the_profile() {
    // getpid is 39 on x86_64 and 20 through int $0x80.
    let script = "sc 39; sc -32 20; echo status=$?";
    let run = |arches: Value| {
        let c = Container::new("sc_i386");
        install_syscall_helper(&c);
        let mut profile = only(&["getpid"], "SCMP_ACT_ERRNO", json!({"errnoRet": 28}));
        profile["architectures"] = arches;
        c.edit(|cfg| {
            with_profile(profile)(cfg);
            set_sh(cfg, script);
        });
        c.run(&[]).ok().to_string()
    };
    // Listed, i386 gets the same rules with its own numbers.
    let out = run(json!([
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32"
    ]));
    assert_eq!(out, "errno 28\nerrno 28\nstatus=1\n");
    // Not listed, an i386 syscall kills the caller (SIGSYS) rather than
    // escaping the filter.
    let out = run(json!(["SCMP_ARCH_X86_64"]));
    assert_eq!(out, format!("errno 28\nstatus={}\n", 128 + libc::SIGSYS));
}

#[test]
fn filter_flags_are_accepted() {
    let c = Container::new("sc_flags");
    let mut profile = only(MKDIR, "SCMP_ACT_ERRNO", json!({}));
    profile["flags"] = json!([
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
    ]);
    c.edit(|cfg| {
        with_profile(profile)(cfg);
        set_sh(cfg, "grep -E '^Seccomp' /proc/self/status; mkdir /tmp/x");
    });
    let out = c.run(&[]);
    if is_runc() {
        // runc 1.1 refuses every flag ("seccomp flags are not yet supported
        // by runc"); runc 1.2 passes them on.
        assert!(out.err().contains("flags"), "{out}");
        return;
    }
    assert_eq!(out.stdout, "Seccomp:\t2\nSeccomp_filters:\t1\n", "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// A bad profile fails create with one line and leaves nothing behind.
/// brig's line names the field or the value (`what`); runc 1.1 words some
/// of these its own way, so for it the line is only required to exist.
fn profile_rejected(name: &str, profile: Value, what: &str) {
    let c = Container::new(name);
    c.edit(with_profile(profile));
    let out = c.try_create(&[]);
    let line = out.err();
    if !is_runc() {
        assert!(
            line.contains(what),
            "the error should name {what:?}: {line}"
        );
    }
    c.assert_gone(None);
    assert!(c.listed_ids().is_empty(), "list -q is not empty");
}

#[test]
fn unknown_action_is_rejected() {
    // runc: "string SCMP_ACT_BOGUS is not a valid action for seccomp".
    profile_rejected(
        "sc_bad_action",
        only(MKDIR, "SCMP_ACT_BOGUS", json!({})),
        "SCMP_ACT_BOGUS",
    );
}

#[test]
fn unknown_operator_is_rejected() {
    profile_rejected(
        "sc_bad_op",
        only(
            MKDIR,
            "SCMP_ACT_ERRNO",
            json!({"args": [{"index": 1, "value": 1, "op": "SCMP_CMP_BOGUS"}]}),
        ),
        "SCMP_CMP_BOGUS",
    );
}

/// Notify rules without an agent to serve them (tests/seccomp_notify.rs
/// has the rest).
#[test]
fn notify_without_a_listener_path_is_rejected() {
    profile_rejected(
        "sc_notify",
        only(MKDIR, "SCMP_ACT_NOTIFY", json!({})),
        "linux.seccomp.listenerPath",
    );
}

#[test]
fn argument_index_out_of_range_is_rejected() {
    profile_rejected(
        "sc_bad_index",
        only(
            MKDIR,
            "SCMP_ACT_ERRNO",
            json!({"args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}),
        ),
        "linux.seccomp.syscalls[0].args[0].index 6",
    );
}

/// Without noNewPrivileges the filter is loaded while init is still
/// privileged, before the uid switch; what init does after it must not
/// need calls the profile may deny. A profile written for older kernels
/// (the OCI runtime-tools default one) knows neither close_range nor
/// openat2: it must still run the container, created then started, and
/// its exec'd processes.
#[test]
fn a_profile_without_close_range_still_runs_the_container() {
    let deny = only(&["close_range", "openat2"], "SCMP_ACT_ERRNO", json!({}));
    let c = Container::running("sc_close_range", |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(false);
        cfg["linux"]["seccomp"] = deny;
    });
    let out = c.cmd(&["exec", &c.id, "echo", "exec-ok"]);
    assert_eq!(out.ok(), "exec-ok\n");
}

/// With noNewPrivileges the filter is loaded before the startContainer
/// hooks, which run as the process will (as runc does): a call the profile
/// denies fails in the hook too.
#[test]
fn start_container_hooks_run_under_the_filter() {
    let c = Container::new("sc_hook");
    c.edit(|cfg| {
        with_profile(only(MKDIR, "SCMP_ACT_ERRNO", json!({})))(cfg);
        cfg["process"]["noNewPrivileges"] = json!(true);
        cfg["hooks"]["startContainer"] = json!([{"path": "/bin/sh",
            "args": ["sh", "-c", "mkdir /tmp/hook-dir 2>/dev/null || touch /tmp/hook-denied"]}]);
        set_args(cfg, &["true"]);
    });
    c.create();
    c.start();
    c.wait_status("stopped");
    let root = c.rootfs();
    assert!(
        root.join("tmp/hook-denied").exists() && !root.join("tmp/hook-dir").exists(),
        "the startContainer hook ran outside the filter"
    );
}

//! Container escapes: one regression test per class of known runc/crun CVE
//! (issue 8). Each names the CVE it guards against; where runc 1.1.5 is
//! itself vulnerable, the test says so in a NOTE and checks brig only.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The runtime binary under test as a path (BRIG_TEST_RUNTIME may be a
/// bare name looked up in PATH).
fn runtime_path() -> std::path::PathBuf {
    let rt = runtime();
    if rt.contains('/') {
        return rt.into();
    }
    let out = exec(Command::new("sh").args(["-c", &format!("command -v {rt}")]));
    out.ok().trim().into()
}

/// "../" enough times to climb from any host directory to the host's `/`.
fn ups() -> String {
    "../".repeat(40)
}

/// `dev:ino` of a host file, as `stat -c %d:%i` prints it.
fn dev_ino(path: &Path) -> String {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {path:?}: {e}"));
    format!("{}:{}", m.dev(), m.ino())
}

/// An executable host script, outside every rootfs, printing `ESCAPED`.
fn host_script(c: &Container) -> String {
    let script = c.host_dir("host-only").join("escape.sh");
    fs::write(&script, "#!/bin/sh\necho ESCAPED\n").expect("write host script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod host script");
    p(&script).to_string()
}

/// A host file, outside every rootfs, holding `HOST-SECRET`.
fn host_secret(c: &Container) -> String {
    let f = c.host_dir("host-only").join("secret");
    fs::write(&f, "HOST-SECRET\n").expect("write host secret");
    p(&f).to_string()
}

fn without_mount(cfg: &mut Value, destination: &str) {
    cfg["mounts"]
        .as_array_mut()
        .expect("mounts array")
        .retain(|m| m["destination"] != destination);
}

// ---- CVE-2019-5736: the runtime binary ----

/// A process exec'd into a created container looks at init (still the
/// runtime, waiting for `start`): it must not reach the runtime's binary or
/// any host file or directory through /proc/1.
#[test]
fn cve_2019_5736_created_init_exposes_no_host_binary_or_fd() {
    if is_runc() {
        skipped("NOTE: runc 1.1.5 (Debian's build) shows its own binary as /proc/1/exe of a created container; only checked for brig");
        return;
    }
    let c = Container::new("esc_init_exe");
    c.create_with(&["sleep", "60"]);
    let caps = c.config()["process"]["capabilities"].clone();
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
        "capabilities": caps,
        "args": ["sh", "-c", "readlink /proc/1/exe; stat -L -c 'exe %d:%i' /proc/1/exe; \
            (: >>/proc/1/exe) 2>/dev/null && echo exe-writable; \
            for f in /proc/1/fd/* /proc/1/cwd /proc/1/root; do \
              test -d $f/ && echo \"dir $f\"; readlink $f; done; echo end"]
    });
    let pjson = c.dir.join("process.json");
    fs::write(&pjson, process.to_string()).expect("write process.json");
    let out = c.cmd(&["exec", "--process", p(&pjson), &c.id]);
    let text = out.stdout.clone();
    assert!(text.ends_with("end\n"), "{out}");
    let host_binary = dev_ino(&runtime_path());
    assert!(
        !text.contains(&host_binary),
        "the runtime binary {host_binary} is reachable as /proc/1/exe: {out}"
    );
    assert!(!text.contains("exe-writable"), "{out}");
    // Only the container's own root may be a reachable directory.
    let dirs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("dir ") && *l != "dir /proc/1/root")
        .collect();
    assert!(
        dirs.is_empty(),
        "init holds host directories: {dirs:?}\n{out}"
    );
    let rootfs = p(&c.rootfs()).to_string();
    let host_paths: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('/') && (l.starts_with(&rootfs) || l.contains(p(&c.dir))))
        .collect();
    assert!(
        host_paths.is_empty(),
        "host paths in init: {host_paths:?}\n{out}"
    );
}

/// `exec` of a program that is a `#!/proc/self/exe` script makes the kernel
/// run whatever binary the exec'ing process is: the runtime itself, inside
/// the container, where a container process can take /proc/PID/exe and,
/// once no runtime runs, open it for writing: the original CVE-2019-5736.
/// Runs a copy of the runtime, so that a successful attack harms nothing.
#[test]
fn cve_2019_5736_shebang_proc_self_exe_cannot_overwrite_the_runtime() {
    let result = shebang_attack("esc_shebang", None);
    // A detached bind mount of a file reads back as its own root.
    assert!(is_runc() || result.starts_with("got /\n"), "{result}");
}

/// brig's ELF entry point must be brig_entry (src/linux/early_reexec.rs),
/// which does the re-exec above before the C library starts. The linker
/// keeps that stub only while Rust code reaches the module; without it,
/// `--entry` names a missing symbol and the entry silently becomes 0.
#[test]
fn brig_starts_at_its_early_reexec_entry() {
    if is_runc() {
        skipped("NOTE: brig's own entry point; nothing to check for runc");
        return;
    }
    let bin = runtime_path();
    let head = fs::read(&bin).expect("read the runtime binary");
    let entry = u64::from_le_bytes(head[24..32].try_into().expect("an ELF header"));
    let nm = exec(Command::new("nm").arg(&bin));
    let symbol = nm
        .ok()
        .lines()
        .find(|l| l.ends_with(" brig_entry"))
        .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok());
    assert_eq!(
        Some(entry),
        symbol,
        "the entry point {entry:#x} is not brig_entry ({symbol:?})"
    );
}

/// The same attack with brig told to run from a sealed memfd copy instead.
#[test]
fn cve_2019_5736_shebang_attack_meets_a_sealed_memfd() {
    let result = shebang_attack("esc_shebang_memfd", Some("memfd"));
    assert!(is_runc() || result.contains("/memfd:brig"), "{result}");
}

/// Runs the attack; returns what the container's watcher saw.
fn shebang_attack(name: &str, strategy: Option<&str>) -> String {
    if is_runc() {
        // runc 1.1.5 runs from a sealed memfd too, but the runc that the
        // shebang starts never shows the watcher a handle it can open.
        eprintln!("NOTE: runc 1.1.5 gives the container no handle to try; only checked for brig");
        return String::new();
    }
    let c = Container::new(name);
    let rt = c.dir.join("runtime-copy");
    // cp, not fs::copy: a write fd of ours on the copy would reach the
    // children other test threads fork meanwhile (ETXTBSY at exec).
    exec(Command::new("cp").arg(runtime_path()).arg(&rt)).ok();
    let before = fs::read(&rt).expect("read runtime copy");
    let rootfs = c.rootfs();
    fs::write(rootfs.join("evil"), "#!/proc/self/exe\n").expect("write /evil");
    fs::set_permissions(rootfs.join("evil"), fs::Permissions::from_mode(0o755)).expect("chmod");
    // The container's program waits for a process whose exe is not the
    // container's busybox, takes a handle on it, lets it finish, and tries to
    // write through the handle for a few seconds after it has gone. The
    // runtime that the shebang starts writes its usage error into a full
    // pipe, so it stays until the test closes the pipe: no race to lose.
    let watch = r#"
        echo ready >/ready
        while :; do
          for d in /proc/[0-9]*; do
            e=$(readlink $d/exe 2>/dev/null) || continue
            case "$e" in /bin/busybox|"") continue;; esac
            exec 3<$d/exe && echo "got $e" >/result && break 2
          done
        done
        for i in $(seq 100); do
          if (echo PWNED >>/proc/self/fd/3) 2>/dev/null; then echo wrote >>/result; exit 0; fi
          sleep 0.1
        done
        echo never-writable >>/result
    "#;
    c.edit(|cfg| {
        writable_root(cfg);
        set_sh(cfg, watch);
    });
    let rt_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&rt);
        cmd.arg("--root")
            .arg(&c.root)
            .args(args)
            .current_dir(&c.dir);
        if let Some(s) = strategy {
            cmd.env("BRIG_SEALED_EXE", s);
        }
        exec(&mut cmd)
    };
    rt_cmd(&["create", "--bundle", p(&c.bundle), &c.id]).ok();
    rt_cmd(&["start", &c.id]).ok();
    wait_for("the watcher to start", || rootfs.join("ready").exists());
    let (out_r, out_w) = full_pipe();
    let mut evil = Command::new(&rt);
    evil.arg("--root")
        .arg(&c.root)
        .args(["exec", &c.id, "/evil"])
        .stdin(std::process::Stdio::null())
        .stdout(out_w.try_clone().expect("dup pipe"))
        .stderr(out_w);
    if let Some(s) = strategy {
        evil.env("BRIG_SEALED_EXE", s);
    }
    let mut evil = evil.spawn().expect("spawn exec /evil");
    wait_for("the watcher's handle", || {
        fs::read_to_string(rootfs.join("result")).is_ok_and(|r| r.starts_with("got "))
    });
    drop(out_r);
    let _ = evil.wait();
    wait_for("the watcher's verdict", || {
        fs::read_to_string(rootfs.join("result"))
            .is_ok_and(|r| r.contains("wrote") || r.contains("never-writable"))
    });
    let result = fs::read_to_string(rootfs.join("result")).unwrap_or_default();
    assert!(
        result.starts_with("got "),
        "the watcher got no handle: {result}"
    );
    let after = fs::read(&rt).expect("read runtime copy");
    assert!(
        before == after && !result.contains("wrote"),
        "the container overwrote the runtime binary: {result}"
    );
    result
}

/// A pipe whose buffer is already full, so that a writer blocks until the
/// read end is closed.
fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) = nix::unistd::pipe().expect("pipe");
    fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
    let chunk = [0u8; 4096];
    while nix::unistd::write(&w, &chunk).is_ok() {}
    fcntl(&w, FcntlArg::F_SETFL(OFlag::empty())).expect("blocking again");
    (r, w)
}

// ---- CVE-2024-21626: leaked host fds ----

const LEAK_CHECK: &str =
    "for n in $(seq 3 64); do [ -e /proc/$$/fd/$n ] && echo \"leaked $n -> $(readlink /proc/$$/fd/$n)\"; done; echo end";

#[test]
fn cve_2024_21626_only_stdio_reaches_the_container() {
    let c = Container::running("esc_fds", |_| {});
    let run = sh_in_container("esc_fds_run", |_| {}, LEAK_CHECK);
    assert_eq!(run, "end\n");
    let exec = c.cmd(&["exec", &c.id, "sh", "-c", LEAK_CHECK]);
    assert_eq!(exec.ok(), "end\n");
}

/// Whether a runtime still lets through an fd trick runc 1.1.5 falls for.
fn runc_leaks_fds(what: &str) -> bool {
    if is_runc() {
        eprintln!(
            "NOTE: runc 1.1.5 is vulnerable to CVE-2024-21626 ({what}); only checked for brig"
        );
    }
    is_runc()
}

#[test]
fn cve_2024_21626_cwd_through_proc_self_fd_stays_inside() {
    if runc_leaks_fds("process.cwd /proc/self/fd/N") {
        return;
    }
    let c = Container::new("esc_cwd");
    let secret = host_secret(&c);
    let script = format!("cat {}{secret} 2>/dev/null; pwd", ups());
    for n in 3..=10 {
        c.edit(|cfg| {
            cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
            set_sh(cfg, &script);
        });
        let out = c.run(&[]);
        assert!(
            !out.stdout.contains("HOST-SECRET"),
            "cwd /proc/self/fd/{n} is on the host: {out}"
        );
        let _ = c.cmd(&["delete", "--force", &c.id]);
    }
}

#[test]
fn cve_2024_21626_program_through_proc_self_fd_is_not_run() {
    if runc_leaks_fds("process.args /proc/self/fd/N/...") {
        return;
    }
    let c = Container::new("esc_argv");
    let script = host_script(&c);
    for n in 3..=10 {
        c.edit(|cfg| set_args(cfg, &[&format!("/proc/self/fd/{n}/{}{script}", ups())]));
        let out = c.run(&[]);
        assert!(
            !out.stdout.contains("ESCAPED"),
            "a host program ran through fd {n}: {out}"
        );
        let _ = c.cmd(&["delete", "--force", &c.id]);
    }
}

#[test]
fn cve_2024_21626_exec_cwd_and_program_through_proc_self_fd() {
    if runc_leaks_fds("exec --cwd /proc/self/fd/N") {
        return;
    }
    let c = Container::running("esc_exec_fd", |_| {});
    let secret = host_secret(&c);
    let script = host_script(&c);
    for n in 3..=10 {
        let fd = format!("/proc/self/fd/{n}");
        let cat = format!("cat {}{secret} 2>/dev/null; pwd", ups());
        let out = c.cmd(&["exec", "--cwd", &fd, &c.id, "sh", "-c", &cat]);
        assert!(
            !out.stdout.contains("HOST-SECRET"),
            "exec --cwd {fd} is on the host: {out}"
        );
        let prog = format!("{fd}/{}{script}", ups());
        let out = c.cmd(&["exec", &c.id, &prog]);
        assert!(
            !out.stdout.contains("ESCAPED"),
            "exec ran a host program through fd {n}: {out}"
        );
    }
}

// ---- CVE-2021-30465: mount destinations swapped for symlinks ----

/// Host mounts at or under `dir`.
fn host_mounts_at(dir: &Path) -> Vec<String> {
    mounts_under(dir)
}

/// With the bundle on a shared mount and rshared propagation, every mount
/// the runtime makes shows on the host: none may land on `host_target`,
/// whether a destination is a static `/../..` symlink or a directory a
/// racing process keeps swapping with a symlink to the host.
#[test]
fn cve_2021_30465_mounts_never_land_outside_the_rootfs() {
    let c = Container::new("esc_mount_race");
    let _shared = HostMount::shared_bind(&c.dir);
    let source = c.host_dir("source");
    fs::write(source.join("marker-from-source"), "source\n").expect("write marker");
    let host_target = c.host_dir("host-target");
    fs::write(host_target.join("original"), "host\n").expect("write host file");
    let rootfs = c.rootfs();
    let mnt = rootfs.join("mnt");
    fs::create_dir_all(mnt.join("dst")).expect("mkdir dst");
    symlink(p(&host_target), mnt.join("lnk")).expect("symlink lnk");
    symlink(
        format!("/../../..{}", p(&host_target)),
        rootfs.join("dotdot"),
    )
    .expect("symlink");
    c.edit(|cfg| {
        cfg["linux"]["rootfsPropagation"] = json!("rshared");
        add_mount(cfg, bind(&source, "/dotdot", &["rbind"]));
        add_mount(cfg, bind(&source, "/mnt/dst", &["rbind"]));
        set_sh(cfg, "cat /dotdot/marker-from-source");
    });
    let check = |when: &str| {
        let landed = host_mounts_at(&host_target);
        assert!(landed.is_empty(), "{when}: mounted on the host: {landed:?}");
        assert!(
            !host_target.join("marker-from-source").exists(),
            "{when}: the source shows on the host target"
        );
    };
    // The static symlink resolves inside the rootfs.
    let out = c.run(&[]);
    assert_eq!(out.ok(), "source\n");
    check("static /../.. symlink");
    let _ = c.cmd(&["delete", "--force", &c.id]);
    // The racer swaps mnt/dst (a dir) and mnt/lnk (a symlink to the host).
    c.edit(|cfg| set_args(cfg, &["true"]));
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        let (a, b) = (
            std::ffi::CString::new(p(&mnt.join("dst"))).expect("path"),
            std::ffi::CString::new(p(&mnt.join("lnk"))).expect("path"),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 with two valid C strings.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                swaps += u64::from(r == 0);
            }
            swaps
        })
    };
    for i in 0..10 {
        let _ = c.run(&[]);
        let _ = c.cmd(&["delete", "--force", &c.id]);
        check(&format!("racing run {i}"));
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().expect("racer thread");
    assert!(swaps > 0, "the racer never swapped");
    check("after the race");
    assert_eq!(
        fs::read_to_string(host_target.join("original")).expect("host file"),
        "host\n"
    );
}

// ---- CVE-2025-31133 / CVE-2025-52565: masks, readonly paths, console ----

/// The rootfs ships its own /dev (no /dev tmpfs) whose null is a symlink
/// to a procfs file: masking must not bind that file over a masked path.
/// kernel.domainname is per uts namespace, so a hole harms nothing here.
#[test]
fn cve_2025_31133_planted_dev_null_never_masks_with_procfs() {
    let c = Container::new("esc_devnull");
    let rootfs = c.rootfs();
    fs::create_dir_all(rootfs.join("dev")).expect("mkdir dev");
    let _ = fs::remove_file(rootfs.join("dev/null"));
    symlink("/proc/sys/kernel/domainname", rootfs.join("dev/null")).expect("symlink null");
    fs::write(rootfs.join("etc/secret"), "secret\n").expect("write secret");
    c.edit(|cfg| {
        without_mount(cfg, "/dev");
        cfg["linux"]["maskedPaths"] = json!(["/etc/secret"]);
        cfg["linux"]["readonlyPaths"] = json!([]);
        set_sh(
            cfg,
            "stat -c '%F %t:%T' /etc/secret; echo pwned >/etc/secret 2>/dev/null; \
             cat /proc/sys/kernel/domainname",
        );
    });
    let out = c.run(&[]);
    if is_runc() {
        skipped(&format!("NOTE: runc 1.1.5 predates the CVE-2025-31133 fix (its masks bind the container's /dev/null); only checked for brig: {out}"));
        return;
    }
    if !out.success() {
        // Refusing is fine, if it says why.
        assert!(out.stderr.contains("/dev/null"), "{out}");
        return;
    }
    assert!(
        out.stdout.starts_with("character special file 1:3\n"),
        "{out}"
    );
    assert!(!out.stdout.contains("pwned"), "the mask was procfs: {out}");
}

/// maskedPaths and readonlyPaths that are symlinks out of the rootfs are
/// applied where they resolve inside it, never on the host.
#[test]
fn masked_and_readonly_symlinks_resolve_inside_the_rootfs() {
    let c = Container::new("esc_mask_link");
    let _shared = HostMount::shared_bind(&c.dir);
    let host_file = c.host_dir("host-only").join("file");
    fs::write(&host_file, "host file\n").expect("write host file");
    let host_dir = c.host_dir("host-ro");
    let rootfs = c.rootfs();
    // The same paths inside the rootfs, where the links must resolve.
    let inside_file = rootfs.join(p(&host_file).trim_start_matches('/'));
    let inside_dir = rootfs.join(p(&host_dir).trim_start_matches('/'));
    fs::create_dir_all(inside_file.parent().expect("parent")).expect("mkdir inside");
    fs::write(&inside_file, "inside file\n").expect("write inside file");
    fs::create_dir_all(&inside_dir).expect("mkdir inside dir");
    symlink(
        format!("/../../..{}", p(&host_file)),
        rootfs.join("etc/maskme"),
    )
    .expect("symlink");
    symlink(p(&host_dir), rootfs.join("etc/roview")).expect("symlink");
    c.edit(|cfg| {
        writable_root(cfg);
        cfg["linux"]["rootfsPropagation"] = json!("rshared");
        cfg["linux"]["maskedPaths"] = json!(["/etc/maskme"]);
        cfg["linux"]["readonlyPaths"] = json!(["/etc/roview"]);
        set_sh(
            cfg,
            "echo \"[$(cat /etc/maskme)]\"; touch /etc/roview/new 2>/dev/null || echo ro-refused",
        );
    });
    assert_eq!(c.run(&[]).ok(), "[]\nro-refused\n");
    assert_eq!(
        fs::read_to_string(&host_file).expect("host file"),
        "host file\n"
    );
    for host in [&host_file, &host_dir] {
        let landed = host_mounts_at(host);
        assert!(landed.is_empty(), "masked on the host: {landed:?}");
    }
}

/// terminal:true binds the pty on /dev/console; a /dev/console symlink in
/// a rootfs that ships its own /dev must not redirect that bind.
#[test]
fn cve_2025_52565_dev_console_symlink_cannot_redirect_the_bind() {
    if is_runc() {
        skipped("NOTE: runc 1.1.5 follows a /dev/console symlink (CVE-2025-52565); only checked for brig");
        return;
    }
    let c = Container::new("esc_console");
    let rootfs = c.rootfs();
    fs::create_dir_all(rootfs.join("dev")).expect("mkdir dev");
    fs::write(rootfs.join("etc/target"), "target\n").expect("write target");
    let _ = fs::remove_file(rootfs.join("dev/console"));
    symlink("/etc/target", rootfs.join("dev/console")).expect("symlink console");
    c.edit(|cfg| {
        without_mount(cfg, "/dev");
        cfg["process"]["terminal"] = json!(true);
        set_sh(
            cfg,
            "stat -c %F /dev/console; grep -c ' /etc/target ' /proc/self/mountinfo; cat /etc/target",
        );
    });
    let line = format!(
        "{} --root {} run --bundle {} {}; echo \"exit=$?\"",
        runtime(),
        p(&c.root),
        p(&c.bundle),
        c.id
    );
    let out = exec(Command::new("script").args(["-qec", &line, "/dev/null"]));
    let text = out.ok().replace(['\r', '\0'], "").replace("^@", "");
    assert!(
        text.contains("character special file\n0\ntarget\n") && text.contains("exit=0"),
        "{text}"
    );
}

// ---- procfs writes during setup go to the real procfs ----

/// A rootfs whose /proc is a symlink to a fake tree: the proc mount and the
/// sysctl land on the real procfs of the container's net namespace (or the
/// runtime refuses), and the fake file is never written.
#[test]
fn sysctl_goes_to_the_real_procfs_through_a_symlinked_proc() {
    // The default spec has a network namespace, where the sysctl is safe.
    let c = Container::new("esc_fakeproc");
    let rootfs = c.rootfs();
    let fake = rootfs.join("fakeproc/sys/net/ipv4");
    fs::create_dir_all(&fake).expect("mkdir fake");
    fs::write(fake.join("ip_forward"), "fake\n").expect("write fake");
    let _ = fs::remove_dir(rootfs.join("proc"));
    symlink("/fakeproc", rootfs.join("proc")).expect("symlink proc");
    c.edit(|cfg| {
        cfg["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        set_args(cfg, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    });
    let out = c.run(&[]);
    assert_eq!(
        fs::read_to_string(fake.join("ip_forward")).expect("fake file"),
        "fake\n",
        "{out}"
    );
    // Refusing a /proc that is a symlink (runc, and brig since issue 16)
    // is safe too, and must say where.
    if out.success() {
        assert_eq!(out.ok(), "1\n");
    } else if !is_runc() {
        assert!(out.err().contains("/proc"), "{out}");
    }
}

/// No proc mount at all and a fake /proc in the rootfs: the sysctl must
/// fail, not be written into the fake.
#[test]
fn sysctl_refuses_a_fake_proc() {
    let c = Container::new("esc_noproc");
    let fake = c.rootfs().join("proc/sys/net/ipv4");
    fs::create_dir_all(&fake).expect("mkdir fake");
    fs::write(fake.join("ip_forward"), "fake\n").expect("write fake");
    c.edit(|cfg| {
        without_mount(cfg, "/proc");
        cfg["linux"]["maskedPaths"] = json!([]);
        cfg["linux"]["readonlyPaths"] = json!([]);
        cfg["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        set_args(cfg, &["true"]);
    });
    let out = c.run(&[]);
    let written = fs::read_to_string(fake.join("ip_forward")).expect("fake file");
    if is_runc() && written != "fake\n" {
        skipped("NOTE: runc 1.1.5 writes sysctls into a fake /proc (CVE-2025-52881 class); only checked for brig");
        return;
    }
    assert_eq!(written, "fake\n", "the sysctl went into the rootfs: {out}");
    assert!(!out.success(), "a sysctl without procfs succeeded: {out}");
}

// ---- issue 15: mount destinations through a symlink onto procfs/sysfs ----

/// A mount at `/evil`, where the rootfs makes `/evil` a symlink to
/// `target`: it would land on the container's procfs or sysfs, under paths
/// that readonlyPaths and maskedPaths think they protect. The runtime must
/// refuse it, say which destination and why, and leave nothing behind.
fn symlinked_destination_is_refused(
    name: &str,
    target: &str,
    fs_name: &str,
    mount: impl FnOnce(&Container) -> Value,
) {
    let c = Container::new(name);
    symlink(target, c.rootfs().join("evil")).expect("symlink evil");
    let mount = mount(&c);
    c.edit(|cfg| {
        add_mount(cfg, mount);
        set_sh(cfg, &format!("stat -f -c %T {target}"));
    });
    let out = c.run(&[]);
    if is_runc() {
        if out.success() {
            eprintln!(
                "NOTE: runc 1.1.5 mounts through /evil onto {target} (stat -f: {}); only checked for brig",
                out.stdout.trim()
            );
        }
        return;
    }
    let line = out.err();
    assert!(
        line.contains("/evil") && line.contains(fs_name) && line.contains("symlink"),
        "the error should name /evil, {fs_name} and the symlink: {out}"
    );
    c.assert_gone(None);
}

fn tmpfs_at(destination: &str) -> Value {
    json!({"destination": destination, "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "nodev", "mode=755"]})
}

#[test]
fn mount_destination_through_a_symlink_onto_procfs_is_refused() {
    symlinked_destination_is_refused("esc_dest_proc", "/proc/sys/kernel", "procfs", |_| {
        tmpfs_at("/evil")
    });
}

#[test]
fn mount_destination_through_a_symlink_onto_sysfs_is_refused() {
    symlinked_destination_is_refused("esc_dest_sys", "/sys/kernel", "sysfs", |_| {
        tmpfs_at("/evil")
    });
}

/// A file bind takes another path to its destination (created as a file,
/// not a directory): it is refused all the same.
#[test]
fn mount_destination_of_a_file_bind_through_a_symlink_onto_procfs_is_refused() {
    symlinked_destination_is_refused(
        "esc_dest_file",
        "/proc/sys/kernel/domainname",
        "procfs",
        |c| {
            let source = c.host_dir("source").join("file");
            fs::write(&source, "from the host\n").expect("write bind source");
            bind(&source, "/evil", &["bind"])
        },
    );
}

/// Destinations the spec names under /proc and /sys itself still work: a
/// tmpfs over a procfs and a sysfs directory, and an lxcfs-style bind over
/// /proc/cpuinfo (and the default cgroup mount at /sys/fs/cgroup).
#[test]
fn mount_destinations_named_under_proc_and_sys_still_work() {
    let c = Container::new("esc_dest_literal");
    let cpuinfo = c.host_dir("lxcfs").join("cpuinfo");
    fs::write(&cpuinfo, "processor : fake\n").expect("write fake cpuinfo");
    c.edit(|cfg| {
        // Unmasked, so that the container sees the tmpfs itself.
        cfg["linux"]["maskedPaths"] = json!([]);
        add_mount(cfg, tmpfs_at("/proc/acpi"));
        add_mount(cfg, tmpfs_at("/sys/firmware"));
        add_mount(cfg, bind(&cpuinfo, "/proc/cpuinfo", &["bind", "ro"]));
        set_sh(
            cfg,
            "stat -f -c %T /proc/acpi /sys/firmware /sys/fs/cgroup; cat /proc/cpuinfo",
        );
    });
    let out = c.run(&[]);
    let cgroupfs = if host_mounts()
        .iter()
        .any(|m| m.target == "/sys/fs/cgroup" && m.fstype == "cgroup2")
    {
        "cgroup2fs"
    } else {
        "tmpfs"
    };
    assert_eq!(
        out.ok(),
        format!("tmpfs\ntmpfs\n{cgroupfs}\nprocessor : fake\n"),
        "{out}"
    );
}

/// With --no-pivot the container is only chrooted: the host's mounts stay
/// in its mount namespace. The kernel lets a user namespace mount a new
/// procfs only where a fully visible one is in the mount namespace, and
/// the host's whole /proc would count: a nested user namespace could then
/// mount a procfs without the container's masks. The attempt, made from
/// the container's mount and pid namespaces, must be refused.
#[test]
fn no_pivot_leaves_no_host_procfs_for_a_nested_user_namespace() {
    let c = Container::new("esc_nopivot");
    c.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    c.try_create(&["--no-pivot"]).ok();
    let pid = c.pid().to_string();
    let out = exec(Command::new("nsenter").args([
        "-t",
        &pid,
        "-m",
        "-p",
        "/bin/busybox",
        "unshare",
        "-U",
        "-r",
        "-p",
        "-f",
        "-m",
        "/bin/sh",
        "-c",
        "mount -t proc proc /tmp && echo MOUNTED; echo done",
    ]));
    let text = out.ok();
    assert!(text.ends_with("done\n"), "{out}");
    assert!(
        !text.contains("MOUNTED"),
        "a nested user namespace mounted a procfs: the host's /proc is still in the --no-pivot container's mount namespace\n{out}"
    );
}

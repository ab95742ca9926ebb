//! Faults: a `create` SIGKILLed at each of its steps, creates racing for one
//! id, verbs racing on one container, a full and a read-only `--root`. After
//! each, `delete --force` (where a container may be left) must leave no
//! process, mount, cgroup or state behind, and the id must be usable again.
//!
//! The kills use brig's test-only `BRIG_FAULT=POINT` (src/fault.rs), so the
//! fault tests are skipped for another runtime; the races and full disks
//! are not brig-specific.

mod common;
use common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Host pids whose cgroup (any hierarchy) is the container's `/<id>`.
fn pids_in_cgroup_of(id: &str) -> Vec<i32> {
    let tail = format!("/{id}");
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cg) = fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        // "N:controllers:/path": the path is the container's or under it.
        if cg.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p == tail || p.starts_with(&format!("{tail}/")))
        }) && alive(pid)
        {
            found.push(pid);
        }
    }
    found
}

/// Directories named `id` in any cgroup hierarchy (v1 controllers and the
/// unified one), down to three levels.
fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let subdirs = fs::read_dir(dir).into_iter().flatten().flatten();
        for e in subdirs.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            if e.file_name() == id {
                found.push(e.path());
            } else if depth > 1 {
                walk(&e.path(), id, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    for m in host_mounts()
        .iter()
        .filter(|m| m.fstype.starts_with("cgroup"))
    {
        walk(Path::new(&m.target), id, 3, &mut found);
    }
    found
}

/// Entries of a state root (none when it does not exist).
fn entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Nothing of container `id` anywhere: no process in its cgroup, `pid` (if
/// known) gone, no cgroup directory, no host mount under `bundle`, and `root`
/// holding nothing but `allowed`.
#[track_caller]
fn assert_no_trace(id: &str, pid: Option<i32>, bundle: &Path, root: &Path, allowed: &[&str]) {
    if let Some(pid) = pid {
        wait_for(&format!("process {pid} of {id} to go"), || !alive(pid));
    }
    let procs = pids_in_cgroup_of(id);
    assert!(
        procs.is_empty(),
        "processes left in {id}'s cgroup: {procs:?}"
    );
    let cgroups = cgroup_dirs_of(id);
    assert!(cgroups.is_empty(), "cgroups left for {id}: {cgroups:?}");
    let mounts = mounts_under(bundle);
    assert!(
        mounts.is_empty(),
        "mounts left under {bundle:?}: {mounts:?}"
    );
    let left: Vec<String> = entries(root)
        .into_iter()
        .filter(|e| !allowed.contains(&e.as_str()))
        .collect();
    assert!(left.is_empty(), "left in the state root {root:?}: {left:?}");
}

/// The container's status as `list --format json` shows it, if listed.
fn listed_status(c: &Container) -> Option<String> {
    let out = c.cmd(&["list", "--format", "json"]);
    let v: Value = serde_json::from_str(out.ok()).unwrap_or(Value::Null);
    v.as_array()?
        .iter()
        .find(|e| e["id"] == json!(c.id))
        .and_then(|e| e["status"].as_str().map(str::to_string))
}

/// A command's output holds at most one error line and no panic, and it
/// exited 0 or 1.
#[track_caller]
fn assert_orderly(out: &Output) {
    assert!(
        matches!(out.code, Some(0 | 1)),
        "exit code not 0 or 1: {out}"
    );
    assert!(!out.stderr.contains("panicked"), "a panic: {out}");
    // runc 1.1.5 logs "Failed to remove cgroup (will retry)" warnings
    // while it waits for a dying container; only its errors count.
    let lines = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(is_runc() && l.contains("level=warning")))
        .count();
    assert!(lines <= 1, "more than one line on stderr: {out}");
}

#[test]
fn create_killed_at_every_step_leaves_nothing_delete_cannot_remove() {
    if is_runc() {
        skipped("NOTE: BRIG_FAULT is brig's; skipped for runc");
        return;
    }
    let c = Container::new("fault");
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "60"]);
        // A runtime hook, so that create passes the hook points too.
        cfg["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}]});
    });
    let pid_file = c.dir.join("init.pid");
    for point in brig::fault::POINTS {
        let _ = fs::remove_file(&pid_file);
        let out = exec(
            c.command(&[
                "create",
                "--bundle",
                p(&c.bundle),
                "--pid-file",
                p(&pid_file),
                &c.id,
            ])
            .env("BRIG_FAULT", point),
        );
        assert_eq!(out.code, None, "create was not killed at {point}: {out}");
        // What the dead create recorded, to check that process is gone.
        let recorded = fs::read_to_string(c.root.join(&c.id).join("state.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["pid"].as_i64())
            .filter(|p| *p > 0)
            .map(|p| p as i32);
        // Init dies with its parent until its state is saved; the kernel
        // delivers that SIGKILL a moment after the create is reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let status = listed_status(&c);
            if status.as_deref() != Some("created") {
                assert!(
                    matches!(status.as_deref(), None | Some("creating" | "stopped")),
                    "killed at {point}: listed as {status:?}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "killed at {point}: the container stays listed as created"
            );
            thread::sleep(Duration::from_millis(20));
        }
        c.cmd(&["delete", "--force", &c.id]).ok();
        assert_no_trace(&c.id, recorded, &c.bundle, &c.root, &[]);
        // The id is free again: a create works and is deleted cleanly.
        c.create();
        assert_eq!(c.status(), "created", "recreated after {point}");
        let pid = c.pid();
        c.delete();
        c.assert_gone(Some(pid));
        assert_no_trace(&c.id, Some(pid), &c.bundle, &c.root, &[]);
    }
}

#[test]
fn two_creates_of_one_id_exactly_one_wins() {
    if is_runc() {
        // Seen with runc 1.1.5: both racers can fail, and the loser prints
        // several error lines (a busy unlinkat, cgroup removal retries).
        skipped("NOTE: runc 1.1.5 does not hold this under a create race; brig only");
        return;
    }
    let c = Arc::new(Container::new("dup_race"));
    c.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    for round in 0..15 {
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (c, barrier) = (Arc::clone(&c), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    c.try_create(&[])
                })
            })
            .collect();
        let outs: Vec<Output> = racers
            .into_iter()
            .map(|t| t.join().expect("racer thread"))
            .collect();
        let won: Vec<&Output> = outs.iter().filter(|o| o.success()).collect();
        let shown: Vec<String> = outs.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: {} creates won: {shown:#?}",
            won.len()
        );
        let lost = outs.iter().find(|o| !o.success()).expect("a loser");
        let line = lost.err();
        assert!(
            line.contains("already exists"),
            "round {round}: the loser should say the id exists: {line}"
        );
        assert_eq!(c.status(), "created", "round {round}");
        let pid = c.pid();
        c.delete();
        assert_no_trace(&c.id, Some(pid), &c.bundle, &c.root, &[]);
    }
}

#[test]
fn kill_delete_and_state_racing_on_one_container() {
    let c = Arc::new(Container::new("verb_race"));
    c.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    let verbs: &[&[&str]] = &[
        &["kill", "ID", "KILL"],
        &["kill", "ID"],
        &["kill", "--all", "ID", "TERM"],
        &["delete", "--force", "ID"],
        &["delete", "ID"],
        &["state", "ID"],
        &["state", "ID"],
        &["list", "-q"],
    ];
    for round in 0..8 {
        c.create();
        if round % 2 == 1 {
            c.start();
        }
        let pid = c.pid();
        let barrier = Arc::new(Barrier::new(verbs.len()));
        let racers: Vec<_> = verbs
            .iter()
            .map(|v| {
                let (c, barrier) = (Arc::clone(&c), Arc::clone(&barrier));
                let args: Vec<String> = v
                    .iter()
                    .map(|a| {
                        if *a == "ID" {
                            c.id.clone()
                        } else {
                            a.to_string()
                        }
                    })
                    .collect();
                thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    barrier.wait();
                    c.cmd(&args)
                })
            })
            .collect();
        for t in racers {
            assert_orderly(&t.join().expect("racer thread"));
        }
        // One forced delete raced in; whatever it found, it is done now.
        c.cmd(&["delete", "--force", &c.id]).ok();
        c.assert_gone(Some(pid));
        assert_no_trace(&c.id, Some(pid), &c.bundle, &c.root, &[]);
    }
}

/// A mount the test makes, detached on drop (with `data` options, which
/// the harness's HostMount does not take).
struct Mounted(PathBuf);

impl Mounted {
    fn new(
        src: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: &str,
    ) -> Self {
        let c = |b: &[u8]| CString::new(b).expect("no NUL");
        let (s, t, d) = (
            c(src.as_bytes()),
            c(target.as_os_str().as_bytes()),
            c(data.as_bytes()),
        );
        let fstype = fstype.map(|f| c(f.as_bytes()));
        let fs_ptr = fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr());
        // SAFETY: valid C strings, or null for the filesystem type.
        let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), fs_ptr, flags, d.as_ptr().cast()) };
        assert_eq!(
            rc,
            0,
            "mount on {target:?}: {}",
            std::io::Error::last_os_error()
        );
        Mounted(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let t = CString::new(self.0.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Fills the filesystem of `dir` until only `leave` bytes are free.
fn fill(dir: &Path, leave: u64) {
    let st = nix::sys::statvfs::statvfs(dir).expect("statvfs");
    let free = st.blocks_available() as u64 * st.fragment_size() as u64;
    let size = free.saturating_sub(leave);
    fs::write(dir.join("filler"), vec![b'x'; size as usize]).expect("write filler");
}

/// `--root` on a tmpfs with `leave` bytes free: create fails with one line,
/// nothing of the container stays behind, and once there is room again
/// the same id works.
fn create_on_a_full_root(name: &str, leave: u64) {
    let c = Container::new(name);
    let root = c.host_dir("tiny");
    let mnt = Mounted::new("tmpfs", &root, Some("tmpfs"), 0, "size=64k,mode=0711");
    fill(&root, leave);
    let cmd = |args: &[&str]| {
        let mut cmd = std::process::Command::new(runtime());
        cmd.arg("--root").arg(&root).args(args).current_dir(&c.dir);
        exec(&mut cmd)
    };
    let out = cmd(&["create", "--bundle", p(&c.bundle), &c.id]);
    let line = out.err().to_string();
    eprintln!("{name}: {line}");
    if is_runc() && !(line.contains("No space left") || line.contains("ENOSPC")) {
        // runc 1.1.5 says "unable to store init state: %!w(<nil>)".
        eprintln!("NOTE: runc does not name the full disk: {line}");
    } else {
        assert!(
            line.contains("No space left") || line.contains("ENOSPC"),
            "the error should say the disk is full: {line}"
        );
    }
    assert!(!cmd(&["list", "-q"]).ok().contains(&c.id));
    assert_no_trace(&c.id, None, &c.bundle, &root, &["filler"]);
    // Room again: the same id works.
    fs::remove_file(root.join("filler")).expect("remove filler");
    cmd(&["create", "--bundle", p(&c.bundle), &c.id]).ok();
    cmd(&["delete", "--force", &c.id]).ok();
    assert_no_trace(&c.id, None, &c.bundle, &root, &[]);
    drop(mnt);
}

#[test]
fn create_on_a_full_root_fails_cleanly() {
    create_on_a_full_root("full_root", 0);
}

/// The disk fills up after init is running: saving init's pid fails
/// (brig's test-only `BRIG_FAULT=enospc:save-state`, where filling a tmpfs
/// to the byte was flaky). Init, its cgroups and the state must all go.
#[test]
fn create_failing_to_save_init_state_leaves_nothing() {
    if is_runc() {
        skipped("NOTE: BRIG_FAULT is brig's; skipped for runc");
        return;
    }
    let c = Container::new("enospc_save");
    c.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    let out = exec(
        c.command(&["create", "--bundle", p(&c.bundle), &c.id])
            .env("BRIG_FAULT", "enospc:save-state"),
    );
    assert_orderly(&out);
    let line = out.err();
    assert!(
        line.contains("No space left") && line.contains("state.json"),
        "the error should say which file the full disk stopped: {line}"
    );
    assert!(!c.cmd(&["list", "-q"]).ok().contains(&c.id));
    assert_no_trace(&c.id, None, &c.bundle, &c.root, &[]);
    // The same id works afterwards.
    c.cmd(&["create", "--bundle", p(&c.bundle), &c.id]).ok();
    c.cmd(&["delete", "--force", &c.id]).ok();
}

#[test]
fn create_on_a_read_only_root_fails_cleanly() {
    let c = Container::new("ro_root");
    let root = c.host_dir("ro");
    let bind = Mounted::new(p(&root), &root, None, libc::MS_BIND, "");
    let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    // A remount changes the bind's flags; dropping `bind` undoes both.
    std::mem::forget(Mounted::new("none", &root, None, ro, ""));
    let out = exec(
        std::process::Command::new(runtime())
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle", p(&c.bundle), &c.id])
            .current_dir(&c.dir),
    );
    let line = out.err();
    if is_runc() && !line.contains("Read-only file system") {
        // runc 1.1.5 says "read-only file system", lowercase.
        eprintln!("NOTE: runc words the read-only root its own way: {line}");
    } else {
        assert!(
            line.contains("Read-only file system"),
            "the error should say the root is read-only: {line}"
        );
    }
    assert_no_trace(&c.id, None, &c.bundle, &root, &[]);
    drop(bind);
}

//! Real limits on real containers: memory (OOM kill and the event that
//! reports it), pids, devices, live updates, pause/resume, ps.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The container's directory in the v1 hierarchy (or cgroup2 tree) that
/// holds `controller`, read from /proc/PID/cgroup rather than assumed.
fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for m in host_mounts()
        .iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
    {
        let ctrls_of_mount = m.options.split(',').any(|o| o == controller);
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
            let v1 =
                m.fstype == "cgroup" && ctrls_of_mount && ctrls.split(',').any(|c| c == controller);
            let v2 = m.fstype == "cgroup2" && ctrls.is_empty() && m.target == "/sys/fs/cgroup";
            if v1 || v2 {
                return PathBuf::from(&m.target).join(path.trim_start_matches('/'));
            }
        }
    }
    panic!("no {controller} cgroup for {pid}:\n{text}");
}

fn memsw_supported() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
}

#[test]
fn memory_limit_oom_kills_and_events_report_it() {
    let c = Container::new("cg_oom");
    c.edit(|cfg| {
        let mut mem = json!({"limit": 16 * 1024 * 1024});
        if memsw_supported() {
            // No swap to escape into: memory+swap equals memory.
            mem["swap"] = json!(16 * 1024 * 1024);
        }
        cfg["linux"]["resources"]["memory"] = mem;
        // Wait for a go file, so `events` watches before the allocation.
        set_sh(cfg, "while [ ! -e /tmp/go ]; do sleep 0.05; done; x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived");
        writable_root(cfg);
    });
    c.create();
    c.start();
    let mut events = c
        .command(&["events", "--interval", "1s", &c.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn events");
    std::thread::sleep(Duration::from_millis(300));
    fs::write(c.rootfs().join("tmp/go"), "").expect("write go file");
    c.wait_status("stopped");
    // brig's events exits once the container has stopped; runc 1.1's keeps
    // streaming, so give it a moment to report and then stop it.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while events.try_wait().expect("poll events").is_none() && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = events.kill();
    let out = events.wait_with_output().expect("events output");
    let text = String::from_utf8_lossy(&out.stdout);
    let types: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["type"].as_str().map(String::from))
        .collect();
    assert!(types.iter().any(|t| t == "oom"), "no oom event in:\n{text}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let c = Container::running("cg_pids", |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 8});
        // The loop runs in a subshell: a failed fork may end it, not init,
        // which then execs (no fork needed) into its last sleep.
        let spawn = "sleep 30 & ".repeat(30);
        set_sh(cfg, &format!("({spawn}) 2>/dev/null; exec sleep 30"));
    });
    let dir = cgroup_dir(c.pid(), "pids");
    assert_eq!(
        fs::read_to_string(dir.join("pids.max"))
            .expect("pids.max")
            .trim(),
        "8"
    );
    wait_for("the fork loop to finish", || {
        fs::read_to_string(dir.join("pids.events")).is_ok_and(|e| !e.contains("max 0"))
    });
    let current: u32 = fs::read_to_string(dir.join("pids.current"))
        .expect("pids.current")
        .trim()
        .parse()
        .expect("a number");
    assert!(current <= 8, "{current} processes despite pids.limit 8");
}

#[test]
fn a_denied_device_cannot_be_opened() {
    // Major 42 has no driver: opening it fails with ENXIO where the cgroup
    // allows it, and with EPERM where the cgroup denies it.
    let run_with = |name: &str, allow_42: bool| {
        let c = Container::new(name);
        std::process::Command::new("mknod")
            .arg(c.rootfs().join("dev42"))
            .args(["c", "42", "0"])
            .status()
            .expect("mknod");
        c.edit(|cfg| {
            let mut rules = vec![json!({"allow": false, "access": "rwm"})];
            if allow_42 {
                rules.push(
                    json!({"allow": true, "type": "c", "major": 42, "minor": 0, "access": "rw"}),
                );
            }
            cfg["linux"]["resources"]["devices"] = json!(rules);
            set_sh(
                cfg,
                "cat /dev42 2>&1; echo null-ok > /dev/null && echo null-ok",
            );
        });
        c.run(&[]).ok().to_string()
    };
    let denied = run_with("cg_dev_deny", false);
    assert!(denied.contains("Operation not permitted"), "{denied}");
    let allowed = run_with("cg_dev_allow", true);
    assert!(allowed.contains("No such device"), "{allowed}");
    // The default devices stay usable under a deny-all rule.
    assert!(denied.contains("null-ok"), "{denied}");
}

/// A limit that passes validation but that the kernel refuses (a cpu this
/// host does not have) fails create, naming the file and the value, and
/// leaves nothing. brig applies limits after cloning init, while init
/// builds its rootfs, so this is also a failure with init alive: it must
/// take init (which was born in the container's cgroup, so the cgroup could
/// not be removed with init still in it), the cgroups and the state along.
#[test]
fn a_limit_the_kernel_refuses_fails_create_and_leaves_nothing() {
    let c = Container::new("cg_bad_cpus");
    c.edit(|cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"cpus": "1000"});
    });
    let out = c.try_create(&[]);
    assert!(!out.success(), "create with cpus 1000 succeeded: {out}");
    if !is_runc() {
        assert!(
            out.err().contains("cpuset.cpus") && out.err().contains("1000"),
            "the error should name the file and the value: {out}"
        );
    }
    c.assert_gone(None);
}

#[test]
fn update_changes_live_limits() {
    let c = Container::running("cg_update", |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 100});
    });
    let pids_dir = cgroup_dir(c.pid(), "pids");
    let mem_dir = cgroup_dir(c.pid(), "memory");
    c.cmd(&["update", "--pids-limit", "42", "--memory", "64m", &c.id])
        .ok();
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max"))
            .expect("pids.max")
            .trim(),
        "42"
    );
    let limit = fs::read_to_string(mem_dir.join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(mem_dir.join("memory.max")))
        .expect("memory limit file");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    // Through --resources on stdin, as containerd does it.
    let mut cmd = c.command(&["update", "--resources", "-", &c.id]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn update");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"pids":{"limit":77}}"#,
    )
    .expect("write resources");
    drop(child.stdin.take());
    assert!(child.wait().expect("update").success());
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max"))
            .expect("pids.max")
            .trim(),
        "77"
    );
}

#[test]
fn bad_update_values_are_refused_and_change_nothing() {
    let c = Container::running("cg_bad_update", |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 100});
    });
    let pids_dir = cgroup_dir(c.pid(), "pids");
    let out = c.cmd(&["update", "--pids-limit", "50", "--cpu-period", "5", &c.id]);
    if !is_runc() {
        assert!(out.err().contains("cpu.period"), "{out}");
    } else {
        assert!(!out.success(), "{out}");
    }
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max"))
            .expect("pids.max")
            .trim(),
        "100"
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let c = Container::running("cg_pause", |cfg| {
        writable_root(cfg);
        set_sh(
            cfg,
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
        );
    });
    let count = || fs::read_to_string(c.rootfs().join("tmp/count")).unwrap_or_default();
    wait_for("the counter to start", || !count().is_empty());
    c.cmd(&["pause", &c.id]).ok();
    assert_eq!(c.status(), "paused");
    let frozen = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), frozen, "the counter moved while paused");
    c.cmd(&["resume", &c.id]).ok();
    assert_eq!(c.status(), "running");
    wait_for("the counter to move again", || count() != frozen);
}

#[test]
fn ps_lists_exactly_the_containers_processes() {
    let c = Container::running("cg_ps", |cfg| {
        set_sh(cfg, "sleep 60 & sleep 60 & wait");
    });
    let dir = cgroup_dir(c.pid(), "pids");
    wait_for("three processes", || {
        fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.lines().count() == 3)
    });
    let out = c.cmd(&["ps", "--format", "json", &c.id]);
    let mut pids: Vec<i64> = serde_json::from_str(out.ok()).expect("ps json");
    pids.sort_unstable();
    let mut want: Vec<i64> = fs::read_to_string(dir.join("cgroup.procs"))
        .expect("cgroup.procs")
        .lines()
        .map(|l| l.parse().expect("pid"))
        .collect();
    want.sort_unstable();
    assert_eq!(pids, want);
    assert!(pids.contains(&i64::from(c.pid())));
}

#[test]
fn kill_all_reaches_every_process() {
    let c = Container::running("cg_kill_all", |cfg| {
        // pid 1 ignores TERM by default; its children do not.
        set_sh(cfg, "trap '' TERM; sleep 60 & sleep 60 & wait; sleep 60");
    });
    let dir = cgroup_dir(c.pid(), "pids");
    wait_for("three processes", || {
        fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.lines().count() == 3)
    });
    c.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    c.wait_status("stopped");
    c.delete();
    c.assert_gone(None);
}

#[test]
fn cgroups_path_may_not_escape() {
    if is_runc() {
        // runc 1.1 cleans "/../../escape" lexically to "/escape" and goes on;
        // brig refuses a path that tries to climb out.
        skipped(
            "NOTE: runc clamps .. at the cgroup root instead of refusing; only checked for brig",
        );
        return;
    }
    let c = Container::new("cg_escape");
    c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!("/../../escape"));
    let out = c.try_create(&[]);
    assert!(!out.success(), "{out}");
    if !is_runc() {
        assert!(out.err().contains("cgroupsPath"), "{out}");
    }
    c.assert_gone(None);
}

/// brig places init and exec'd processes without writing their pids (see
/// src/cgroups/placement.rs): born in the cgroup2 directory, moving
/// themselves into each v1 hierarchy. Either way every hierarchy the host
/// has must list them, in the container's cgroup, and a cgroup namespace
/// made afterwards must be rooted there.
#[test]
fn init_and_exec_are_in_the_container_cgroup_of_every_hierarchy() {
    let c = Container::running("cg_every", |cfg| {
        add_namespace(cfg, json!({"type": "cgroup"}));
    });
    let host = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup")
    };
    let ours = host(std::process::id() as i32);
    let init = host(c.pid());
    assert_eq!(
        init.lines().count(),
        ours.lines().count(),
        "init is not in every hierarchy:\n{init}"
    );
    let path_of = |line: &str| line.splitn(3, ':').nth(2).unwrap_or_default().to_string();
    let want = path_of(init.lines().next().expect("a line"));
    assert!(
        want.ends_with(&c.id),
        "init's cgroup {want} is not the container's"
    );
    for line in init.lines() {
        assert_eq!(path_of(line), want, "init: {line}\n{init}");
    }
    // From inside, with the cgroup namespace: every hierarchy at its root;
    // from the host: the exec'd process in the same cgroups as init.
    let out = c.cmd(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "cat /proc/self/cgroup; sleep 30 >/dev/null 2>&1 & echo $!",
    ]);
    let text = out.ok();
    let mut lines: Vec<&str> = text.lines().collect();
    let bg: i32 = lines.pop().and_then(|l| l.parse().ok()).expect("a pid");
    for line in &lines {
        assert!(
            line.ends_with(":/"),
            "exec'd process outside the namespace root: {line}\n{text}"
        );
    }
    let is_bg = |p: &i32| {
        fs::read_to_string(format!("/proc/{p}/status"))
            .is_ok_and(|s| s.lines().any(|l| l == format!("NSpid:\t{p}\t{bg}")))
    };
    let host_pid = fs::read_to_string(cgroup_dir(c.pid(), "pids").join("cgroup.procs"))
        .expect("cgroup.procs")
        .lines()
        .filter_map(|l| l.parse::<i32>().ok())
        .find(is_bg)
        .expect("the exec'd sleep, in the container's pids cgroup");
    assert_eq!(
        host(host_pid),
        init,
        "the exec'd process's cgroups differ from init's"
    );
}

/// An app container that joins a pod's namespaces by path (every
/// Kubernetes app container; `docker run --network container:X`): its
/// process must be in all its own cgroups before it runs, however the
/// namespaces are made. Seen from inside (`/proc/self/cgroup`) and by a
/// memory limit that must OOM-kill it.
fn joined_app_is_confined(name: &str, joined: &[&str], cgroupns: bool) {
    let userns = joined.contains(&"user");
    let pod = Container::new(&format!("{name}_pod"));
    let app = Container::new(name);
    if userns {
        in_user_namespace(&pod);
        chown_to_mapped_root(&app);
    }
    pod.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    pod.create();
    pod.start();
    let pod_pid = pod.pid();
    app.edit(|cfg| {
        let ns = cfg["linux"]["namespaces"].as_array_mut().expect("namespaces");
        for kind in joined {
            let file = match *kind {
                "network" => "net",
                "mount" => "mnt",
                k => k,
            };
            ns.retain(|n| n["type"] != *kind);
            ns.push(json!({"type": kind, "path": format!("/proc/{pod_pid}/ns/{file}")}));
        }
        if cgroupns {
            ns.push(json!({"type": "cgroup"}));
        }
        if userns {
            // Repeated from the namespace joined, as containerd's CRI
            // does (runc 1.1 insists on them).
            cfg["linux"]["uidMappings"] = userns_map();
            cfg["linux"]["gidMappings"] = userns_map();
        }
        let mut mem = json!({"limit": 16 * 1024 * 1024});
        if memsw_supported() {
            mem["swap"] = json!(16 * 1024 * 1024);
        }
        cfg["linux"]["resources"]["memory"] = mem;
        writable_root(cfg);
        set_sh(
            cfg,
            "cat /proc/self/cgroup > /cgroup.txt; x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
        );
    });
    let out = app.run(&[]);
    let seen = fs::read_to_string(app.rootfs().join("cgroup.txt"))
        .unwrap_or_else(|e| panic!("the app wrote no /cgroup.txt ({e}): {out}"));
    for line in seen.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        let inside = if cgroupns {
            path == "/"
        } else {
            path.ends_with(&app.id)
        };
        assert!(
            inside,
            "joining {joined:?}: the app ran outside its cgroup: {line}\n{seen}"
        );
    }
    assert!(
        !out.stdout.contains("survived") && out.code == Some(137),
        "joining {joined:?}: the 16 MiB limit did not stop the app: {out}"
    );
}

#[test]
fn an_app_joining_a_pods_network_and_ipc_is_in_its_cgroups() {
    joined_app_is_confined("cg_join_net", &["network", "ipc"], false);
}

#[test]
fn an_app_joining_a_pods_pid_namespace_is_in_its_cgroups() {
    joined_app_is_confined("cg_join_pid", &["pid", "network", "ipc", "uts"], false);
}

#[test]
fn an_app_joining_a_pod_with_its_own_cgroup_namespace_is_in_its_cgroups() {
    joined_app_is_confined("cg_join_cgns", &["pid", "network", "ipc"], true);
}

#[test]
fn an_app_joining_a_pods_user_namespace_is_in_its_cgroups() {
    joined_app_is_confined("cg_join_user", &["user", "pid", "network", "ipc"], false);
}

/// A node listed in linux.devices is made in /dev, but the cgroup decides
/// what may be done with it: under a deny-all rule, with nothing allowing
/// it, /dev/kmsg stays closed (as runc does), not opened up with rwm.
#[test]
fn a_listed_device_node_does_not_widen_a_deny_all_rule() {
    let c = Container::new("cg_dev_listed");
    c.edit(|cfg| {
        cfg["linux"]["devices"] = json!([
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}
        ]);
        cfg["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
        set_sh(
            cfg,
            "test -c /dev/kmsg && echo node-made; echo x 2>&1 > /dev/kmsg || echo write-refused; \
             head -c0 /dev/kmsg 2>&1 || echo read-refused",
        );
    });
    let out = c.run(&[]).ok().to_string();
    assert!(out.contains("node-made"), "{out}");
    assert!(
        out.contains("write-refused") && out.contains("read-refused"),
        "/dev/kmsg was usable under deny-all: {out}"
    );
    assert!(out.contains("Operation not permitted"), "{out}");
}

/// The mount point of the v1 hierarchy holding `controller`.
fn hierarchy_of(controller: &str) -> PathBuf {
    host_mounts()
        .iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))
        .map(|m| PathBuf::from(&m.target))
        .unwrap_or_else(|| panic!("no {controller} hierarchy on this host"))
}

/// `kill --all` of a container whose init has exited signals what is
/// left in its cgroup (workers sharing the host's pid namespace), as runc
/// does; otherwise such a container can be neither stopped nor removed.
#[test]
fn kill_all_after_init_exited_reaches_what_is_left() {
    let c = Container::new("cg_kill_left");
    c.edit(|cfg| {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|n| n["type"] != "pid");
        set_sh(
            cfg,
            "sleep 60 >/dev/null 2>&1 </dev/null & echo $! > /tmp/worker; exit 0",
        );
        writable_root(cfg);
    });
    c.create();
    c.start();
    c.wait_status("stopped");
    let worker: i32 = fs::read_to_string(c.rootfs().join("tmp/worker"))
        .expect("worker pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(worker), "the worker should outlive init");
    c.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    wait_for("the worker to die", || !alive(worker));
    c.delete();
    c.assert_gone(None);
}

/// A cgroup that already exists frozen is refused at create (init would
/// be frozen on entry, and create would wait for ever).
#[test]
fn a_frozen_cgroup_is_refused() {
    let c = Container::new("cg_frozen");
    let freezer = hierarchy_of("freezer").join(&c.id);
    fs::create_dir(&freezer).expect("make the freezer cgroup");
    struct Thaw(PathBuf);
    impl Drop for Thaw {
        fn drop(&mut self) {
            let _ = fs::write(self.0.join("freezer.state"), "THAWED");
            let _ = fs::remove_dir(&self.0);
        }
    }
    let _thaw = Thaw(freezer.clone());
    fs::write(freezer.join("freezer.state"), "FROZEN").expect("freeze it");
    c.edit(|cfg| set_args(cfg, &["true"]));
    let out = c.try_create(&[]);
    assert!(!out.success(), "create in a frozen cgroup succeeded: {out}");
    assert!(out.err().contains("frozen"), "{out}");
    // Not the runtime's to thaw or remove: a second try is refused too.
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state"))
            .map(|s| s.trim().to_string())
            .ok(),
        Some("FROZEN".to_string()),
        "the frozen cgroup was thawed or removed by the failed create"
    );
}

/// Sub-cgroups a container made (or was given) go with it on delete.
#[test]
fn delete_removes_sub_cgroups() {
    let c = Container::running("cg_sub", |_| {});
    let pids = cgroup_dir(c.pid(), "pids");
    let sub = pids.join("sub");
    fs::create_dir(&sub).expect("make a sub-cgroup");
    let out = c.cmd(&["exec", "-d", &c.id, "sleep", "60"]);
    out.ok();
    let procs = fs::read_to_string(pids.join("cgroup.procs")).expect("cgroup.procs");
    let moved = procs
        .lines()
        .find(|p| p.parse::<i32>().ok() != Some(c.pid()))
        .expect("the exec'd sleep");
    fs::write(sub.join("cgroup.procs"), moved).expect("move it into the sub-cgroup");
    c.cmd(&["delete", "--force", &c.id]).ok();
    assert!(!pids.exists(), "{} left behind", pids.display());
    c.assert_gone(None);
}

/// `update --memory -1` while memory+swap are limited lifts both, as runc
/// does (memory alone would be refused: memory+swap below memory).
#[test]
fn update_memory_unlimited_lifts_swap_too() {
    if !memsw_supported() {
        panic!("this host's memory cgroup has no memsw accounting: the test needs it");
    }
    let c = Container::running("cg_mem_unlimit", |cfg| {
        cfg["linux"]["resources"]["memory"] =
            json!({"limit": 64 * 1024 * 1024, "swap": 64 * 1024 * 1024});
    });
    c.cmd(&["update", "--memory", "-1", &c.id]).ok();
    let dir = cgroup_dir(c.pid(), "memory");
    let read = |f: &str| fs::read_to_string(dir.join(f)).expect("memory file");
    let unlimited = |v: String| v.trim().parse::<u64>().is_ok_and(|n| n > 1 << 60);
    assert!(
        unlimited(read("memory.limit_in_bytes")),
        "memory still limited"
    );
    assert!(
        unlimited(read("memory.memsw.limit_in_bytes")),
        "memory+swap still limited"
    );
}

/// Under a parent with a CFS quota, a shorter period with a new quota is
/// accepted in either order (the period alone first would exceed the
/// parent's share): the period is retried after the quota, as runc does.
#[test]
fn update_period_and_quota_under_a_parent_quota() {
    /// The container, then the parent cgroup in every hierarchy (runtimes
    /// make the parents of a cgroupsPath and leave them).
    struct WithParent(Option<Container>, String);
    impl Drop for WithParent {
        fn drop(&mut self) {
            drop(self.0.take());
            for m in host_mounts()
                .iter()
                .filter(|m| m.fstype.starts_with("cgroup"))
            {
                let _ = fs::remove_dir(std::path::Path::new(&m.target).join(&self.1));
            }
        }
    }
    let c = Container::new("cg_quota");
    let parent_name = format!("{}-parent", c.id);
    let guard = WithParent(Some(c), parent_name.clone());
    let c = guard.0.as_ref().expect("the container");
    let parent = hierarchy_of("cpu").join(&parent_name);
    fs::create_dir(&parent).expect("make the parent cgroup");
    fs::write(parent.join("cpu.cfs_quota_us"), "50000").expect("parent quota");
    let id = c.id.clone();
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "60"]);
        cfg["linux"]["cgroupsPath"] = json!(format!("/{parent_name}/{id}"));
        cfg["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    });
    c.create();
    c.start();
    c.cmd(&[
        "update",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        &c.id,
    ])
    .ok();
    let dir = parent.join(&c.id);
    let read = |f: &str| {
        fs::read_to_string(dir.join(f))
            .expect("cpu file")
            .trim()
            .to_string()
    };
    assert_eq!(
        (read("cpu.cfs_period_us"), read("cpu.cfs_quota_us")),
        ("50000".into(), "25000".into())
    );
}

/// Device access letters other than r, w and m are dropped, as runc does
/// ("rwa" is "rw"), rather than refused.
#[test]
fn device_access_keeps_only_r_w_and_m() {
    let out = sh_in_container(
        "cg_dev_rwa",
        |cfg| {
            cfg["linux"]["resources"]["devices"] = json!([
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwa"}
            ]);
        },
        "echo x > /dev/null && echo null-ok",
    );
    assert_eq!(out, "null-ok\n");
}

//! The runc-compatible CLI around the lifecycle: spec, state, list, --pid-file.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::process::Command;

#[test]
fn spec_writes_the_default_config() {
    let c = Container::new("spec_default");
    let dir = c.host_dir("fresh");
    exec(Command::new(runtime()).args(["spec", "--bundle", p(&dir)])).ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("spec wrote config.json");
    let cfg: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert_eq!(cfg["process"]["terminal"], json!(true));
    assert_eq!(cfg["process"]["args"], json!(["sh"]));
    assert_eq!(cfg["root"]["path"], json!("rootfs"));
    assert!(cfg["ociVersion"].is_string(), "{cfg}");
}

#[test]
fn state_has_the_oci_fields() {
    let c = Container::new("state_fields");
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "30"]);
        cfg["annotations"] = json!({"org.brig.test": "yes"});
    });
    // A relative --bundle (the runtime runs in the test dir): state must
    // report it absolute.
    c.cmd(&["create", "--bundle", "bundle", &c.id]).ok();
    let state = c.state();
    let bundle = fs::canonicalize(&c.bundle).expect("canonical bundle");
    assert!(
        state["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{state}"
    );
    assert_eq!(state["id"], json!(c.id));
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(state["status"], json!("created"));
    assert_eq!(
        state["bundle"],
        json!(p(&bundle)),
        "bundle must be absolute"
    );
    assert_eq!(state["rootfs"], json!(p(&bundle.join("rootfs"))));
    assert_eq!(
        state["annotations"]["org.brig.test"],
        json!("yes"),
        "{state}"
    );
    // RFC 3339, e.g. 2024-05-01T12:00:00.123Z
    let created = state["created"].as_str().unwrap_or_default();
    let b = created.as_bytes();
    assert!(
        b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':',
        "created is not an RFC 3339 time: {state}"
    );
}

/// A created `sleep 30` container, for the list tests.
fn created(name: &str) -> Container {
    let c = Container::new(name);
    c.create_with(&["sleep", "30"]);
    c
}

#[test]
fn list_shows_the_container() {
    let c = created("list_table");
    let out = c.cmd(&["list"]);
    let row = out
        .ok()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(c.id.as_str()));
    let row = row.unwrap_or_else(|| panic!("no row for {}: {out}", c.id));
    let pid = c.pid().to_string();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert!(
        fields.contains(&pid.as_str()) && fields.contains(&"created"),
        "{row}"
    );
}

#[test]
fn list_quiet_prints_only_ids() {
    let c = created("list_quiet");
    assert_eq!(c.listed_ids(), vec![c.id.clone()]);
}

#[test]
fn list_json_describes_the_container() {
    let c = created("list_json");
    let out = c.cmd(&["list", "--format", "json"]);
    let list: Value =
        serde_json::from_str(out.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {out}"));
    assert_eq!(items.len(), 1, "{out}");
    assert_eq!(items[0]["id"], json!(c.id));
    assert_eq!(items[0]["status"], json!("created"));
    assert_eq!(items[0]["pid"], json!(c.pid()));
}

#[test]
fn pid_file_holds_the_init_pid() {
    let c = Container::new("pid_file");
    c.edit(|cfg| set_args(cfg, &["sleep", "30"]));
    let pid_file = c.dir.join("init.pid");
    c.try_create(&["--pid-file", p(&pid_file)]).ok();
    let written = fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(written.trim(), c.pid().to_string());
}

/// `-v/--version` prints runc's three lines, which tools parse.
#[test]
fn version_prints_runcs_lines() {
    let out = exec(Command::new(runtime()).arg("--version"));
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    let name = if is_runc() { "runc" } else { "brig" };
    assert!(lines[0].starts_with(&format!("{name} version ")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("commit:")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("spec: 1.")), "{out}");
    let short = exec(Command::new(runtime()).arg("-v"));
    assert_eq!(short.ok(), text);
}

/// A --log that cannot be opened fails the command at once, and errors on
/// stderr say "error", as runc's do.
#[test]
fn an_unopenable_log_fails_at_start() {
    let out = exec(Command::new(runtime()).args(["--log", "/nonexistent/dir/log", "list"]));
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("error"), "{out}");
}

/// `list --format json` and `ps --format json` print one line; `events
/// --stats` prints one event with runc's key order (type, id, data).
#[test]
fn json_output_is_one_line_as_runc_writes_it() {
    let c = Container::running("cli_json", |_| {});
    let list = c.cmd(&["list", "--format", "json"]);
    assert_eq!(list.ok().lines().count(), 1, "{list}");
    let ps = c.cmd(&["ps", "--format", "json", &c.id]);
    assert_eq!(ps.ok().lines().count(), 1, "{ps}");
    let stats = c.cmd(&["events", "--stats", &c.id]);
    let text = stats.ok();
    assert_eq!(text.lines().count(), 1, "{stats}");
    let (t, i, d) = (
        text.find("\"type\""),
        text.find("\"id\""),
        text.find("\"data\""),
    );
    assert!(
        matches!((t, i, d), (Some(t), Some(i), Some(d)) if t < i && i < d),
        "keys out of runc's order: {text}"
    );
    let v: Value = serde_json::from_str(text.trim()).expect("events JSON");
    assert_eq!(v["type"], "stats");
    if let Some(blkio) = v["data"]["blkio"].as_object() {
        for (k, entries) in blkio {
            assert!(
                entries.is_array() || entries.is_null(),
                "blkio {k} is not an array: {text}"
            );
        }
    }
}

/// `--debug --log F exec` writes its debug lines to F.
#[test]
fn exec_writes_the_debug_log() {
    let c = Container::running("cli_debuglog", |_| {});
    let log = c.dir.join("exec.log");
    c.cmd(&["--debug", "--log", p(&log), "exec", &c.id, "true"])
        .ok();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.trim().is_empty(), "nothing in the exec's --log");
}

/// `run --keep` leaves the stopped container for a later delete.
#[test]
fn run_keep_leaves_the_stopped_container() {
    let c = Container::new("cli_keep");
    c.edit(|cfg| set_args(cfg, &["true"]));
    c.run(&["--keep"]).ok();
    assert_eq!(c.status(), "stopped");
    c.delete();
    c.assert_gone(None);
}

/// exec refuses a paused container with a line that says so (runc's
/// --ignore-paused hangs there until resume; brig has no such flag).
#[test]
fn exec_into_a_paused_container_is_refused() {
    let c = Container::running("cli_paused", |_| {});
    c.cmd(&["pause", &c.id]).ok();
    let out = c.cmd(&["exec", &c.id, "true"]);
    assert!(!out.success(), "exec into a paused container: {out}");
    c.cmd(&["resume", &c.id]).ok();
    c.cmd(&["exec", &c.id, "true"]).ok();
}

/// `exec --ignore-paused` into a paused container: the process is frozen
/// with it and runs once the container is resumed, as with runc.
#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let c = Container::running("cli_ignore_paused", |_| {});
    c.cmd(&["pause", &c.id]).ok();
    let freezer = host_mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "freezer"))
        .map(|m| std::path::Path::new(&m.target).join(&c.id))
        .unwrap_or_else(|| std::path::Path::new("/sys/fs/cgroup/unified").join(&c.id));
    let procs = || {
        fs::read_to_string(freezer.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = procs();
    std::thread::scope(|s| {
        let exec = s.spawn(|| c.cmd(&["exec", "--ignore-paused", &c.id, "echo", "ok"]));
        // Resumed only once exec's process is in the frozen cgroup.
        wait_for("exec's process in the paused container's cgroup", || {
            procs() > before
        });
        assert_eq!(c.status(), "paused");
        c.cmd(&["resume", &c.id]).ok();
        let out = exec.join().expect("exec thread");
        assert_eq!(out.ok(), "ok\n");
    });
}

/// The host directory of the container's cgroup in the v1 hierarchy that
/// carries `controller`, if the host has one.
fn v1_cgroup_dir(c: &Container, controller: &str) -> Option<std::path::PathBuf> {
    host_mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))
        .map(|m| std::path::Path::new(&m.target).join(&c.id))
}

/// `exec --cgroup CONTROLLER:SUB`, runc's per-controller form (cgroup v1):
/// the named hierarchies get the sub-cgroup, the others the container's
/// own; and runc's errors for a path above the container's, a missing one
/// and an unknown controller.
#[test]
fn exec_cgroup_per_controller() {
    let c = Container::running("cli_subcg_ctrl", |_| {});
    let (Some(mem), Some(cpu)) = (v1_cgroup_dir(&c, "memory"), v1_cgroup_dir(&c, "cpu")) else {
        // A cgroup2-only host has one tree: a controller name is unknown.
        let out = c.cmd(&["exec", "--cgroup", "memory:sub", &c.id, "true"]);
        assert!(out.err().contains("unknown controller"), "{out}");
        return;
    };
    fs::create_dir(mem.join("submem")).expect("make memory sub-cgroup");
    // cpu and cpuacct may be one hierarchy or two.
    for dir in [Some(cpu), v1_cgroup_dir(&c, "cpuacct")]
        .into_iter()
        .flatten()
    {
        let _ = fs::create_dir(dir.join("subcpu"));
    }
    let out = c.cmd(&[
        "exec",
        "--cgroup",
        "memory:submem",
        "--cgroup",
        "cpu,cpuacct:subcpu",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let text = out.ok();
    let line = |ctrl: &str| {
        text.lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctrl))
            })
            .unwrap_or_else(|| panic!("no {ctrl} line in\n{text}"))
            .to_string()
    };
    assert!(
        line("memory").ends_with(&format!("/{}/submem", c.id)),
        "{text}"
    );
    assert!(
        line("cpu").ends_with(&format!("/{}/subcpu", c.id)),
        "{text}"
    );
    assert!(line("pids").ends_with(&format!("/{}", c.id)), "{text}");
    // "/" is the container's own cgroup.
    let top = c.cmd(&["exec", "--cgroup", "/", &c.id, "cat", "/proc/self/cgroup"]);
    assert!(
        top.ok()
            .lines()
            .filter(|l| !l.starts_with("0::") || l.len() > 4)
            .all(|l| l.ends_with(&c.id)),
        "{top}"
    );
    for (arg, says) in [
        ("..", ".. is not a sub cgroup path"),
        ("nonexistent", "/nonexistent/cgroup.procs: no such file"),
        ("cpu:nonexistent", "/nonexistent/cgroup.procs: no such file"),
        ("whaaat:/", "unknown controller"),
    ] {
        let out = c.cmd(&["exec", "--cgroup", arg, &c.id, "true"]);
        assert!(!out.success(), "--cgroup {arg}: {out}");
        assert!(out.err().contains(says), "--cgroup {arg}: {out}");
    }
}

/// `exec --cgroup SUB` puts the process in an existing sub-cgroup of the
/// container's.
#[test]
fn exec_cgroup_places_the_process_in_a_sub_cgroup() {
    let c = Container::running("cli_subcg", |_| {});
    let own = fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).expect("init's cgroups");
    let mut made = Vec::new();
    for m in host_mounts()
        .iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
    {
        for line in own.lines() {
            let (ctrls, path) = {
                let mut f = line.splitn(3, ':');
                let _ = f.next();
                (f.next().unwrap_or(""), f.next().unwrap_or(""))
            };
            let matches = if m.fstype == "cgroup2" {
                ctrls.is_empty()
            } else {
                ctrls
                    .split(',')
                    .any(|c| m.options.split(',').any(|o| o == c))
                    && !ctrls.is_empty()
            };
            if matches && path.ends_with(&c.id) {
                let sub = std::path::Path::new(&m.target)
                    .join(path.trim_start_matches('/'))
                    .join("sub");
                if fs::create_dir(&sub).is_ok() {
                    // A v1 cpuset child starts with no cpus or mems: give it
                    // its parent's, as whoever makes one must.
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        if let Ok(v) = fs::read_to_string(sub.parent().expect("parent").join(f)) {
                            fs::write(sub.join(f), v.trim()).expect("copy cpuset");
                        }
                    }
                    made.push(sub);
                }
            }
        }
    }
    assert!(!made.is_empty(), "no cgroup of the container found:\n{own}");
    let out = c.cmd(&["exec", "--cgroup", "sub", &c.id, "cat", "/proc/self/cgroup"]);
    let text = out.ok();
    assert!(
        text.lines().any(|l| l.ends_with("/sub")),
        "the process is not in the sub-cgroup: {text}"
    );
    let bad = c.cmd(&["exec", "--cgroup", "../escape", &c.id, "true"]);
    assert!(!bad.success(), "{bad}");
}

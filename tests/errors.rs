//! Bad input: one clear line on stderr, a non-zero exit, nothing left behind.

mod common;
use common::*;
use serde_json::Value;
use std::fs;

/// Asserts that an error line names `what` (an id, a file, a program).
/// runc 1.1 leaves the name out of some messages; for it `runc_says` (its
/// own wording) is checked instead. brig must name the thing.
#[track_caller]
fn assert_names(line: &str, what: &str, runc_says: &str) {
    let want = if is_runc() { runc_says } else { what };
    assert!(
        line.contains(want),
        "the error should mention {want:?}: {line}"
    );
}

#[test]
fn malformed_config_is_reported_and_leaves_nothing() {
    let c = Container::new("bad_json");
    fs::write(c.bundle.join("config.json"), "{\"ociVersion\": ").expect("write bad config");
    let out = c.try_create(&[]);
    // runc 1.1 says only "unexpected EOF".
    assert_names(out.err(), "config.json", "unexpected EOF");
    c.assert_gone(None);
}

#[test]
fn missing_bundle_is_reported() {
    let c = Container::new("no_bundle");
    let missing = c.dir.join("no-such-bundle");
    let out = c.cmd(&["create", "--bundle", p(&missing), &c.id]);
    let line = out.err();
    assert!(
        line.contains("no-such-bundle"),
        "the error should name the bundle: {line}"
    );
    c.assert_gone(None);
}

#[test]
fn missing_rootfs_is_reported() {
    let c = Container::new("no_rootfs");
    fs::remove_dir_all(c.rootfs()).expect("remove rootfs");
    let out = c.try_create(&[]);
    let line = out.err();
    assert!(
        line.contains("rootfs"),
        "the error should name the rootfs: {line}"
    );
    c.assert_gone(None);
}

#[test]
fn unknown_id_is_reported_by_every_verb() {
    let c = Container::new("unknown_id");
    let ghost = format!("{}-ghost", c.id);
    for verb in [
        &["state"][..],
        &["start"],
        &["kill"],
        &["kill", "--all"],
        &["delete"],
    ] {
        let mut args = verb.to_vec();
        args.push(&ghost);
        let out = c.cmd(&args);
        // runc 1.1: "container does not exist", without the id.
        assert_names(out.err(), &ghost, "does not exist");
    }
}

#[test]
fn force_delete_of_an_unknown_id_succeeds() {
    // As in runc: `delete --force` cleans up after an aborted create, and a
    // container that is already gone is not an error.
    let c = Container::new("force_unknown");
    c.cmd(&["delete", "--force", &format!("{}-ghost", c.id)])
        .ok();
}

#[test]
fn invalid_ids_are_rejected() {
    let c = Container::new("bad_ids");
    for id in ["../escape", "a/b", ""] {
        let out = c.cmd(&["create", "--bundle", p(&c.bundle), id]);
        out.err();
        assert!(c.listed_ids().is_empty(), "{id:?} made a container");
    }
    assert!(
        !c.dir.join("escape").exists(),
        "`../escape` wrote outside the state root"
    );
}

#[test]
fn duplicate_id_is_refused_and_the_original_survives() {
    let c = Container::new("dup_id");
    c.create_with(&["sleep", "30"]);
    let pid = c.pid();
    let out = c.try_create(&[]);
    let line = out.err();
    assert!(
        line.contains("exist"),
        "the error should say the id exists: {line}"
    );
    // runc 1.1: "container with given ID already exists", without the id.
    assert_names(line, &c.id, "given ID");
    assert_eq!((c.status(), c.pid()), ("created".to_string(), pid));
    assert!(alive(pid));
    c.start();
    assert_eq!(c.status(), "running");
}

#[test]
fn missing_program_is_reported_and_leaves_nothing() {
    let c = Container::new("no_prog");
    c.edit(|cfg| set_args(cfg, &["/no/such-program", "arg"]));
    // The program may be found missing at create (runc) or at start.
    let created = c.try_create(&[]);
    let (out, pid) = if created.success() {
        let pid = c.pid();
        (c.cmd(&["start", &c.id]), Some(pid))
    } else {
        (created, None)
    };
    let line = out.err();
    assert!(
        line.contains("/no/such-program"),
        "the error should name the program: {line}"
    );
    c.cmd(&["delete", "--force", &c.id]);
    c.assert_gone(pid);
}

#[test]
fn start_of_a_running_container_fails() {
    let c = Container::new("start_twice");
    c.start_with(&["sleep", "30"]);
    let pid = c.pid();
    let out = c.cmd(&["start", &c.id]);
    let line = out.err();
    assert!(
        line.contains("running"),
        "the error should say it is running: {line}"
    );
    assert_eq!((c.status(), c.pid()), ("running".to_string(), pid));
}

#[test]
fn json_log_gets_the_error() {
    let c = Container::new("json_log");
    c.edit(|cfg| set_args(cfg, &["/no/such-program"]));
    let log = c.dir.join("log.json");
    let log_args = ["--log", p(&log), "--log-format", "json"];
    let create = [&log_args[..], &["create", "--bundle", p(&c.bundle), &c.id]].concat();
    let mut out = c.cmd(&create);
    if out.success() {
        out = c.cmd(&[&log_args[..], &["start", &c.id]].concat());
    }
    out.err();
    let text = fs::read_to_string(&log).expect("the log file was written");
    let errors: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .filter(|v: &Value| v["level"] == "error")
        .collect();
    let last = errors
        .last()
        .unwrap_or_else(|| panic!("no error line in the log:\n{text}"));
    let msg = last["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("/no/such-program"),
        "the logged error should name the program: {last}"
    );
}

/// Bad confinement settings fail create with one line naming the field and
/// the value, and leave nothing behind.
fn rejected(name: &str, edit: impl FnOnce(&mut serde_json::Value), what: &str) {
    let c = Container::new(name);
    c.edit(edit);
    let out = c.try_create(&[]);
    if !is_runc() {
        assert!(
            out.err().contains(what),
            "the error should name {what:?}: {out}"
        );
    } else {
        assert!(!out.success(), "runc accepted it: {out}");
    }
    c.assert_gone(None);
}

#[test]
fn rlimit_soft_above_hard_is_rejected() {
    rejected(
        "bad_rlimit",
        |cfg| {
            cfg["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}])
        },
        "RLIMIT",
    );
}

#[test]
fn unknown_rlimit_is_rejected() {
    rejected(
        "bad_rlimit_name",
        |cfg| {
            cfg["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
        },
        "RLIMIT_BOGUS",
    );
}

#[test]
fn non_namespaced_sysctl_is_rejected() {
    rejected(
        "bad_sysctl",
        |cfg| cfg["linux"]["sysctl"] = serde_json::json!({"kernel.panic": "1"}),
        "kernel.panic",
    );
}

/// A `create` killed halfway (here while a createRuntime hook runs) takes
/// its init with it; `list` never calls the container created, and
/// `delete --force` leaves nothing.
#[test]
fn killed_create_leaves_nothing_after_delete_force() {
    if is_runc() {
        // runc 1.1 records nothing until create finishes: a create killed in
        // a hook leaves cgroups that `delete --force` cannot find. Not run
        // for runc, so the suite does not leak them onto the host.
        skipped("NOTE: runc leaks the cgroups of a killed create; only checked for brig");
        return;
    }
    let c = Container::new("killed_create");
    let marker = c.host_dir("m").join("hook-ran");
    c.edit(|cfg| {
        cfg["hooks"]["createRuntime"] = serde_json::json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}; exec sleep 30", p(&marker))]
        }]);
    });
    let bundle = c.bundle.to_string_lossy().into_owned();
    let mut create = c
        .command(&["create", "--bundle", &bundle, &c.id])
        .spawn()
        .expect("spawn create");
    wait_for("the hook to run", || marker.exists());
    create.kill().expect("kill create");
    let _ = create.wait();
    // The init waited for its parent; with the parent gone it must go too.
    let procs = std::path::PathBuf::from(format!("/sys/fs/cgroup/pids/{}/cgroup.procs", c.id));
    if procs.exists() {
        wait_for("the orphaned init to exit", || {
            fs::read_to_string(&procs).is_ok_and(|p| p.trim().is_empty())
        });
    }
    let status = c.cmd(&["state", &c.id]);
    if status.success() {
        let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("state json");
        assert_ne!(
            v["status"], "created",
            "a half-made container is listed as created"
        );
    }
    c.cmd(&["delete", "--force", &c.id]);
    c.assert_gone(None);
}

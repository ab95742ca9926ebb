//! `exec`: another process in a live container joins its namespaces and
//! cgroup and gets its process spec; bad input leaves the container alone.

mod common;
use common::*;
use serde_json::json;
use std::fs;

#[test]
fn exec_runs_in_the_containers_namespaces_and_cgroup() {
    let c = Container::running("exec_ns", |_| {});
    let pid = c.pid();
    let out = c.cmd(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup",
    ]);
    let text = out.ok();
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let init_ns = fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("init ns");
        assert!(
            text.contains(&init_ns.to_string_lossy().to_string()),
            "{ns} differs:\n{text}"
        );
    }
    let init_cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("init cgroup");
    for line in init_cgroups
        .lines()
        .filter(|l| l.contains(":pids:") || l.contains(":memory:"))
    {
        let path = line.rsplit(':').next().unwrap_or_default();
        assert!(text.contains(path), "exec'd process not in {line}:\n{text}");
    }
}

#[test]
fn exec_returns_the_exit_code_and_output() {
    let c = Container::running("exec_code", |_| {});
    let out = c.cmd(&["exec", &c.id, "sh", "-c", "echo out; exit 7"]);
    assert_eq!(out.code, Some(7), "{out}");
    assert_eq!(out.stdout, "out\n");
}

#[test]
fn exec_inline_flags_set_env_cwd_and_user() {
    let c = Container::running("exec_flags", |_| {});
    let out = c.cmd(&[
        "exec",
        "-e",
        "FOO=bar baz",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        &c.id,
        "sh",
        "-c",
        "echo \"$FOO\"; pwd; id -u; id -g",
    ]);
    assert_eq!(out.ok(), "bar baz\n/tmp\n1000\n1000\n");
}

#[test]
fn exec_process_json_and_detach_with_pid_file() {
    let c = Container::running("exec_json", writable_root);
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo $MARK > /tmp/mark; sleep 30"],
        "env": ["PATH=/bin:/usr/bin", "MARK=from-json"],
        "cwd": "/"
    });
    let pjson = c.dir.join("process.json");
    fs::write(&pjson, process.to_string()).expect("write process.json");
    let pid_file = c.dir.join("exec.pid");
    c.cmd(&[
        "exec",
        "--process",
        p(&pjson),
        "--detach",
        "--pid-file",
        p(&pid_file),
        &c.id,
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(pid), "exec'd process {pid} is not running");
    wait_for("the mark", || {
        fs::read_to_string(c.rootfs().join("tmp/mark")).is_ok_and(|m| m == "from-json\n")
    });
    let ps = c.cmd(&["ps", "--format", "json", &c.id]);
    let pids: Vec<i32> = serde_json::from_str(ps.ok()).expect("ps json");
    assert!(
        pids.contains(&pid),
        "ps does not list the exec'd process: {pids:?}"
    );
}

#[test]
fn exec_gets_the_containers_seccomp_profile() {
    let c = Container::running("exec_seccomp", |cfg| {
        cfg["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let out = c.cmd(&["exec", &c.id, "sh", "-c", "mkdir /tmp/x 2>&1; echo done"]);
    assert!(out.ok().contains("Operation not permitted"), "{out}");
}

#[test]
fn exec_into_a_stopped_or_unknown_container_fails() {
    let c = Container::new("exec_stopped");
    c.edit(|cfg| set_args(cfg, &["true"]));
    c.create();
    c.start();
    c.wait_status("stopped");
    let out = c.cmd(&["exec", &c.id, "true"]);
    assert!(!out.success(), "{out}");
    out.err();
    let out = c.cmd(&["exec", "no-such-container", "true"]);
    assert!(!out.success(), "{out}");
    out.err();
}

#[test]
fn exec_bad_input_leaves_the_container_alone() {
    let c = Container::running("exec_bad", |_| {});
    let bad = c.dir.join("bad.json");
    fs::write(&bad, "{\"args\": ").expect("write bad json");
    let out = c.cmd(&["exec", "--process", p(&bad), &c.id]);
    if !is_runc() {
        assert!(out.err().contains("bad.json"), "{out}");
    } else {
        assert!(!out.success(), "{out}");
    }
    let out = c.cmd(&[
        "exec",
        "-t",
        "--console-socket",
        "/nonexistent/sock",
        &c.id,
        "true",
    ]);
    assert!(!out.success(), "{out}");
    out.err();
    let out = c.cmd(&["exec", &c.id, "no-such-program"]);
    assert!(out.err().contains("executable file not found"), "{out}");
    assert_eq!(c.status(), "running");
}

/// An exec'd process gets what init got: the container's oomScoreAdj
/// (its own wins), linux.personality, and a session and process group of
/// its own, terminal or not.
#[test]
fn exec_gets_the_containers_oom_score_personality_and_its_own_session() {
    let c = Container::running("exec_like_init", |cfg| {
        cfg["process"]["oomScoreAdj"] = json!(123);
        cfg["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    let out = c.cmd(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "cat /proc/self/oom_score_adj; uname -m; s=$(cut -d' ' -f6 /proc/self/stat); [ \"$s\" = $$ ] && echo own-session",
    ]);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "123", "{out}");
    assert_eq!(lines[2], "own-session", "{out}");
    if is_runc() && lines[1] != "i686" {
        eprintln!("NOTE: runc 1.1.5 has no linux.personality: {out}");
    } else {
        assert_eq!(
            lines[1], "i686",
            "exec'd process without the personality: {out}"
        );
    }
    let pjson = c.dir.join("p.json");
    fs::write(
        &pjson,
        json!({"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "oomScoreAdj": 7,
               "env": ["PATH=/bin"]})
        .to_string(),
    )
    .expect("write process.json");
    // Without "user": root, as runc takes it.
    let out = c.cmd(&["exec", "--process", p(&pjson), &c.id]);
    if is_runc() && out.ok() != "7\n" {
        skipped(&format!(
            "NOTE: runc 1.1.5 ignores an exec'd process's own oomScoreAdj: {out}"
        ));
        return;
    }
    assert_eq!(out.ok(), "7\n");
}

/// `--env K=V` replaces the container's K rather than adding a second one.
#[test]
fn exec_env_replaces_the_containers_value() {
    let c = Container::running("exec_env", |cfg| {
        cfg["process"]["env"] = json!(["PATH=/bin:/usr/bin", "X=from-spec", "Y=kept"]);
    });
    let out = c.cmd(&["exec", "-e", "X=from-flag", &c.id, "env"]);
    let text = out.ok();
    let xs: Vec<&str> = text.lines().filter(|l| l.starts_with("X=")).collect();
    assert_eq!(xs, ["X=from-flag"], "{out}");
    assert!(text.lines().any(|l| l == "Y=kept"), "{out}");
}

/// exec applies the spec `create` used: a config.json edited afterwards
/// changes nothing.
#[test]
fn exec_uses_the_spec_saved_at_create() {
    let c = Container::running("exec_saved", |cfg| {
        cfg["process"]["env"] = json!(["PATH=/bin:/usr/bin", "WHICH=at-create"]);
    });
    c.edit(|cfg| cfg["process"]["env"] = json!(["PATH=/bin:/usr/bin", "WHICH=edited-later"]));
    let out = c.cmd(&["exec", &c.id, "sh", "-c", "echo $WHICH"]);
    if is_runc() && out.ok() != "at-create\n" {
        skipped(&format!(
            "NOTE: runc 1.1.5 reads the bundle's config.json again for exec: {out}"
        ));
        return;
    }
    assert_eq!(out.ok(), "at-create\n");
}

/// A cwd that does not exist is an error for exec (init makes its own).
#[test]
fn exec_into_a_missing_cwd_fails() {
    let c = Container::running("exec_cwd", |_| {});
    let out = c.cmd(&["exec", "--cwd", "/no/such/dir", &c.id, "true"]);
    assert!(!out.success(), "{out}");
    if !is_runc() {
        assert!(out.err().contains("/no/such/dir"), "{out}");
    }
    assert_eq!(c.status(), "running");
}

/// When exec itself fails it exits 255, as runc's does, so that a caller
/// can tell it from the process exiting 1.
#[test]
fn a_failed_exec_exits_255() {
    let c = Container::running("exec_255", |_| {});
    let out = c.cmd(&["exec", "no-such-container-255", "true"]);
    assert_eq!(out.code, Some(255), "{out}");
    let out = c.cmd(&["exec", &c.id, "sh", "-c", "exit 1"]);
    assert_eq!(out.code, Some(1), "{out}");
}

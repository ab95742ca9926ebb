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

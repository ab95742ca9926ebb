//! SCMP_ACT_NOTIFY: the filter's listener goes to a seccomp agent
//! (`brig-probe seccomp-agent`, on the host) that answers the container's
//! notified syscalls. As runc's seccomp-notify tests check it: mkdir is
//! redirected by the agent, chmod fails with the agent's errno, syscalls
//! the runtime itself needs can be notified, a missing agent is an error
//! at create, and a killed agent leaves notified syscalls failing with
//! ENOSYS rather than hanging.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A seccomp agent listening on `socket`, killed (by pid) when dropped.
struct Agent {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start(c: &Container) -> Agent {
        let socket = c.dir.join("agent.sock");
        let log = c.dir.join("agent.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_brig-probe"));
        cmd.arg("seccomp-agent")
            .arg(&socket)
            .arg(&log)
            .stdin(Stdio::null());
        default_signals(&mut cmd);
        let child = cmd.spawn().expect("start brig-probe seccomp-agent");
        wait_for("the seccomp agent's socket", || socket.exists());
        Agent {
            child: Some(child),
            socket,
            log,
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The container process states the agent received, in order.
    fn states(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("agent log line is JSON"))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `linux.seccomp` notifying `names` to the agent at `socket`, metadata
/// "bar", and process.noNewPrivileges `nnp`.
fn notify(socket: &Path, names: &[&str], nnp: bool) -> impl FnOnce(&mut Value) {
    let socket = socket.display().to_string();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    move |cfg| {
        cfg["process"]["noNewPrivileges"] = json!(nnp);
        cfg["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "listenerMetadata": "bar",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}],
        });
    }
}

/// busybox's mkdir may use mkdir(2) or mkdirat(2).
const MKDIR: &[&str] = &["mkdir", "mkdirat"];

/// The one state the agent got for a `run`: the spec's fields, with the
/// listener.
fn check_state(c: &Container, state: &Value, status: &str) {
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["received_fds"], json!(1), "{state}");
    assert_eq!(state["metadata"], json!("bar"), "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(state["state"]["id"], json!(c.id), "{state}");
    assert_eq!(state["state"]["status"], json!(status), "{state}");
    let bundle = state["state"]["bundle"].as_str().unwrap_or("");
    assert_eq!(
        fs::canonicalize(bundle).ok(),
        fs::canonicalize(&c.bundle).ok(),
        "{state}"
    );
}

fn agent_redirects_mkdir_in_run(name: &str, nnp: bool) {
    let c = Container::new(name);
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, nnp));
    c.edit(|cfg| set_sh(cfg, "mkdir /dev/shm/foo && stat -c %F /dev/shm/foo-bar"));
    let out = c.run(&[]);
    assert_eq!(out.ok(), "directory\n", "{out}");
    let states = agent.states();
    assert_eq!(states.len(), 1, "{states:?}");
    check_state(&c, &states[0], "creating");
    assert_eq!(states[0]["pid"], states[0]["state"]["pid"]);
}

#[test]
fn run_without_no_new_privs_hands_the_listener_to_the_agent() {
    agent_redirects_mkdir_in_run("notify_run", false);
}

#[test]
fn run_with_no_new_privs_hands_the_listener_to_the_agent() {
    agent_redirects_mkdir_in_run("notify_run_nnp", true);
}

fn agent_redirects_mkdir_in_exec(name: &str, nnp: bool) {
    let c = Container::new(name);
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, nnp));
    c.edit(|cfg| set_args(cfg, &["sleep", "60"]));
    c.create();
    c.start();
    let out = c.cmd(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "mkdir /dev/shm/foo && stat -c %F /dev/shm/foo-bar",
    ]);
    assert_eq!(out.ok(), "directory\n", "{out}");
    let states = agent.states();
    assert_eq!(states.len(), 2, "init's listener, then exec's: {states:?}");
    check_state(&c, &states[1], "running");
    // The process's own pid; the state's is the container's init.
    assert_eq!(states[1]["state"]["pid"], json!(c.pid()));
    assert_ne!(states[1]["pid"], json!(c.pid()));
}

#[test]
fn exec_without_no_new_privs_hands_the_listener_to_the_agent() {
    agent_redirects_mkdir_in_exec("notify_exec", false);
}

#[test]
fn exec_with_no_new_privs_hands_the_listener_to_the_agent() {
    agent_redirects_mkdir_in_exec("notify_exec_nnp", true);
}

/// What the runtime's own last steps use (after the filter is loaded) can
/// be notified: the agent lets them continue.
#[test]
fn syscalls_the_runtime_needs_can_be_notified() {
    for nnp in [false, true] {
        let c = Container::new("notify_important");
        let agent = Agent::start(&c);
        c.edit(notify(
            &agent.socket,
            &["execve", "openat", "open", "read", "close"],
            nnp,
        ));
        c.edit(|cfg| set_args(cfg, &["true"]));
        let out = c.run(&[]);
        assert!(out.success(), "noNewPrivileges {nnp}: {out}");
    }
}

#[test]
fn the_agents_errno_reaches_the_process() {
    let c = Container::new("notify_chmod");
    let agent = Agent::start(&c);
    c.edit(notify(
        &agent.socket,
        &["chmod", "fchmod", "fchmodat", "fchmodat2"],
        false,
    ));
    c.edit(|cfg| set_sh(cfg, "touch /dev/shm/foo && chmod 777 /dev/shm/foo"));
    let out = c.run(&[]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("No medium found"), "{out}");
}

/// Once the agent is gone (and the runtime holds no copy of the
/// listener), a notified syscall fails with ENOSYS instead of hanging.
#[test]
fn a_killed_agent_leaves_enosys_not_a_hang() {
    let c = Container::new("notify_killed");
    let mut agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, false));
    c.edit(|cfg| {
        writable_root(cfg);
        set_sh(
            cfg,
            "touch /ready; while [ ! -e /go ]; do sleep 0.05; done; mkdir /dev/shm/foo",
        );
    });
    let ready = c.rootfs().join("ready");
    let go = c.rootfs().join("go");
    std::thread::scope(|s| {
        let run = s.spawn(|| c.run(&[]));
        wait_for("the container to start", || ready.exists());
        agent.kill();
        fs::write(&go, "").expect("write /go");
        let out = run.join().expect("run thread");
        assert!(!out.success(), "{out}");
        assert!(
            out.stderr.contains("Function not implemented"),
            "mkdir should fail with ENOSYS: {out}"
        );
    });
}

/// A profile with notify rules and no agent to hand the listener to fails
/// at create, with one line, and leaves nothing behind.
#[test]
fn no_agent_is_an_error_at_create() {
    for (path, says) in [
        ("SOCKET", "failed to connect with seccomp agent"),
        ("", "listenerPath"),
        ("@abstract-brig-test", ""),
        ("relative.sock", ""),
    ] {
        let c = Container::new("notify_noagent");
        let socket = c.dir.join("nobody.sock");
        c.edit(notify(&socket, MKDIR, false));
        if path != "SOCKET" {
            c.edit(|cfg| cfg["linux"]["seccomp"]["listenerPath"] = json!(path));
        }
        let out = c.try_create(&[]);
        assert!(!out.success(), "listenerPath {path:?}: {out}");
        if !is_runc() {
            assert!(out.stderr.contains(says), "{path:?}: {out}");
            assert_eq!(out.stderr.trim().lines().count(), 1, "one line: {out}");
        }
        c.assert_gone(None);
    }
}

/// The listener never reaches a hook: a startContainer hook sees stdio and
/// its own directory fd.
#[test]
fn a_start_container_hook_gets_no_listener() {
    let c = Container::new("notify_hook");
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, false));
    c.edit(|cfg| {
        set_args(cfg, &["true"]);
        cfg["hooks"] = json!({"startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "ls /proc/self/fd > /dev/shm/fds; n=$(wc -l < /dev/shm/fds); [ $n -eq 4 ] || { ls -l /proc/self/fd >&2; exit 1; }"],
        }]});
    });
    let out = c.run(&[]);
    assert!(out.success(), "{out}");
}

/// Notifying write works in brig: nothing of brig's hand-over uses it.
/// runc 1.1 refuses it ("cannot be used for the write syscall").
#[test]
fn write_can_be_notified() {
    if is_runc() {
        skipped("runc 1.1 refuses SCMP_ACT_NOTIFY for write, which its own init uses");
        return;
    }
    let c = Container::new("notify_write");
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, &["write"], false));
    c.edit(|cfg| set_args(cfg, &["echo", "through the agent"]));
    let out = c.run(&[]);
    assert_eq!(out.ok(), "through the agent\n");
}

/// brig's own hand-over uses sendmsg: a profile that notifies it would
/// wait for ever, and is refused at create with a line that says why.
#[test]
fn notifying_sendmsg_is_refused() {
    if is_runc() {
        skipped("brig's limit: runc hands its listener over with write, not sendmsg");
        return;
    }
    let c = Container::new("notify_sendmsg");
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, &["sendmsg"], false));
    let out = c.try_create(&[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall"),
        "{out}"
    );
    assert!(agent.states().is_empty());
    c.assert_gone(None);
}

/// Joining another container's pid namespace, init forks once more: the
/// listener comes from the real init, its pid from the intermediate.
#[test]
fn run_in_a_joined_pid_namespace_hands_over_too() {
    let pod = Container::running("notify_pod", |_| {});
    let c = Container::new("notify_joined");
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, false));
    let ns = format!("/proc/{}/ns/pid", pod.pid());
    c.edit(|cfg| {
        let list = cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        list.retain(|n| n["type"] != "pid");
        list.push(json!({"type": "pid", "path": ns}));
        set_sh(cfg, "mkdir /dev/shm/foo && stat -c %F /dev/shm/foo-bar");
    });
    let out = c.run(&[]);
    assert_eq!(out.ok(), "directory\n", "{out}");
    let states = agent.states();
    assert_eq!(states.len(), 1, "{states:?}");
    check_state(&c, &states[0], "creating");
}

#[test]
fn run_in_a_user_namespace_hands_the_listener_to_the_agent() {
    let c = Container::new("notify_userns");
    in_user_namespace(&c);
    let agent = Agent::start(&c);
    c.edit(notify(&agent.socket, MKDIR, false));
    // In the rootfs: the agent is the host's root, whose ids a tmpfs of
    // the container's user namespace cannot store (EOVERFLOW).
    c.edit(|cfg| {
        writable_root(cfg);
        set_sh(cfg, "mkdir /tmp/foo && stat -c %F /tmp/foo-bar");
    });
    let out = c.run(&[]);
    assert_eq!(out.ok(), "directory\n", "{out}");
    assert_eq!(agent.states().len(), 1);
}

//! create / start / kill / delete / run: the container lifecycle.

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn create_reports_created_with_live_pid() {
    let c = Container::new("create_created");
    c.create_with(&["sleep", "30"]);
    assert_eq!(c.status(), "created");
    let pid = c.pid();
    assert!(pid > 0, "pid {pid}");
    assert!(alive(pid), "init process {pid} is not alive");
}

#[test]
fn create_does_not_run_the_program_before_start() {
    let c = Container::new("create_waits");
    let host = c.host_dir("host");
    c.edit(|cfg| {
        set_args(cfg, &["touch", "/mnt/host/started"]);
        add_mount(cfg, bind(&host, "/mnt/host", &["rbind"]));
    });
    c.create();
    let pid = c.pid();
    assert!(
        !host.join("started").exists(),
        "the program ran before start"
    );
    assert!(alive(pid), "init {pid} died before start");
    // Init is still the runtime, not yet the user's program (busybox).
    let exe = fs::metadata(format!("/proc/{pid}/exe")).expect("stat init's exe");
    let busybox = fs::metadata(c.rootfs().join("bin/busybox")).expect("stat busybox");
    assert!(
        (exe.dev(), exe.ino()) != (busybox.dev(), busybox.ino()),
        "init already exec'd the program before start"
    );
    c.start();
    wait_for("the program to run after start", || {
        host.join("started").exists()
    });
    c.wait_status("stopped");
}

#[test]
fn start_makes_it_running() {
    let c = Container::new("start_running");
    c.start_with(&["sleep", "30"]);
    assert_eq!(c.status(), "running");
    assert!(alive(c.pid()));
}

/// Starts `sleep 30` and checks that `kill ID SIGNAL` stops it.
fn kill_stops(name: &str, signal: &str) {
    let c = Container::new(name);
    c.start_with(&["sleep", "30"]);
    let pid = c.pid();
    c.kill(Some(signal));
    c.wait_status("stopped");
    wait_for("the killed process to go", || !alive(pid));
}

#[test]
fn kill_by_short_name_stops_it() {
    kill_stops("kill_short_name", "KILL");
}

#[test]
fn kill_by_sig_name_stops_it() {
    kill_stops("kill_sig_name", "SIGKILL");
}

#[test]
fn kill_by_number_stops_it() {
    kill_stops("kill_number", "9");
}

#[test]
fn kill_defaults_to_sigterm() {
    let c = Container::new("kill_default");
    let host = c.host_dir("host");
    c.edit(|cfg| add_mount(cfg, bind(&host, "/mnt/host", &["rbind"])));
    // pid 1 ignores signals it has no handler for: trap TERM (KILL can't be
    // trapped, so the file proves that TERM was sent).
    let script =
        "trap 'touch /mnt/host/got-term; exit 0' TERM; touch /mnt/host/ready; sleep 30 & wait";
    c.start_with(&["sh", "-c", script]);
    wait_for("the trap to be set", || host.join("ready").exists());
    c.kill(None);
    c.wait_status("stopped");
    assert!(
        host.join("got-term").exists(),
        "the container did not get SIGTERM"
    );
}

#[test]
fn kill_a_created_container_stops_it() {
    let c = Container::new("kill_created");
    c.create_with(&["sleep", "30"]);
    c.kill(Some("KILL"));
    c.wait_status("stopped");
}

#[test]
fn delete_removes_a_stopped_container() {
    let c = Container::new("delete_stopped");
    c.start_with(&["sleep", "30"]);
    let pid = c.pid();
    c.kill(Some("KILL"));
    c.wait_status("stopped");
    c.delete();
    c.assert_gone(Some(pid));
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let c = Container::new("delete_force");
    c.start_with(&["sleep", "30"]);
    let pid = c.pid();
    c.cmd(&["delete", &c.id]).err();
    assert_eq!(
        c.status(),
        "running",
        "a failed delete changed the container"
    );
    c.cmd(&["delete", "--force", &c.id]).ok();
    c.assert_gone(Some(pid));
}

#[test]
fn run_returns_the_exit_code() {
    let out = run_in_container("run_exit", |_| {}, &["sh", "-c", "exit 3"]);
    assert_eq!(out.code, Some(3), "{out}");
}

#[test]
fn run_detach_leaves_it_running() {
    let c = Container::new("run_detach");
    c.edit(|cfg| set_args(cfg, &["sleep", "30"]));
    c.run(&["--detach"]).ok();
    assert_eq!(c.status(), "running");
    assert!(alive(c.pid()));
}

#[test]
fn stdio_is_inherited_without_terminal() {
    let out = run_in_container(
        "stdio",
        |_| {},
        &[
            "sh",
            "-c",
            "echo hello-from-container; echo oops-from-container >&2",
        ],
    );
    assert_eq!(out.ok(), "hello-from-container\n");
    assert!(out.stderr.contains("oops-from-container"), "{out}");
}

/// `kill ID 0` checks that the container's init is alive, as kill(1) does.
#[test]
fn kill_with_signal_zero_checks_liveness() {
    let c = Container::running("kill_zero", |_| {});
    c.cmd(&["kill", &c.id, "0"]).ok();
    assert_eq!(c.status(), "running");
    c.kill(Some("KILL"));
    c.wait_status("stopped");
    let out = c.cmd(&["kill", &c.id, "0"]);
    assert!(!out.success(), "signal 0 to a stopped container: {out}");
}

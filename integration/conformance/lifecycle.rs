//! The operations of runtime.md seen from outside: create, start, state,
//! kill, delete, their errors, and the state JSON. Plus a few runc CLI
//! behaviours that containerd and podman rely on (named `cli_*`: they are
//! runc's contract, not the spec's).

use crate::harness::{alive, mounts_under, Case, Ctx, TResult, Test};
use crate::reaper::Exit;
use crate::{check, fail, tests};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    tests![
        state_unknown_id_fails,
        create_state_created,
        create_does_not_run_program,
        state_transitions,
        annotations_in_state,
        create_duplicate_id_fails,
        create_missing_root_fails,
        config_change_after_create_no_effect,
        start_twice_fails,
        start_stopped_fails,
        start_unknown_fails,
        start_without_process_fails,
        kill_created,
        kill_running_sends_signal,
        kill_stopped_fails,
        kill_unknown_fails,
        delete_created_removes_it,
        delete_running_fails,
        delete_stopped,
        delete_unknown_fails,
        cli_delete_force_running,
        cli_pid_file,
        cli_kill_default_sigterm,
        cli_kill_signal_forms,
        cli_run_exit_code,
        cli_run_signal_exit_code,
    ]
}

/// A program that stays up until the test ends it (or 30 s pass).
const SLEEP: [&str; 2] = ["/bin/sleep", "30"];

/// The state fields every status must have (runtime.md, State).
fn check_state_fields(st: &Value, id: &str, bundle: &Path) -> TResult {
    check!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "state has no ociVersion string: {st}"
    );
    check!(st["id"] == id, "state id is {} not {id:?}", st["id"]);
    let status = st["status"].as_str().unwrap_or("");
    check!(
        ["creating", "created", "running", "stopped"].contains(&status),
        "state status {:?} is not a spec status",
        st["status"]
    );
    let b = st["bundle"].as_str().ctx("state has no bundle string")?;
    check!(b.starts_with('/'), "state bundle {b:?} is not absolute");
    let same = fs::canonicalize(b).ok() == fs::canonicalize(bundle).ok();
    check!(
        same,
        "state bundle {b:?} is not the bundle {}",
        bundle.display()
    );
    if status == "created" || status == "running" {
        let pid = st["pid"].as_i64().unwrap_or(0);
        check!(
            pid > 0,
            "state pid {} is required and positive when {status}",
            st["pid"]
        );
    }
    if !st["annotations"].is_null() {
        check!(
            st["annotations"].is_object(),
            "state annotations is not a map: {st}"
        );
    }
    Ok(())
}

/// runtime.md: "Attempting to query a container that does not exist MUST
/// generate an error."
fn state_unknown_id_fails(c: &mut Case) -> TResult {
    let out = c.rt(&["state", "cf-no-such-container"])?;
    check!(
        !out.success(),
        "state of an unknown id succeeded: {}",
        out.stdout.trim()
    );
    Ok(())
}

/// create leaves the container `created`, with a live process (its pid in
/// the state) and the state fields of runtime.md.
fn create_state_created(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ctr = c.create(&b)?;
    let st = c.state(&ctr)?;
    check_state_fields(&st, &ctr.id, &b.dir)?;
    check!(
        st["status"] == "created",
        "status after create is {} not created",
        st["status"]
    );
    check!(
        alive(ctr.pid),
        "the created container's process {} is not alive",
        ctr.pid
    );
    Ok(())
}

/// runtime.md create: "the user-specified program MUST NOT be run at this
/// time"; start runs it.
fn create_does_not_run_program(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    let ran = b.host_path("/ran");
    let ctr = c.create(&b)?;
    std::thread::sleep(Duration::from_millis(200));
    check!(!ran.exists(), "the program ran before start");
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    check!(ran.exists(), "the program did not run after start");
    Ok(())
}

/// created -> running -> stopped, with the state fields at each step and
/// the same pid while created and running.
fn state_transitions(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.probe(&["--wait-file", "/go"]);
    let ctr = c.create(&b)?;
    let st = c.state(&ctr)?;
    check_state_fields(&st, &ctr.id, &b.dir)?;
    check!(
        st["status"] == "created",
        "status after create: {}",
        st["status"]
    );
    c.start(&ctr)?;
    let st = c.state(&ctr)?;
    check_state_fields(&st, &ctr.id, &b.dir)?;
    check!(
        st["status"] == "running",
        "status after start: {}",
        st["status"]
    );
    check!(
        st["pid"].as_i64() == Some(ctr.pid as i64),
        "pid changed from {} (created) to {} (running)",
        ctr.pid,
        st["pid"]
    );
    b.write_file("/go", "")?;
    c.wait_stopped(&ctr)?;
    let st = c.state(&ctr)?;
    check_state_fields(&st, &ctr.id, &b.dir)?;
    check!(
        st["status"] == "stopped",
        "status after exit: {}",
        st["status"]
    );
    Ok(())
}

/// runtime.md State: annotations "contains the list of annotations
/// associated with the container".
fn annotations_in_state(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ann = json!({"org.example.conformance": "yes", "com.example.other": "a b=c"});
    b.config["annotations"] = ann.clone();
    let ctr = c.create(&b)?;
    let st = c.state(&ctr)?;
    check!(
        st["annotations"] == ann,
        "state annotations {} != config {}",
        st["annotations"],
        ann
    );
    Ok(())
}

/// runtime.md create: "If the ID provided is not unique ... the
/// implementation MUST generate an error and a new container MUST NOT be
/// created." The first container must not be affected either.
fn create_duplicate_id_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let first = c.create(&b)?;
    let mut b2 = c.bundle()?;
    b2.args(&["/bin/touch", "/second"]);
    b2.write_config()?;
    let bundle2 = b2.dir.to_str().ctx("utf-8")?.to_string();
    let id = first.id.clone();
    let out = c.rt(&["create", "--bundle", &bundle2, &id])?;
    check!(!out.success(), "a second create with the same id succeeded");
    let st = c.state(&first)?;
    check!(
        st["status"] == "created",
        "the first container is now {}",
        st["status"]
    );
    check!(
        st["pid"].as_i64() == Some(first.pid as i64) && alive(first.pid),
        "the first container's process changed or died: {st}"
    );
    let bundle_now = st["bundle"].as_str().unwrap_or("");
    check!(
        fs::canonicalize(bundle_now).ok() == fs::canonicalize(&b.dir).ok(),
        "the first container's bundle is now {bundle_now}"
    );
    Ok(())
}

/// config.md root.path: "A directory MUST exist at the path declared by the
/// field"; the runtime "MUST generate an error" when it cannot create the
/// environment, and no container may be left running.
fn create_missing_root_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["root"]["path"] = json!("no-such-rootfs");
    let (out, ctr) = c.try_create(&b, &[])?;
    check!(!out.success(), "create with a missing root.path succeeded");
    let id = ctr.id.clone();
    let st = c.rt(&["state", &id])?;
    if st.success() {
        let v: Value = serde_json::from_str(&st.stdout).unwrap_or_default();
        check!(
            v["status"] == "stopped",
            "after a failed create the container is {}",
            v["status"]
        );
    }
    Ok(())
}

/// runtime.md lifecycle step 2: "Any updates to config.json after this step
/// MUST NOT affect the container."
fn config_change_after_create_no_effect(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["env"]
        .as_array_mut()
        .ctx("env")?
        .push(json!("CF_MARK=before"));
    let ctr = c.create(&b)?;
    let mut changed = b.config.clone();
    changed["process"]["env"] = json!(["PATH=/bin", "CF_MARK=after"]);
    changed["process"]["args"] = json!(["/bin/false"]);
    changed["hostname"] = json!("changed");
    fs::write(b.dir.join("config.json"), changed.to_string()).ctx("rewrite config.json")?;
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    let out = ctr.stdout();
    let report: Value = out
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ctx("the original program (the probe) did not run after config.json changed")?;
    let env: Vec<&str> = report["env"]
        .as_array()
        .ctx("env")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    check!(
        env.contains(&"CF_MARK=before"),
        "env after a config change: {env:?}"
    );
    check!(
        report["uname"]["nodename"] == "conformance",
        "hostname became {}",
        report["uname"]["nodename"]
    );
    Ok(())
}

/// runtime.md start: "Attempting to start a container that is not created
/// MUST have no effect on the container and MUST generate an error."
fn start_twice_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    let id = ctr.id.clone();
    let out = c.rt(&["start", &id])?;
    check!(
        !out.success(),
        "a second start of a running container succeeded"
    );
    let st = c.state(&ctr)?;
    check!(
        st["status"] == "running",
        "after the second start the container is {}",
        st["status"]
    );
    check!(alive(ctr.pid), "the container's process died");
    Ok(())
}

fn start_stopped_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    let id = ctr.id.clone();
    let out = c.rt(&["start", &id])?;
    check!(!out.success(), "start of a stopped container succeeded");
    let status = c.status(&ctr)?;
    check!(
        status == "stopped",
        "after start of a stopped container it is {status}"
    );
    Ok(())
}

/// runtime.md start: "This operation MUST generate an error if it is not
/// provided the container ID" (of an existing container).
fn start_unknown_fails(c: &mut Case) -> TResult {
    let out = c.rt(&["start", "cf-no-such-container"])?;
    check!(!out.success(), "start of an unknown id succeeded");
    Ok(())
}

/// config.md process: "REQUIRED when start is called"; runtime.md start:
/// "This operation MUST generate an error if process was not set." A
/// runtime may refuse already at create; it must not run anything.
fn start_without_process_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config.as_object_mut().ctx("config")?.remove("process");
    let (out, ctr) = c.try_create(&b, &[])?;
    if !out.success() {
        return Ok(());
    }
    let id = ctr.id.clone();
    let out = c.rt(&["start", &id])?;
    check!(
        !out.success(),
        "create and start without a process both succeeded"
    );
    Ok(())
}

/// runtime.md kill: signals go to created (and running) containers; the
/// program must then never run.
fn kill_created(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    let ctr = c.create(&b)?;
    c.kill(&ctr, "KILL")?.ok()?;
    c.wait_stopped(&ctr)?;
    check!(
        !b.host_path("/ran").exists(),
        "the program ran after its container was killed while created"
    );
    Ok(())
}

/// runtime.md kill: "This operation MUST send the specified signal to the
/// container process."
fn kill_running_sends_signal(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/brig-probe", "signal-wait"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_output(&ctr, "ready")?;
    c.kill(&ctr, "USR1")?.ok()?;
    c.wait_stopped(&ctr)?;
    let out = ctr.stdout();
    check!(
        out.contains(r#"{"signal":10}"#),
        "the program did not get SIGUSR1; it printed {out:?}"
    );
    Ok(())
}

/// runtime.md kill: "Attempting to send a signal to a container that is
/// neither created nor running MUST have no effect on the container and
/// MUST generate an error."
fn kill_stopped_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    let out = c.kill(&ctr, "KILL")?;
    check!(!out.success(), "kill of a stopped container succeeded");
    let status = c.status(&ctr)?;
    check!(
        status == "stopped",
        "after kill the stopped container is {status}"
    );
    Ok(())
}

fn kill_unknown_fails(c: &mut Case) -> TResult {
    let out = c.rt(&["kill", "cf-no-such-container", "KILL"])?;
    check!(!out.success(), "kill of an unknown id succeeded");
    Ok(())
}

/// runtime.md delete says deleting a container that is not stopped MUST
/// fail. runc (and so brig) deletes a created container instead: its init
/// never ran the user's program, and containerd relies on it (its shim
/// deletes a created-but-never-started task without --force). This checks
/// that contract: the init is killed and nothing is left.
fn delete_created_removes_it(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ctr = c.create(&b)?;
    c.delete(&ctr)?.ok()?;
    let st = c.rt(&["state", &ctr.id])?;
    check!(!st.success(), "state of a deleted container succeeded");
    check!(
        !alive(ctr.pid),
        "the created container's init survived delete"
    );
    let left = mounts_under(&b.dir);
    check!(
        left.is_empty(),
        "host mounts left under the bundle: {left:?}"
    );
    Ok(())
}

/// Same rule for a running container.
fn delete_running_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    let out = c.delete(&ctr)?;
    check!(
        !out.success(),
        "delete (without --force) of a running container succeeded"
    );
    let st = c.state(&ctr)?;
    check!(
        st["status"] == "running",
        "after the refused delete the container is {}",
        st["status"]
    );
    check!(alive(ctr.pid), "the running container's process died");
    Ok(())
}

/// runtime.md delete: "Deleting a container MUST delete the resources that
/// were created during the create step ... Once a container is deleted its
/// ID MAY be used by a subsequent container."
fn delete_stopped(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    c.delete(&ctr)?.ok()?;
    let id = ctr.id.clone();
    let st = c.rt(&["state", &id])?;
    check!(
        !st.success(),
        "state of a deleted container succeeded: {}",
        st.stdout.trim()
    );
    check!(
        !alive(ctr.pid),
        "process {} still alive after delete",
        ctr.pid
    );
    let left = mounts_under(&b.dir);
    check!(
        left.is_empty(),
        "host mounts left under the bundle: {left:?}"
    );
    // The id is free again.
    let bundle = b.dir.to_str().ctx("utf-8")?.to_string();
    let out = c.rt(&["create", "--bundle", &bundle, &id])?;
    check!(
        out.success(),
        "create with the id of a deleted container failed: {out}"
    );
    Ok(())
}

fn delete_unknown_fails(c: &mut Case) -> TResult {
    let out = c.rt(&["delete", "cf-no-such-container"])?;
    check!(
        !out.success(),
        "delete (without --force) of an unknown id succeeded"
    );
    Ok(())
}

/// runc CLI: `delete --force` kills a running container and deletes it.
fn cli_delete_force_running(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    let id = ctr.id.clone();
    c.rt(&["delete", "--force", &id])?.ok()?;
    let st = c.rt(&["state", &id])?;
    check!(!st.success(), "state after delete --force succeeded");
    for _ in 0..200 {
        if !alive(ctr.pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    fail!("process {} still alive after delete --force", ctr.pid)
}

/// runc CLI: `create --pid-file F` writes the container's pid (as `state`
/// has it) to F.
fn cli_pid_file(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    let pidfile = c.dir.join("ctr.pid");
    let pf = pidfile.to_str().ctx("utf-8")?.to_string();
    let (out, ctr) = c.try_create(&b, &["--pid-file", &pf])?;
    let out = out.ok()?;
    let text = fs::read_to_string(&pidfile).ctx("read the pid file")?;
    check!(
        text.trim() == ctr.pid.to_string(),
        "pid file says {text:?}, state says {} ({})",
        ctr.pid,
        out.cmd
    );
    Ok(())
}

/// runc CLI: `kill ID` without a signal sends SIGTERM.
fn cli_kill_default_sigterm(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/brig-probe", "signal-wait"]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_output(&ctr, "ready")?;
    let id = ctr.id.clone();
    c.rt(&["kill", &id])?.ok()?;
    c.wait_stopped(&ctr)?;
    let out = ctr.stdout();
    check!(
        out.contains(r#"{"signal":15}"#),
        "kill without a signal did not send SIGTERM: {out:?}"
    );
    Ok(())
}

/// runc CLI: a signal can be named SIGUSR2, USR2 or 12.
fn cli_kill_signal_forms(c: &mut Case) -> TResult {
    for form in ["SIGUSR2", "USR2", "12"] {
        let mut b = c.bundle()?;
        b.args(&["/bin/brig-probe", "signal-wait"]);
        let ctr = c.create(&b)?;
        c.start(&ctr)?;
        c.wait_output(&ctr, "ready")?;
        c.kill(&ctr, form)?.ok()?;
        c.wait_stopped(&ctr)?;
        let out = ctr.stdout();
        check!(
            out.contains(r#"{"signal":12}"#),
            "kill {form} did not send SIGUSR2: {out:?}"
        );
        c.delete(&ctr)?;
    }
    Ok(())
}

/// runc CLI: `run` exits with the container's exit code.
fn cli_run_exit_code(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.probe(&["--exit", "42"]);
    b.write_config()?;
    let id = c.new_id();
    let bundle = b.dir.to_str().ctx("utf-8")?.to_string();
    let out = c.rt(&["run", "--bundle", &bundle, &id])?;
    check!(
        out.exit == Some(Exit::Code(42)),
        "run of a program exiting 42: {out}"
    );
    Ok(())
}

/// runc CLI: `run` exits 128+N when the program dies of signal N. The
/// program shares the runtime's pid namespace here: an init of its own pid
/// namespace cannot kill itself.
fn cli_run_signal_exit_code(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    crate::config::drop_namespace(&mut b.config, "pid");
    b.args(&["/bin/sh", "-c", "kill -KILL $$"]);
    b.write_config()?;
    let id = c.new_id();
    let bundle = b.dir.to_str().ctx("utf-8")?.to_string();
    let out = c.rt(&["run", "--bundle", &bundle, &id])?;
    check!(
        out.exit == Some(Exit::Code(137)),
        "run of a program killed by SIGKILL: {out}"
    );
    Ok(())
}

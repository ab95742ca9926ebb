//! config.md, POSIX-platform hooks: order, timing, the state on stdin, the
//! namespaces they run in, args/env, timeout, and what a failing hook does
//! to the lifecycle (runtime.md, Lifecycle steps 3-13).
//!
//! Every hook is `brig-probe hook NAME LOG`: it appends one JSON line (its
//! name, its stdin, its namespaces, env, args) to LOG, a file in the rootfs
//! (bundle/rootfs/hooks.log on the host, /hooks.log inside).

use crate::harness::{alive, namespaces_of, Bundle, Case, Ctr, Ctx, TResult, Test};
use crate::{check, fail, tests};
use serde_json::{json, Value};
use std::fs;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    tests![
        hooks_order,
        hooks_timing,
        hooks_state_on_stdin,
        hooks_namespaces,
        hooks_args_env,
        hooks_missing_path_fails,
        hooks_timeout,
        hooks_create_runtime_fail,
        hooks_prestart_fail,
        hooks_start_container_fail,
        hooks_poststart_fail,
        hooks_poststop_fail,
    ]
}

const LOG: &str = "/hooks.log";

/// A hook whose path resolves on the host (runtime namespace):
/// prestart, createRuntime, createContainer, poststart, poststop.
fn host_hook(c: &Case, b: &Bundle, name: &str, extra: &[&str]) -> Value {
    let log = b.host_path(LOG).display().to_string();
    let mut args = vec!["brig-probe".to_string(), "hook".into(), name.into(), log];
    args.extend(extra.iter().map(|s| s.to_string()));
    json!({"path": c.suite.probe.display().to_string(), "args": args})
}

/// A hook whose path resolves in the container: startContainer.
fn container_hook(name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["brig-probe", "hook", name, LOG];
    args.extend_from_slice(extra);
    json!({"path": "/bin/brig-probe", "args": args})
}

/// The log's records so far, in order.
fn records(b: &Bundle) -> Vec<Value> {
    fs::read_to_string(b.host_path(LOG))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn names(recs: &[Value]) -> Vec<String> {
    recs.iter()
        .map(|r| r["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn find<'a>(recs: &'a [Value], name: &str) -> Option<&'a Value> {
    recs.iter().find(|r| r["name"] == name)
}

/// What one full lifecycle with every kind of hook left behind.
struct Run {
    bundle: Bundle,
    ctr: Ctr,
    annotations: Value,
    after_create: Vec<Value>,
    after_start: Vec<Value>,
    after_exit: Vec<Value>,
    after_delete: Vec<Value>,
    report: Value,
}

/// create, start, let the program exit, delete; the log after each. The
/// program logs itself (`program`) and waits for /go, so it is running
/// while poststart runs.
fn full_run(c: &mut Case) -> TResult<Run> {
    let mut b = c.bundle()?;
    let annotations = json!({"org.example.hooks": "on"});
    b.config["annotations"] = annotations.clone();
    b.probe(&["--log", LOG, "--wait-file", "/go"]);
    b.config["hooks"] = json!({
        "prestart": [host_hook(c, &b, "prestart1", &[]), host_hook(c, &b, "prestart2", &[])],
        "createRuntime": [host_hook(c, &b, "createRuntime", &[])],
        "createContainer": [host_hook(c, &b, "createContainer", &[])],
        "startContainer": [container_hook("startContainer", &[])],
        "poststart": [host_hook(c, &b, "poststart", &[])],
        "poststop": [host_hook(c, &b, "poststop", &[])],
    });
    let ctr = c.create(&b)?;
    let after_create = records(&b);
    c.start(&ctr)?;
    let after_start = records(&b);
    b.write_file("/go", "")?;
    c.wait_stopped(&ctr)?;
    let after_exit = records(&b);
    c.delete(&ctr)?.ok()?;
    let after_delete = records(&b);
    let report = ctr
        .stdout()
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ctx("the program printed no report")?;
    Ok(Run {
        bundle: b,
        ctr,
        annotations,
        after_create,
        after_start,
        after_exit,
        after_delete,
        report,
    })
}

/// "Hooks MUST be called in the listed order", and the kinds in lifecycle
/// order: prestart before createRuntime before createContainer (create),
/// startContainer (start, before the program), poststart, poststop.
/// runc 1.1 deviates: it runs poststart hooks at the end of `create`,
/// before the program has been executed (so before startContainer).
fn hooks_order(c: &mut Case) -> TResult {
    let r = full_run(c)?;
    let all = names(&r.after_delete);
    let hooks: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "program")
        .collect();
    let want = [
        "prestart1",
        "prestart2",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    check!(
        hooks == want,
        "hooks ran in the order {hooks:?}, want {want:?}"
    );
    let pos = |n: &str| all.iter().position(|x| x == n);
    check!(
        pos("startContainer") < pos("program"),
        "startContainer did not run before the program: {all:?}"
    );
    Ok(())
}

/// When each kind runs relative to the operations: create-phase hooks
/// before create returns, none of start's before start; poststart before
/// start returns; poststop only in delete, before it returns. runc 1.1
/// deviates: poststart runs during create.
fn hooks_timing(c: &mut Case) -> TResult {
    let r = full_run(c)?;
    let created = names(&r.after_create);
    let want = ["prestart1", "prestart2", "createRuntime", "createContainer"];
    check!(
        created == want,
        "after create the log has {created:?}, want {want:?}"
    );
    let started = names(&r.after_start);
    for n in ["startContainer", "poststart"] {
        check!(
            started.iter().any(|x| x == n),
            "{n} had not run when start returned: {started:?}"
        );
    }
    let exited = names(&r.after_exit);
    check!(
        !exited.iter().any(|x| x == "poststop"),
        "poststop ran before delete: {exited:?}"
    );
    let deleted = names(&r.after_delete);
    check!(
        deleted.last().map(String::as_str) == Some("poststop"),
        "after delete the log ends {deleted:?}"
    );
    Ok(())
}

/// "The state of the container MUST be passed to hooks over stdin": id,
/// bundle, annotations; status as the lifecycle has it at that point; pid
/// as the runtime sees it for runtime-namespace hooks, as the container sees
/// it for container-namespace hooks (runtime.md, State, pid). runc 1.1
/// deviates: its poststart hooks (run during create) see "created".
fn hooks_state_on_stdin(c: &mut Case) -> TResult {
    let r = full_run(c)?;
    let bundle = fs::canonicalize(&r.bundle.dir).ctx("canonicalize bundle")?;
    let container_pid = r.report["pid"].as_i64();
    let mut errors = Vec::new();
    for rec in r.after_delete.iter().filter(|x| x["name"] != "program") {
        let name = rec["name"].as_str().unwrap_or("?");
        let st: Value = match serde_json::from_str(rec["stdin"].as_str().unwrap_or("")) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!(
                    "{name}: stdin is not state JSON ({e}): {:?}",
                    rec["stdin"]
                ));
                continue;
            }
        };
        if st["id"] != r.ctr.id.as_str() {
            errors.push(format!("{name}: id {}", st["id"]));
        }
        let b = st["bundle"].as_str().unwrap_or("");
        if fs::canonicalize(b).ok().as_ref() != Some(&bundle) {
            errors.push(format!("{name}: bundle {b:?}"));
        }
        if st["annotations"] != r.annotations {
            errors.push(format!("{name}: annotations {}", st["annotations"]));
        }
        if !st["ociVersion"].is_string() {
            errors.push(format!("{name}: no ociVersion"));
        }
        let status = st["status"].as_str().unwrap_or("");
        let ok_status: &[&str] = match name {
            "prestart1" | "prestart2" | "createRuntime" | "createContainer" => {
                &["creating", "created"]
            }
            "startContainer" => &["created"],
            "poststart" => &["running"],
            _ => &["stopped"],
        };
        if !ok_status.contains(&status) {
            errors.push(format!(
                "{name}: status {status:?}, want one of {ok_status:?}"
            ));
        }
        let pid = st["pid"].as_i64();
        let want_pid = match name {
            "createContainer" | "startContainer" => container_pid,
            "poststop" => None,
            _ => Some(r.ctr.pid as i64),
        };
        if want_pid.is_some() && pid != want_pid {
            errors.push(format!("{name}: pid {:?}, want {want_pid:?}", st["pid"]));
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// prestart, createRuntime, poststart, poststop "MUST be executed in the
/// runtime namespace"; createContainer and startContainer "in the container
/// namespace". Compared: mnt, net, uts, ipc and pid namespaces.
fn hooks_namespaces(c: &mut Case) -> TResult {
    let r = full_run(c)?;
    let host = namespaces_of("self");
    let ctr_ns = r.report["ns"]
        .as_object()
        .ctx("the program's namespaces")?
        .clone();
    let mut errors = Vec::new();
    for rec in r.after_delete.iter().filter(|x| x["name"] != "program") {
        let name = rec["name"].as_str().unwrap_or("?");
        let (want, which) = match name {
            "createContainer" | "startContainer" => (&ctr_ns, "container"),
            _ => (&host, "runtime"),
        };
        for ns in ["mnt", "net", "uts", "ipc", "pid"] {
            if rec["ns"][ns] != want[ns] {
                errors.push(format!(
                    "{name} ran in {ns} {} not the {which}'s {}",
                    rec["ns"][ns], want[ns]
                ));
            }
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// Hook args "same semantics as execv's argv" and env "same semantics as
/// environ": the hook gets exactly these.
fn hooks_args_env(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let mut h = host_hook(c, &b, "createRuntime", &["--", "arg with space", ""]);
    h["env"] = json!(["CF_HOOK=1", "OTHER=x y"]);
    b.config["hooks"] = json!({"createRuntime": [h.clone()]});
    let _ctr = c.create(&b)?;
    let recs = records(&b);
    let rec = find(&recs, "createRuntime").ctx("the createRuntime hook did not run")?;
    check!(
        rec["args"] == h["args"],
        "hook args {} != {}",
        rec["args"],
        h["args"]
    );
    let mut env: Vec<String> = rec["env"]
        .as_array()
        .ctx("env")?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    env.sort();
    check!(
        env == ["CF_HOOK=1", "OTHER=x y"],
        "hook env is {env:?}, want exactly [CF_HOOK=1, OTHER=x y]"
    );
    Ok(())
}

/// A createRuntime hook whose path does not exist cannot succeed: create
/// must fail (lifecycle step 4) and the program must not run.
fn hooks_missing_path_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    let missing = c.dir.join("no-such-hook").display().to_string();
    b.config["hooks"] = json!({"createRuntime": [{"path": missing, "args": ["no-such-hook"]}]});
    let (out, ctr) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create succeeded although its createRuntime hook does not exist"
    );
    check!(!b.host_path("/ran").exists(), "the program ran");
    no_live_container(c, &ctr)
}

/// timeout: "the number of seconds before aborting the hook". An aborted
/// createRuntime hook is a failed hook: create errors (runtime.md lifecycle
/// step 4), the program never runs, nothing stays alive.
fn hooks_timeout(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    let mut h = host_hook(c, &b, "createRuntime", &["--sleep", "30"]);
    h["timeout"] = json!(1);
    b.config["hooks"] = json!({"createRuntime": [h]});
    let start = Instant::now();
    let (out, ctr) = c.try_create(&b, &[])?;
    let took = start.elapsed();
    check!(
        !out.success(),
        "create succeeded although its hook outlived its 1 s timeout ({took:?})"
    );
    check!(
        took < Duration::from_secs(10),
        "create took {took:?} with a 1 s hook timeout"
    );
    check!(!b.host_path("/ran").exists(), "the program ran");
    no_live_container(c, &ctr)
}

/// After a failed create or start: the container is gone, or stopped, and
/// its process is not alive.
fn no_live_container(c: &mut Case, ctr: &Ctr) -> TResult {
    let id = ctr.id.clone();
    let out = c.rt(&["state", &id])?;
    if out.success() {
        let st: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        check!(
            st["status"] == "stopped",
            "after the failure the container is {}",
            st["status"]
        );
        let pid = st["pid"].as_i64().unwrap_or(0) as i32;
        check!(
            pid <= 0 || !alive(pid),
            "after the failure process {pid} is alive"
        );
    }
    Ok(())
}

/// The poststop hook ran, by itself or at the latest when we delete.
fn poststop_ran(c: &mut Case, b: &Bundle, ctr: &Ctr) -> TResult {
    if find(&records(b), "poststop").is_none() {
        let id = ctr.id.clone();
        let _ = c.rt(&["delete", "--force", &id])?;
    }
    check!(
        find(&records(b), "poststop").is_some(),
        "poststop hooks were not called (lifecycle step 13): {:?}",
        names(&records(b))
    );
    Ok(())
}

/// runtime.md lifecycle step 4: "If any createRuntime hook fails, the
/// runtime MUST generate an error, stop the container, and continue the
/// lifecycle at step 12" (destroy, then poststop hooks).
fn hooks_create_runtime_fail(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    b.config["hooks"] = json!({
        "createRuntime": [host_hook(c, &b, "createRuntime", &["--exit", "1"])],
        "createContainer": [host_hook(c, &b, "createContainer", &[])],
        "poststop": [host_hook(c, &b, "poststop", &[])],
    });
    let (out, ctr) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create succeeded although a createRuntime hook failed"
    );
    check!(
        find(&records(&b), "createContainer").is_none(),
        "hooks after the failed one still ran: {:?}",
        names(&records(&b))
    );
    check!(!b.host_path("/ran").exists(), "the program ran");
    no_live_container(c, &ctr)?;
    poststop_ran(c, &b, &ctr)
}

/// Lifecycle step 3, the same rule for the (deprecated) prestart hooks.
fn hooks_prestart_fail(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    b.config["hooks"] = json!({
        "prestart": [host_hook(c, &b, "prestart", &["--exit", "1"])],
        "poststop": [host_hook(c, &b, "poststop", &[])],
    });
    let (out, ctr) = c.try_create(&b, &[])?;
    if out.success() {
        // A runtime that runs prestart at start (the old spec's wording)
        // must fail there.
        let id = ctr.id.clone();
        let s = c.rt(&["start", &id])?;
        check!(
            !s.success(),
            "create and start succeeded although a prestart hook failed"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    check!(!b.host_path("/ran").exists(), "the program ran");
    no_live_container(c, &ctr)?;
    poststop_ran(c, &b, &ctr)
}

/// Lifecycle step 7: "If any startContainer hook fails, the runtime MUST
/// generate an error, stop the container, and continue the lifecycle at
/// step 12." runc 1.1 deviates: `start` returns once the program may go,
/// and the hook fails in the container's init after that, unreported.
fn hooks_start_container_fail(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/touch", "/ran"]);
    b.config["hooks"] = json!({
        "startContainer": [container_hook("startContainer", &["--exit", "1"])],
        "poststop": [host_hook(c, &b, "poststop", &[])],
    });
    let ctr = c.create(&b)?;
    let id = ctr.id.clone();
    let out = c.rt(&["start", &id])?;
    check!(
        !out.success(),
        "start succeeded although a startContainer hook failed"
    );
    check!(
        find(&records(&b), "startContainer").is_some(),
        "the startContainer hook never ran"
    );
    std::thread::sleep(Duration::from_millis(100));
    check!(!b.host_path("/ran").exists(), "the program ran");
    for _ in 0..100 {
        if !alive(ctr.pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check!(
        !alive(ctr.pid),
        "the container process is alive after the failed start"
    );
    no_live_container(c, &ctr)?;
    poststop_ran(c, &b, &ctr)
}

/// Lifecycle step 9: "If any poststart hook fails, the runtime MUST log a
/// warning, but the remaining hooks and lifecycle continue as if the hook
/// had succeeded." runc 1.1 deviates: it runs poststart hooks at the end
/// of `create` and fails create when one fails.
fn hooks_poststart_fail(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/sleep", "30"]);
    b.config["hooks"] = json!({
        "poststart": [
            host_hook(c, &b, "poststart1", &["--exit", "1"]),
            host_hook(c, &b, "poststart2", &[]),
        ],
    });
    let ctr = c.create(&b)?;
    let id = ctr.id.clone();
    let out = c.rt(&["start", &id])?;
    check!(
        out.success(),
        "start failed because a poststart hook failed: {out}"
    );
    check!(
        find(&records(&b), "poststart2").is_some(),
        "the poststart hook after the failed one did not run"
    );
    let status = c.status(&ctr)?;
    check!(
        status == "running",
        "after a failed poststart hook the container is {status}"
    );
    Ok(())
}

/// Lifecycle step 13: "If any poststop hook fails, the runtime MUST log a
/// warning, but the remaining hooks and lifecycle continue as if the hook
/// had succeeded." runc 1.1 deviates: it stops at the first failing one.
fn hooks_poststop_fail(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    b.config["hooks"] = json!({
        "poststop": [
            host_hook(c, &b, "poststop1", &["--exit", "1"]),
            host_hook(c, &b, "poststop2", &[]),
        ],
    });
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    let out = c.delete(&ctr)?;
    check!(
        out.success(),
        "delete failed because a poststop hook failed: {out}"
    );
    check!(
        find(&records(&b), "poststop2").is_some(),
        "the poststop hook after the failed one did not run: {:?}",
        names(&records(&b))
    );
    let id = ctr.id.clone();
    let st = c.rt(&["state", &id])?;
    if st.success() {
        fail!(
            "the container still exists after delete: {}",
            st.stdout.trim()
        );
    }
    Ok(())
}

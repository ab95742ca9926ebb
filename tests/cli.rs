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

//! config-linux.md Devices and Default Devices.

use crate::harness::{Case, TResult, Test};
use crate::{check, tests};
use serde_json::json;

pub fn tests() -> Vec<Test> {
    tests![
        devices_default,
        devices_default_work,
        devices_linux_devices,
        devices_existing_mismatch_fails
    ]
}

/// "the runtime MUST also supply" /dev/null, zero, full, random, urandom,
/// tty (character devices with their standard numbers) and /dev/ptmx (a
/// bind mount or symlink of the container's /dev/pts/ptmx).
fn devices_default(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let devs = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let mut opts = vec!["--path", "/dev/ptmx"];
    for (p, _, _) in devs {
        opts.extend_from_slice(&["--path", p]);
    }
    b.probe(&opts);
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    for (p, major, minor) in devs {
        let d = &r["paths"][p];
        if d["kind"] != "char" || d["major"] != major || d["minor"] != minor {
            errors.push(format!("{p} is {d}, want char {major}:{minor}"));
        }
    }
    let ptmx = &r["paths"]["/dev/ptmx"];
    let ok = match ptmx["kind"].as_str() {
        Some("symlink") => ptmx["target"] == "pts/ptmx" || ptmx["target"] == "/dev/pts/ptmx",
        Some("char") => ptmx["major"] == 5 && ptmx["minor"] == 2,
        _ => false,
    };
    if !ok {
        errors.push(format!(
            "/dev/ptmx is {ptmx}, want a symlink to pts/ptmx or a bind of it"
        ));
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// The default devices work: /dev/zero reads zeros, /dev/null takes writes,
/// /dev/full refuses them with ENOSPC, /dev/urandom gives bytes.
fn devices_default_work(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.probe(&[
        "--read",
        "/dev/zero",
        "--read",
        "/dev/urandom",
        "--write",
        "/dev/null",
        "--write",
        "/dev/full",
    ]);
    let r = c.run_probe(&b)?;
    let zero = &r["reads"]["/dev/zero"];
    check!(
        zero["ok"] == true && zero["len"] == 4096 && zero["all_zero"] == true,
        "/dev/zero: {zero}"
    );
    let ur = &r["reads"]["/dev/urandom"];
    check!(
        ur["ok"] == true && ur["len"] == 4096 && ur["all_zero"] == false,
        "/dev/urandom: {ur}"
    );
    check!(
        r["writes"]["/dev/null"]["ok"] == true,
        "write /dev/null: {}",
        r["writes"]["/dev/null"]
    );
    check!(
        r["writes"]["/dev/full"]["errno"] == libc::ENOSPC,
        "write /dev/full: {}, want ENOSPC",
        r["writes"]["/dev/full"]
    );
    Ok(())
}

/// linux.devices "lists devices that MUST be available in the container":
/// type, major:minor, fileMode, uid, gid; the path "MAY be anywhere in the
/// container filesystem, notably outside of /dev".
fn devices_linux_devices(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/cf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1, "gid": 2},
        {"path": "/dev/cf-loop", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/cf-fifo", "type": "p", "fileMode": 0o620, "uid": 0, "gid": 0},
        {"path": "/opt/cf-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666, "uid": 0, "gid": 0},
    ]);
    b.probe(&[
        "--path",
        "/dev/cf-null",
        "--path",
        "/dev/cf-loop",
        "--path",
        "/dev/cf-fifo",
        "--path",
        "/opt/cf-zero",
        "--write",
        "/opt/cf-zero",
        "--read",
        "/opt/cf-zero",
    ]);
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    let want = [
        ("/dev/cf-null", "char", 1, 3, 0o640, 1, 2),
        ("/dev/cf-loop", "block", 7, 200, 0o600, 0, 0),
        ("/dev/cf-fifo", "fifo", 0, 0, 0o620, 0, 0),
        ("/opt/cf-zero", "char", 1, 5, 0o666, 0, 0),
    ];
    for (p, kind, major, minor, mode, uid, gid) in want {
        let d = &r["paths"][p];
        let numbers_ok = kind == "fifo" || (d["major"] == major && d["minor"] == minor);
        if d["kind"] != kind
            || !numbers_ok
            || d["mode"] != mode
            || d["uid"] != uid
            || d["gid"] != gid
        {
            errors.push(format!(
                "{p} is {d}, want {kind} {major}:{minor} mode {mode:o} uid {uid} gid {gid}"
            ));
        }
    }
    if r["writes"]["/opt/cf-zero"]["ok"] != true {
        errors.push(format!(
            "write /opt/cf-zero: {}",
            r["writes"]["/opt/cf-zero"]
        ));
    }
    if r["reads"]["/opt/cf-zero"]["all_zero"] != true {
        errors.push(format!("read /opt/cf-zero: {}", r["reads"]["/opt/cf-zero"]));
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// "If a file already exists at path that does not match the requested
/// device, the runtime MUST generate an error." runc 1.1 deviates: mknod's
/// EEXIST is ignored and the regular file stays.
fn devices_existing_mismatch_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    b.mkdir("/opt")?;
    b.write_file("/opt/cf-dev", "a regular file")?;
    b.config["linux"]["devices"] = json!([
        {"path": "/opt/cf-dev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0},
    ]);
    let (out, _) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create succeeded with a regular file where a device 1:3 was asked for"
    );
    Ok(())
}

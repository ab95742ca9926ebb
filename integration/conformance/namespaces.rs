//! config-linux.md, Namespaces (new, inherited, joined by path, errors),
//! user namespace mappings, time offsets; config.md hostname/domainname.

use crate::config::{drop_namespace, set_namespace};
use crate::harness::{namespaces_of, Case, Ctx, TResult, Test};
use crate::{check, skip, tests};
use serde_json::{json, Value};
use std::path::Path;

pub fn tests() -> Vec<Test> {
    tests![
        ns_new,
        ns_inherit,
        ns_join_by_path,
        ns_join_pid_by_path,
        ns_path_wrong_type_fails,
        ns_duplicate_fails,
        ns_user_mappings,
        ns_cgroup,
        ns_time_offsets,
        uts_hostname,
        uts_domainname,
    ]
}

fn ns<'a>(report: &'a Value, kind: &str) -> &'a Value {
    &report["ns"][kind]
}

/// "If path is not specified, the runtime MUST create a new container
/// namespace of type type": each one differs from ours; in a new pid
/// namespace the process is pid 1.
fn ns_new(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    set_namespace(&mut b.config, "cgroup", None);
    let r = c.run_probe(&b)?;
    let host = namespaces_of("self");
    let mut same = Vec::new();
    for (kind, file) in [
        ("pid", "pid"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("mount", "mnt"),
        ("cgroup", "cgroup"),
    ] {
        if ns(&r, file) == &host[file] || ns(&r, file).is_null() {
            same.push(kind);
        }
    }
    check!(same.is_empty(), "not new namespaces: {same:?}");
    check!(
        r["pid"] == 1,
        "in a new pid namespace the process is pid {}",
        r["pid"]
    );
    Ok(())
}

/// "If a namespace type is not specified in the namespaces array, the
/// container MUST inherit the runtime namespace of that type."
fn ns_inherit(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    for kind in ["pid", "network", "ipc", "uts"] {
        drop_namespace(&mut b.config, kind);
    }
    // A hostname needs a UTS namespace of its own.
    b.config.as_object_mut().ctx("config")?.remove("hostname");
    // sysfs cannot be mounted without a network namespace of our own.
    crate::config::drop_mount(&mut b.config, "/sys/fs/cgroup");
    crate::config::drop_mount(&mut b.config, "/sys");
    let r = c.run_probe(&b)?;
    let host = namespaces_of("self");
    let mut differ = Vec::new();
    for file in ["pid", "net", "ipc", "uts", "cgroup", "user", "time"] {
        if host.contains_key(file) && ns(&r, file) != &host[file] {
            differ.push(format!("{file}: {} vs ours {}", ns(&r, file), host[file]));
        }
    }
    check!(
        differ.is_empty(),
        "namespaces not inherited: {}",
        differ.join(", ")
    );
    check!(r["pid"] != 1, "pid 1 without a pid namespace");
    Ok(())
}

/// "The runtime MUST place the container process in the namespace
/// associated with that path": a second container joins the first one's
/// network, ipc and uts namespaces.
fn ns_join_by_path(c: &mut Case) -> TResult {
    let mut a = c.bundle()?;
    a.args(&["/bin/sleep", "30"]);
    let first = c.create(&a)?;
    let mut b = c.bundle()?;
    for (kind, file) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        let p = format!("/proc/{}/ns/{file}", first.pid);
        set_namespace(&mut b.config, kind, Some(&p));
    }
    b.config.as_object_mut().ctx("config")?.remove("hostname");
    let want = namespaces_of(&first.pid.to_string());
    let r = c.run_probe(&b)?;
    for file in ["net", "ipc", "uts"] {
        check!(
            ns(&r, file) == &want[file],
            "{file}: joined {} but the path is {}",
            ns(&r, file),
            want[file]
        );
    }
    check!(
        r["uname"]["nodename"] == "conformance",
        "the joined uts namespace's hostname is {}",
        r["uname"]["nodename"]
    );
    Ok(())
}

/// Joining another container's pid namespace: the process is in it, and
/// is not its pid 1 (the first container's init is).
fn ns_join_pid_by_path(c: &mut Case) -> TResult {
    let mut a = c.bundle()?;
    a.args(&["/bin/sleep", "30"]);
    let first = c.create(&a)?;
    let mut b = c.bundle()?;
    let p = format!("/proc/{}/ns/pid", first.pid);
    set_namespace(&mut b.config, "pid", Some(&p));
    let want = namespaces_of(&first.pid.to_string());
    let r = c.run_probe(&b)?;
    check!(
        ns(&r, "pid") == &want["pid"],
        "pid: joined {} but the path is {}",
        ns(&r, "pid"),
        want["pid"]
    );
    let pid = r["pid"].as_i64().unwrap_or(0);
    check!(pid > 1, "pid in the joined namespace is {pid}, want > 1");
    Ok(())
}

/// "The runtime MUST generate an error if path is not associated with a
/// namespace of type type."
fn ns_path_wrong_type_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    let ipc = format!("/proc/{}/ns/ipc", std::process::id());
    set_namespace(&mut b.config, "network", Some(&ipc));
    let (out, _) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create with an ipc namespace path as the network namespace succeeded"
    );
    Ok(())
}

/// "If a namespaces field contains duplicated namespaces with same type,
/// the runtime MUST generate an error."
fn ns_duplicate_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .ctx("namespaces")?
        .push(json!({"type": "network"}));
    let (out, _) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create with two network namespaces succeeded"
    );
    Ok(())
}

/// A user namespace with uidMappings/gidMappings: the maps are written as
/// given, and container uid 0 is host uid 100000.
fn ns_user_mappings(c: &mut Case) -> TResult {
    if !Path::new("/proc/self/ns/user").exists() {
        skip!("the kernel has no user namespaces");
    }
    let mut b = c.bundle()?;
    set_namespace(&mut b.config, "user", None);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let r = c.run_probe(&b)?;
    let host = namespaces_of("self");
    check!(
        ns(&r, "user") != &host["user"],
        "the user namespace is the host's"
    );
    let norm = |v: &Value| {
        v.as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    check!(
        norm(&r["uid_map"]) == "0 100000 65536",
        "uid_map is {:?}",
        r["uid_map"]
    );
    check!(
        norm(&r["gid_map"]) == "0 200000 65536",
        "gid_map is {:?}",
        r["gid_map"]
    );
    check!(r["uid"] == json!([0, 0, 0]), "uid inside is {}", r["uid"]);
    Ok(())
}

/// A new cgroup namespace: the container's own cgroup is its root.
fn ns_cgroup(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    set_namespace(&mut b.config, "cgroup", None);
    let r = c.run_probe(&b)?;
    let host = namespaces_of("self");
    check!(
        ns(&r, "cgroup") != &host["cgroup"],
        "the cgroup namespace is the host's"
    );
    let cg = r["cgroup"].as_str().unwrap_or("");
    let bad: Vec<&str> = cg.lines().filter(|l| !l.ends_with(":/")).collect();
    check!(
        bad.is_empty(),
        "in a new cgroup namespace /proc/self/cgroup has {bad:?}"
    );
    Ok(())
}

/// config-linux.md timeOffsets: the container's monotonic and boottime
/// clocks are ours plus the offsets. runc 1.1 has no time namespace
/// support (added in runc 1.2).
fn ns_time_offsets(c: &mut Case) -> TResult {
    if !Path::new("/proc/self/ns/time").exists() {
        skip!("the kernel has no time namespaces (CONFIG_TIME_NS)");
    }
    let mut b = c.bundle()?;
    set_namespace(&mut b.config, "time", None);
    let (mono, boot) = (7 * 86400i64, 11 * 86400i64);
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": mono, "nanosecs": 0},
        "boottime": {"secs": boot, "nanosecs": 0},
    });
    let now = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime into a local struct.
        unsafe { libc::clock_gettime(id, &mut ts) };
        ts.tv_sec as f64
    };
    let before = now(libc::CLOCK_MONOTONIC);
    let r = c.run_probe(&b)?;
    let after = now(libc::CLOCK_MONOTONIC);
    check!(
        ns(&r, "time") != &namespaces_of("self")["time"],
        "the time namespace is the host's"
    );
    let m = r["clocks"]["monotonic"].as_f64().ctx("monotonic clock")? - mono as f64;
    check!(
        m >= before - 1.0 && m <= after + 1.0,
        "monotonic inside minus the offset is {m:.1}, ours was {before:.1}..{after:.1}"
    );
    let bt = r["clocks"]["boottime"].as_f64().ctx("boottime clock")? - boot as f64;
    let host_boot = now(libc::CLOCK_BOOTTIME);
    check!(
        (bt - host_boot).abs() < 30.0,
        "boottime inside minus the offset is {bt:.1}, ours is {host_boot:.1}"
    );
    Ok(())
}

/// config.md hostname.
fn uts_hostname(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["hostname"] = json!("cf-hostname.test");
    let r = c.run_probe(&b)?;
    check!(
        r["uname"]["nodename"] == "cf-hostname.test",
        "hostname is {}",
        r["uname"]["nodename"]
    );
    Ok(())
}

/// config.md domainname. runc 1.1 predates the field (runc 1.2 added it)
/// and ignores it.
fn uts_domainname(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["domainname"] = json!("cf-domain.test");
    let r = c.run_probe(&b)?;
    check!(
        r["uname"]["domainname"] == "cf-domain.test",
        "domainname is {}",
        r["uname"]["domainname"]
    );
    Ok(())
}

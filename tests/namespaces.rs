//! Namespaces: new ones from linux.namespaces, joined ones by path, id maps,
//! and what the container sees in each.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// `KIND NSLINK` lines for each kind, as the container sees them.
const NS_LINKS: &str = "for n in pid net ipc uts mnt cgroup user time; do \
                        echo \"$n $(readlink /proc/self/ns/$n)\"; done";

/// The container's namespace link of `kind`, from NS_LINKS output.
fn ns_of(out: &str, kind: &str) -> String {
    let prefix = format!("{kind} ");
    let found = out.lines().find_map(|l| l.strip_prefix(&prefix));
    found
        .unwrap_or_else(|| panic!("no {kind} in {out}"))
        .to_string()
}

#[test]
fn default_namespaces_are_new() {
    let out = sh_in_container("ns_default", |_| {}, NS_LINKS);
    // runc's default spec asks for these five.
    for kind in ["pid", "net", "ipc", "uts", "mnt"] {
        assert_ne!(
            ns_of(&out, kind),
            host_ns(kind),
            "{kind} namespace is the host's"
        );
    }
}

#[test]
fn pid_1_is_the_users_process() {
    // (The final echo keeps busybox sh from exec'ing tr in its place.)
    let script = "echo $$; tr '\\0' ' ' </proc/1/cmdline; echo";
    let out = sh_in_container("ns_pid1", |_| {}, script);
    assert_eq!(out, format!("1\nsh -c {script} \n"));
}

#[test]
fn uts_hostname_is_set() {
    let out = sh_in_container(
        "ns_hostname",
        |cfg| cfg["hostname"] = json!("brig-box"),
        "hostname",
    );
    assert_eq!(out, "brig-box\n");
}

#[test]
fn uts_domainname_is_set() {
    let out = sh_in_container(
        "ns_domainname",
        |cfg| cfg["domainname"] = json!("brig.example"),
        "cat /proc/sys/kernel/domainname",
    );
    if is_runc() {
        // runc 1.1 ignores "domainname" (support came in runc 1.2).
        assert_eq!(out, "(none)\n");
        skipped("NOTE: runc 1.1 does not set domainname; only checked for brig");
        return;
    }
    assert_eq!(out, "brig.example\n");
}

#[test]
fn new_net_namespace_has_only_lo() {
    let out = sh_in_container("ns_net", |_| {}, "tail -n +3 /proc/net/dev | cut -d: -f1");
    let ifaces: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ifaces, ["lo"]);
}

/// Removes a SysV message queue on drop.
struct MsgQueue(i32);

impl Drop for MsgQueue {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID on a queue this test made; no buffer is used.
        unsafe { libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn ipc_namespace_hides_host_queues() {
    let key = 0x6272_0000 | (std::process::id() as i32 & 0xffff);
    // SAFETY: msgget has no memory arguments.
    let id = unsafe { libc::msgget(key, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
    let _queue = MsgQueue(id);
    let has_key = |table: &str| {
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&key.to_string()))
    };
    let host = std::fs::read_to_string("/proc/sysvipc/msg").expect("read host msg table");
    assert!(has_key(&host), "host does not see its own queue: {host}");
    let out = sh_in_container("ns_ipc", |_| {}, "cat /proc/sysvipc/msg");
    assert!(
        !has_key(&out),
        "the container sees the host's message queue: {out}"
    );
}

#[test]
fn namespaces_are_joined_by_path() {
    let a = Container::new("ns_join_a");
    a.edit(|cfg| cfg["hostname"] = json!("brig-a"));
    a.start_with(&["sleep", "30"]);
    let ns = |kind: &str| format!("/proc/{}/ns/{kind}", a.pid());
    let a_net = std::fs::read_link(ns("net")).expect("read A's net ns");
    let out = sh_in_container(
        "ns_join_b",
        |cfg| {
            cfg.as_object_mut()
                .expect("config object")
                .remove("hostname");
            let list = cfg["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces");
            for entry in list
                .iter_mut()
                .filter(|e| e["type"] == "uts" || e["type"] == "network")
            {
                let kind = if entry["type"] == "uts" { "uts" } else { "net" };
                entry["path"] = json!(ns(kind));
            }
        },
        "hostname; readlink /proc/self/ns/net",
    );
    assert_eq!(out, format!("brig-a\n{}\n", a_net.display()));
}

/// A container with a user namespace mapping 0 -> 100000 (65536 ids); the
/// rootfs is chowned to match, as a user-namespaced engine would.
fn userns(name: &str) -> Container {
    let c = Container::new(name);
    in_user_namespace(&c);
    c
}

#[test]
fn user_namespace_maps_ids() {
    let c = userns("ns_user");
    c.edit(|cfg| {
        let script = format!("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; {NS_LINKS}");
        set_sh(cfg, &script);
    });
    let out = c.run(&[]).ok().to_string();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    assert_eq!(lines.next(), Some("0"), "{out}");
    for _ in 0..2 {
        let map: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(map, ["0", "100000", "65536"], "{out}");
    }
    assert_ne!(ns_of(&out, "user"), host_ns("user"));
}

/// Bind sources under a directory only the host's root may enter (0700):
/// the runtime takes them before init enters the user namespace, so they
/// are mounted all the same (a directory bound non-recursively and
/// recursively, a file, and one relative to the bundle), for `run` and
/// for what `exec` sees. runc's userns.bats checks the same.
#[test]
fn user_namespace_bind_sources_the_namespace_cannot_reach() {
    let c = userns("ns_user_hidden_src");
    let secret = c.host_dir("secret");
    std::fs::create_dir_all(secret.join("dir/sub")).expect("make source dir");
    std::fs::write(secret.join("dir/foo.txt"), "foo\n").expect("write source file");
    std::fs::write(secret.join("file.txt"), "file\n").expect("write source file");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let in_bundle = c.bundle.join("hidden");
    std::fs::create_dir_all(in_bundle.join("dir")).expect("make bundle source");
    std::fs::write(in_bundle.join("dir/bar.txt"), "bar\n").expect("write bundle file");
    std::fs::set_permissions(&in_bundle, std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700");
    c.edit(|cfg| {
        // "bind" in options too: runc 1.1 goes by the flag, not the type.
        add_mount(cfg, bind(&secret.join("dir"), "/tmp/one", &["bind"]));
        add_mount(cfg, bind(&secret.join("dir"), "/tmp/two", &["rbind"]));
        add_mount(cfg, bind(&secret.join("file.txt"), "/tmp/file.txt", &["bind", "ro"]));
        add_mount(
            cfg,
            json!({"source": "hidden/dir", "destination": "/tmp/three", "type": "bind", "options": ["bind"]}),
        );
        set_args(cfg, &["sleep", "60"]);
    });
    c.create();
    c.start();
    let out = c.cmd(&[
        "exec",
        &c.id,
        "cat",
        "/tmp/one/foo.txt",
        "/tmp/two/foo.txt",
        "/tmp/file.txt",
        "/tmp/three/bar.txt",
    ]);
    assert_eq!(out.ok(), "foo\nfoo\nfile\nbar\n");
    let out = c.cmd(&["exec", &c.id, "sh", "-c", "echo x > /tmp/file.txt"]);
    assert!(!out.success(), "the file bind is read-only: {out}");
}

#[test]
fn user_namespace_files_belong_to_mapped_root() {
    let c = userns("ns_user_files");
    c.edit(|cfg| {
        writable_root(cfg);
        set_args(cfg, &["touch", "/made-inside"]);
    });
    c.run(&[]).ok();
    let made =
        std::fs::metadata(c.rootfs().join("made-inside")).expect("file made in the container");
    assert_eq!((made.uid(), made.gid()), (100000, 100000));
}

#[test]
fn cgroup_namespace_roots_the_container_cgroup() {
    let out = sh_in_container(
        "ns_cgroup",
        |cfg| add_namespace(cfg, json!({"type": "cgroup"})),
        &format!("cat /proc/self/cgroup; {NS_LINKS}"),
    );
    assert_ne!(ns_of(&out, "cgroup"), host_ns("cgroup"));
    let cgroups: Vec<&str> = out
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert!(!cgroups.is_empty(), "{out}");
    for line in cgroups {
        assert!(
            line.ends_with(":/"),
            "cgroup not at the namespace root: {line}\n{out}"
        );
    }
}

#[test]
fn time_namespace_applies_offsets() {
    assert!(
        Path::new("/proc/self/ns/time").exists(),
        "this kernel has no time namespaces"
    );
    if is_runc() {
        // Time namespaces came with runtime-spec 1.1; runc 1.1 rejects them
        // ("namespace {"time" ""} does not exist").
        skipped("NOTE: runc 1.1 has no time namespace support; only checked for brig");
        return;
    }
    let uptime = || -> f64 {
        let text = std::fs::read_to_string("/proc/uptime").expect("read uptime");
        text.split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("parse uptime")
    };
    let before = uptime();
    let out = sh_in_container(
        "ns_time",
        |cfg| {
            add_namespace(cfg, json!({"type": "time"}));
            cfg["linux"]["timeOffsets"] = json!({
                "boottime": {"secs": 1_000_000, "nanosecs": 0},
                "monotonic": {"secs": 500, "nanosecs": 0}
            });
        },
        &format!("cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime; {NS_LINKS}"),
    );
    let after = uptime();
    assert_ne!(ns_of(&out, "time"), host_ns("time"));
    let offsets: Vec<Vec<&str>> = out
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(offsets.contains(&vec!["monotonic", "500", "0"]), "{out}");
    assert!(offsets.contains(&vec!["boottime", "1000000", "0"]), "{out}");
    let inside: f64 = out
        .lines()
        .nth(2)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // /proc/uptime shows boottime, shifted by the offset (0.1 s for rounding).
    assert!(
        inside >= before + 1e6 - 0.1 && inside <= after + 1e6 + 0.1,
        "uptime inside {inside}, host {before}..{after}"
    );
}

/// A new network namespace's loopback is up, as runc leaves it: 127.0.0.1
/// answers inside.
#[test]
fn new_net_namespace_has_lo_up() {
    let out = sh_in_container("ns_lo", |_| {}, "cat /sys/class/net/lo/flags");
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("lo flags {out:?}: {e}"));
    assert_eq!(flags & 1, 1, "lo is down in the container (flags {out:?})");
}

/// Time offsets in a user namespace: written by init while it may still
/// open its own /proc/self (EACCES once it is not dumpable).
#[test]
fn time_namespace_offsets_in_a_user_namespace() {
    if is_runc() {
        skipped("NOTE: runc 1.1 has no time namespace support; only checked for brig");
        return;
    }
    let c = userns("ns_time_user");
    c.edit(|cfg| {
        add_namespace(cfg, json!({"type": "time"}));
        cfg["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 700, "nanosecs": 0}});
        set_sh(cfg, "cat /proc/self/timens_offsets");
    });
    let out = c.run(&[]);
    assert!(
        out.ok().contains("monotonic") && out.ok().contains("700"),
        "{out}"
    );
}

/// Without a mount namespace in linux.namespaces the container shares the
/// runtime's, as the spec says: the process is chrooted into the rootfs
/// and its mounts are made there (as runc does), and delete takes them
/// away again (runc leaves them on the host).
#[test]
fn without_a_mount_namespace_the_container_uses_the_runtimes() {
    let c = Container::new("ns_no_mnt");
    c.edit(|cfg| {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|n| n["type"] != "mount");
        // runc 1.1 refuses them without a mount namespace of the container's.
        cfg["linux"]["maskedPaths"] = json!([]);
        cfg["linux"]["readonlyPaths"] = json!([]);
        set_sh(cfg, "readlink /proc/self/ns/mnt; cat /etc/motd");
    });
    let out = c.run(&[]);
    assert_eq!(out.ok(), format!("{}\nbrig test rootfs\n", host_ns("mnt")));
    let left = mounts_under(&c.bundle);
    if is_runc() && !left.is_empty() {
        skipped(&format!(
            "NOTE: runc 1.1.5 leaves the container's mounts on the host: {left:?}"
        ));
        return;
    }
    c.assert_gone(None);
}

//! The container's filesystem: mounts, readonly root, masked and readonly
//! paths, /dev, devices, symlinked mount destinations, root propagation.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The /proc/mounts line of the mount on `target`, from `cat /proc/mounts`.
fn mount_line<'a>(mounts: &'a str, target: &str) -> &'a str {
    let line = mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(target));
    line.unwrap_or_else(|| panic!("nothing mounted on {target}:\n{mounts}"))
}

/// The comma-separated options of a /proc/mounts line.
fn options(line: &str) -> Vec<&str> {
    line.split(' ')
        .nth(3)
        .unwrap_or_default()
        .split(',')
        .collect()
}

/// A host dir `share` in the test dir holding `hello.txt` with `text`.
fn share(c: &Container, text: &str) -> PathBuf {
    let share = c.host_dir("share");
    fs::write(share.join("hello.txt"), text).expect("write host file");
    share
}

#[test]
fn bind_mount_shows_host_files_both_ways() {
    let c = Container::new("bind");
    let share = share(&c, "from host\n");
    c.edit(|cfg| {
        add_mount(cfg, bind(&share, "/mnt/share", &["bind"]));
        set_sh(
            cfg,
            "cat /mnt/share/hello.txt; echo from container >/mnt/share/back.txt",
        );
    });
    assert_eq!(c.run(&[]).ok(), "from host\n");
    assert_eq!(
        fs::read_to_string(share.join("back.txt")).expect("file written inside"),
        "from container\n"
    );
}

#[test]
fn rbind_takes_submounts_and_bind_does_not() {
    let c = Container::new("rbind");
    let top = c.host_dir("top");
    let sub = c.host_dir("top/sub");
    let _tmpfs = HostMount::tmpfs(&sub);
    fs::write(sub.join("deep.txt"), "deep\n").expect("write in submount");
    let script =
        "cat /mnt/r/sub/deep.txt; test -e /mnt/b/sub/deep.txt && echo bind-is-recursive; true";
    c.edit(|cfg| {
        add_mount(cfg, bind(&top, "/mnt/r", &["rbind"]));
        add_mount(cfg, bind(&top, "/mnt/b", &["bind"]));
        set_sh(cfg, script);
    });
    assert_eq!(c.run(&[]).ok(), "deep\n");
}

#[test]
fn tmpfs_mount_takes_size_and_mode() {
    let out = sh_in_container(
        "tmpfs",
        |cfg| {
            let opts = ["nosuid", "size=1m", "mode=0710"];
            add_mount(
                cfg,
                json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": opts}),
            );
        },
        "stat -c %a /mnt/t; echo x >/mnt/t/f && echo writable; cat /proc/mounts",
    );
    assert!(out.starts_with("710\nwritable\n"), "{out}");
    let line = mount_line(&out, "/mnt/t");
    assert!(line.starts_with("tmpfs /mnt/t tmpfs "), "{line}");
    let opts = options(line);
    for want in ["size=1024k", "mode=710", "nosuid"] {
        assert!(opts.contains(&want), "{want} missing: {line}");
    }
}

#[test]
fn proc_sysfs_and_mqueue_are_mounted() {
    // From the default spec: /proc, /sys (ro), /dev/mqueue.
    let out = sh_in_container(
        "special_fs",
        |_| {},
        "cat /proc/mounts; cat /proc/self/comm",
    );
    assert!(out.ends_with("cat\n"), "{out}");
    for (target, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        let line = mount_line(&out, target);
        assert_eq!(line.split(' ').nth(2), Some(fstype), "{line}");
    }
    assert!(
        options(mount_line(&out, "/sys")).contains(&"ro"),
        "/sys is not read-only"
    );
}

#[test]
fn devpts_takes_ptmxmode() {
    let out = sh_in_container(
        "devpts",
        |cfg| {
            let mounts = cfg["mounts"].as_array_mut().expect("mounts");
            let devpts = mounts
                .iter_mut()
                .find(|m| m["type"] == "devpts")
                .expect("default devpts mount");
            devpts["options"] = json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0600",
                "mode=0620",
                "gid=5"
            ]);
        },
        "stat -c %a /dev/pts/ptmx; cat /proc/mounts",
    );
    assert!(out.starts_with("600\n"), "{out}");
    let line = mount_line(&out, "/dev/pts");
    assert!(line.starts_with("devpts /dev/pts devpts "), "{line}");
    assert!(options(line).contains(&"ptmxmode=600"), "{line}");
}

#[test]
fn readonly_bind_mount_refuses_writes() {
    let c = Container::new("ro_bind");
    let share = share(&c, "read me\n");
    c.edit(|cfg| {
        add_mount(cfg, bind(&share, "/mnt/ro", &["bind", "ro"]));
        set_sh(
            cfg,
            "cat /mnt/ro/hello.txt; touch /mnt/ro/new 2>/dev/null || echo refused",
        );
    });
    assert_eq!(c.run(&[]).ok(), "read me\nrefused\n");
    assert!(!share.join("new").exists());
}

#[test]
fn readonly_root_refuses_writes_but_tmpfs_works() {
    let c = Container::new("ro_root");
    c.edit(|cfg| {
        cfg["root"]["readonly"] = json!(true);
        add_mount(cfg, json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
        let script = "touch /new 2>/dev/null || echo root-refused; touch /tmp/new && echo tmp-ok";
        set_sh(cfg, script);
    });
    assert_eq!(c.run(&[]).ok(), "root-refused\ntmp-ok\n");
    assert!(!c.rootfs().join("new").exists());
}

#[test]
fn masked_paths_are_empty() {
    let c = Container::new("masked");
    let etc = c.rootfs().join("etc");
    fs::write(etc.join("secret"), "top secret\n").expect("write secret");
    fs::create_dir(etc.join("secretdir")).expect("mkdir secretdir");
    fs::write(etc.join("secretdir/inner"), "also secret\n").expect("write inner");
    c.edit(|cfg| {
        cfg["linux"]["maskedPaths"] = json!(["/etc/secret", "/etc/secretdir"]);
        let script = "echo \"[$(cat /etc/secret)]\"; ls -A /etc/secretdir | wc -l; cat /etc/motd";
        set_sh(cfg, script);
    });
    assert_eq!(c.run(&[]).ok(), "[]\n0\nbrig test rootfs\n");
}

#[test]
fn readonly_paths_refuse_writes() {
    let c = Container::new("ro_paths");
    fs::create_dir(c.rootfs().join("etc/rodir")).expect("mkdir rodir");
    c.edit(|cfg| {
        writable_root(cfg);
        cfg["linux"]["readonlyPaths"] = json!(["/etc/rodir"]);
        let script =
            "touch /etc/rodir/new 2>/dev/null || echo refused; touch /etc/new && echo rest-ok";
        set_sh(cfg, script);
    });
    assert_eq!(c.run(&[]).ok(), "refused\nrest-ok\n");
    assert!(!c.rootfs().join("etc/rodir/new").exists());
}

#[test]
fn dev_has_the_standard_nodes_and_links() {
    let script = "cd /dev; stat -c '%n %F %t:%T' null zero full random urandom tty; \
                  for l in fd stdin stdout stderr; do echo \"$l -> $(readlink $l)\"; done; \
                  test -d pts && test -d shm && echo dirs-ok; \
                  test -c ptmx && echo ptmx-ok; \
                  head -c 3 zero | wc -c; echo x >full 2>/dev/null || echo full-refused; echo x >null && echo null-ok";
    let out = sh_in_container("dev", |_| {}, script);
    let want = "null character special file 1:3\n\
                zero character special file 1:5\n\
                full character special file 1:7\n\
                random character special file 1:8\n\
                urandom character special file 1:9\n\
                tty character special file 5:0\n\
                fd -> /proc/self/fd\n\
                stdin -> /proc/self/fd/0\n\
                stdout -> /proc/self/fd/1\n\
                stderr -> /proc/self/fd/2\n\
                dirs-ok\n\
                ptmx-ok\n\
                3\n\
                full-refused\n\
                null-ok\n";
    assert_eq!(out, want);
}

#[test]
fn linux_devices_are_created() {
    let out = sh_in_container(
        "devices",
        |cfg| {
            cfg["linux"]["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
                {"path": "/dev/brig/custom", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1, "gid": 5}
            ]);
        },
        "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse /dev/brig/custom",
    );
    assert_eq!(
        out,
        "/dev/fuse character special file a:e5 666 0:0\n/dev/brig/custom character special file 1:3 640 1:5\n"
    );
}

#[test]
fn symlinked_mount_destination_stays_in_the_rootfs() {
    let c = Container::new("symlink_dest");
    let share = share(&c, "inside\n");
    let outside = c.dir.join("outside");
    let (abs_target, rel_target) = (outside.join("abs"), outside.join("rel"));
    let ups = "../".repeat(12);
    let rootfs = c.rootfs();
    std::os::unix::fs::symlink(&abs_target, rootfs.join("evil-abs")).expect("symlink");
    std::os::unix::fs::symlink(
        format!("/etc/{ups}{}", p(&rel_target)),
        rootfs.join("evil-rel"),
    )
    .expect("symlink");
    c.edit(|cfg| {
        add_mount(cfg, bind(&share, "/evil-abs", &["rbind"]));
        add_mount(cfg, bind(&share, "/evil-rel", &["rbind"]));
        set_sh(cfg, "cat /evil-abs/hello.txt /evil-rel/hello.txt");
    });
    // The symlinks resolve inside the rootfs: the mounts land there.
    assert_eq!(c.run(&[]).ok(), "inside\ninside\n");
    assert!(
        !outside.exists(),
        "the runtime followed a rootfs symlink onto the host: {outside:?} exists"
    );
}

/// The optional fields (propagation) of the container's root mount in
/// /proc/self/mountinfo, e.g. "master:1", with the bundle on a shared host
/// mount so that every propagation type is visible.
fn root_propagation(name: &str, propagation: Option<&str>) -> String {
    let c = Container::new(name);
    let _shared = HostMount::shared_bind(&c.dir);
    c.edit(|cfg: &mut Value| {
        if let Some(prop) = propagation {
            cfg["linux"]["rootfsPropagation"] = json!(prop);
        }
        set_args(cfg, &["cat", "/proc/self/mountinfo"]);
    });
    let out = c.run(&[]).ok().to_string();
    let root = out.lines().find(|l| l.split(' ').nth(4) == Some("/"));
    let fields: Vec<&str> = root
        .unwrap_or_else(|| panic!("no / in {out}"))
        .split(' ')
        .collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .expect("mountinfo separator");
    fields[6..sep].join(" ")
}

#[test]
fn rootfs_propagation_private() {
    assert_eq!(root_propagation("prop_private", Some("private")), "");
}

#[test]
fn rootfs_propagation_default_is_rslave() {
    // OCI leaves the default open; runc's (which containerd relies on) is
    // rslave: host mounts propagate in, container mounts don't go out.
    let fields = root_propagation("prop_default", None);
    assert!(
        fields.starts_with("master:") && !fields.contains("shared:"),
        "{fields:?}"
    );
}

/// Checks a rootfsPropagation value that runc 1.1 gets wrong: it applies
/// "slave" without MS_REC and then makes the rootfs parent private, and never
/// applies "shared"/"unbindable" (runc #1755, fixed in runc 1.2/1.3).
fn propagation_runc_gets_wrong(name: &str, value: &str, field: &str) {
    if is_runc() {
        skipped(&format!("NOTE: runc 1.1 does not apply rootfsPropagation {value} (runc #1755); only checked for brig"));
        return;
    }
    let fields = root_propagation(name, Some(value));
    assert!(
        fields.split(' ').any(|f| f.starts_with(field)),
        "{value}: {fields:?}"
    );
}

#[test]
fn rootfs_propagation_slave() {
    propagation_runc_gets_wrong("prop_slave", "slave", "master:");
}

#[test]
fn rootfs_propagation_shared() {
    propagation_runc_gets_wrong("prop_shared", "shared", "shared:");
}

#[test]
fn rootfs_propagation_unbindable() {
    propagation_runc_gets_wrong("prop_unbindable", "unbindable", "unbindable");
}

/// A bind mount with `rshared` stays shared inside the container (its
/// mountinfo shows a peer group), and with rootfsPropagation rshared a
/// mount made under it in the container appears on the host, as with runc.
/// brig used to make the whole new root a slave after pivot_root, which
/// undid both.
#[test]
fn rshared_bind_mounts_propagate() {
    for root_prop in [None, Some("rshared")] {
        let c = Container::new("rshared_bind");
        let share = c.host_dir("share");
        fs::create_dir(share.join("sub")).expect("make sub");
        let _shared = HostMount::shared_bind(&share);
        c.edit(|cfg: &mut Value| {
            if let Some(p) = root_prop {
                cfg["linux"]["rootfsPropagation"] = json!(p);
            }
            for set in ["bounding", "effective", "permitted"] {
                cfg["process"]["capabilities"][set]
                    .as_array_mut()
                    .expect("capability set")
                    .push(json!("CAP_SYS_ADMIN"));
            }
            add_mount(cfg, bind(&share, "/mnt", &["rbind", "rshared"]));
            set_sh(
                cfg,
                "mount -t tmpfs made-inside /mnt/sub && grep ' /mnt ' /proc/self/mountinfo",
            );
        });
        let out = c.run(&[]);
        let line = out.ok().to_string();
        assert!(
            line.contains(" shared:"),
            "{root_prop:?}: /mnt is not shared: {line}"
        );
        let on_host = mounts_under(&share).iter().any(|m| m.ends_with("/sub"));
        assert_eq!(
            on_host,
            root_prop.is_some(),
            "{root_prop:?}: the container's mount on the host: {:?}",
            mounts_under(&share)
        );
    }
}

/// `rro` and friends reach every mount below the destination (Docker 25's
/// recursively read-only `:ro`), where plain `ro` stops at the top one.
#[test]
fn recursive_options_reach_submounts() {
    let c = Container::new("rro");
    let top = c.host_dir("top");
    let sub = c.host_dir("top/sub");
    let _tmpfs = HostMount::tmpfs(&sub);
    fs::write(sub.join("run.sh"), "#!/bin/sh\necho ran\n").expect("write script");
    fs::set_permissions(sub.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = "touch /mnt/ro/sub/new 2>/dev/null && echo ro-sub-writable; \
                  touch /mnt/rro/new 2>/dev/null || echo rro-top-refused; \
                  touch /mnt/rro/sub/new 2>/dev/null || echo rro-sub-refused; \
                  /mnt/rnoexec/sub/run.sh 2>/dev/null || echo rnoexec-sub-refused; \
                  /mnt/ro/sub/run.sh; \
                  grep -E ' /mnt/(rro|rnoatime)/sub ' /proc/mounts";
    c.edit(|cfg| {
        add_mount(cfg, bind(&top, "/mnt/ro", &["rbind", "ro"]));
        add_mount(cfg, bind(&top, "/mnt/rro", &["rbind", "rro"]));
        add_mount(
            cfg,
            bind(&top, "/mnt/rnoexec", &["rbind", "rnoexec", "rnosuid"]),
        );
        add_mount(
            cfg,
            bind(&top, "/mnt/rexec", &["rbind", "rnoexec", "rexec"]),
        );
        add_mount(
            cfg,
            bind(&top, "/mnt/rnoatime", &["rbind", "rnoatime", "rnodev"]),
        );
        set_sh(cfg, script);
    });
    let out = c.run(&[]).ok().to_string();
    let mut lines = out.lines();
    let want = [
        "ro-sub-writable",
        "rro-top-refused",
        "rro-sub-refused",
        "rnoexec-sub-refused",
        "ran",
    ];
    for w in want {
        assert_eq!(lines.next(), Some(w), "{out}");
    }
    let rro = mount_line(&out, "/mnt/rro/sub");
    assert!(options(rro).contains(&"ro"), "{rro}");
    let rnoatime = options(mount_line(&out, "/mnt/rnoatime/sub"));
    for want in ["noatime", "nodev"] {
        assert!(rnoatime.contains(&want), "{want} missing: {rnoatime:?}");
    }
}

/// `features` lists the recursive options it applies, as runc's does.
#[test]
fn features_lists_recursive_mount_options() {
    let c = Container::new("features_rro");
    let out = c.cmd(&["features"]);
    let features: Value = serde_json::from_str(out.ok()).expect("features is JSON");
    let listed = features["mountOptions"].as_array().expect("mountOptions");
    for want in [
        "rro",
        "rrw",
        "rnosuid",
        "rnodev",
        "rnoexec",
        "rnoatime",
        "rnosymfollow",
    ] {
        assert!(listed.iter().any(|o| o == want), "{want} not in {listed:?}");
    }
}

/// A rootfs whose /proc or /sys is a symlink is refused (CVE-2019-19921
/// class): the container's procfs would land where its masks do not reach.
#[test]
fn proc_or_sys_as_a_symlink_is_refused() {
    for (name, dir, fs_type) in [("proc_link", "proc", "proc"), ("sys_link", "sys", "sysfs")] {
        let c = Container::new(name);
        let path = c.rootfs().join(dir);
        fs::create_dir_all(c.rootfs().join("elsewhere")).expect("mkdir elsewhere");
        let _ = fs::remove_dir(&path);
        std::os::unix::fs::symlink("/elsewhere", &path).expect("symlink");
        let out = c.try_create(&[]);
        assert!(!out.success(), "{name}: created: {out}");
        let err = out.err();
        assert!(
            err.contains(&format!("/{dir}")) && err.contains("ordinary directory"),
            "{name}: {err}"
        );
        assert!(err.contains(fs_type), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(
            fs::read_dir(c.rootfs().join("elsewhere"))
                .expect("read elsewhere")
                .next()
                .is_none(),
            "{name}: something was mounted through the symlink"
        );
        c.assert_gone(None);
    }
}

/// A destination that is a dangling symlink gets its target made inside
/// the rootfs, for a file bind as for a directory, never on the host.
#[test]
fn dangling_symlink_destination_is_created_inside() {
    let c = Container::new("dangling_dest");
    let share = share(&c, "inside\n");
    let outside = c.dir.join("outside");
    let rootfs = c.rootfs();
    std::os::unix::fs::symlink(outside.join("file"), rootfs.join("etc/file-link"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.join("dir"), rootfs.join("dir-link")).expect("symlink");
    std::os::unix::fs::symlink("../srv/made/here", rootfs.join("etc/rel-link")).expect("symlink");
    c.edit(|cfg| {
        add_mount(
            cfg,
            bind(&share.join("hello.txt"), "/etc/file-link", &["bind"]),
        );
        add_mount(
            cfg,
            bind(&share.join("hello.txt"), "/etc/rel-link", &["bind"]),
        );
        add_mount(cfg, bind(&share, "/dir-link", &["rbind"]));
        set_sh(cfg, "cat /etc/file-link /etc/rel-link /dir-link/hello.txt");
    });
    assert_eq!(c.run(&[]).ok(), "inside\ninside\ninside\n");
    assert!(!outside.exists(), "made on the host: {outside:?}");
    assert!(rootfs
        .join(p(&outside).trim_start_matches('/'))
        .join("file")
        .is_file());
    assert!(rootfs.join("srv/made/here").is_file());
}

/// process.scheduler flags as the runtime spec spells them (oci-spec 0.10
/// spells two of them otherwise). Here with the scheduler item of the
/// issue's mounts section, for want of a file of its own.
#[test]
fn scheduler_flags_take_the_spec_spelling() {
    if is_runc() {
        eprintln!("NOTE: runc 1.1.5 does not apply process.scheduler (runc 1.2 does); only checked for brig");
        return;
    }
    // Reset-on-fork: the shell runs at nice -5, the cat it forks at 0.
    let out = sh_in_container(
        "sched_flags",
        |cfg| {
            cfg["process"]["scheduler"] = json!({
                "policy": "SCHED_OTHER",
                "nice": -5,
                "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]
            });
        },
        // cat runs in a forked child (busybox runs cut itself in-process).
        "cut -d' ' -f19 /proc/$$/stat; cat /proc/self/stat | cut -d' ' -f19",
    );
    assert_eq!(out, "-5\n0\n");
}

/// A read-only /dev still gets its nodes and links: populated first, then
/// made read-only.
#[test]
fn readonly_dev_is_populated_then_readonly() {
    let out = sh_in_container(
        "ro_dev",
        |cfg| {
            let mounts = cfg["mounts"].as_array_mut().expect("mounts");
            let dev = mounts
                .iter_mut()
                .find(|m| m["destination"] == "/dev")
                .expect("default /dev mount");
            dev["options"] = json!(["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]);
        },
        "test -c /dev/null && test -L /dev/stdout && echo nodes-ok; \
         echo x >/dev/null && echo null-ok; touch /dev/new 2>/dev/null || echo dev-refused; \
         cat /proc/mounts",
    );
    assert!(out.starts_with("nodes-ok\nnull-ok\ndev-refused\n"), "{out}");
    let opts = options(mount_line(&out, "/dev"));
    for want in ["ro", "nosuid"] {
        assert!(opts.contains(&want), "{want} missing: {opts:?}");
    }
}

/// A tmpfs without `mode=` takes the mode of the directory it covers; one
/// with it keeps it, also through tmpcopyup, which copies the content with
/// its owners, modes and links (podman's `--tmpfs /x:mode=1777`).
#[test]
fn tmpfs_mode_and_tmpcopyup() {
    let c = Container::new("tmpfs_mode");
    let rootfs = c.rootfs();
    for (dir, mode) in [("covered", 0o710), ("seeded", 0o755)] {
        fs::create_dir(rootfs.join(dir)).expect("mkdir");
        fs::set_permissions(rootfs.join(dir), fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let seeded = rootfs.join("seeded");
    fs::create_dir(seeded.join("sub")).expect("mkdir sub");
    fs::write(seeded.join("sub/file"), "seed\n").expect("write seed");
    fs::set_permissions(seeded.join("sub/file"), fs::Permissions::from_mode(0o640)).expect("chmod");
    std::os::unix::fs::chown(seeded.join("sub/file"), Some(7), Some(8)).expect("chown");
    std::os::unix::fs::symlink("sub/file", seeded.join("link")).expect("symlink");
    fs::hard_link(seeded.join("sub/file"), seeded.join("hard")).expect("hard link");
    c.edit(|cfg| {
        add_mount(
            cfg,
            json!({"destination": "/covered", "type": "tmpfs", "source": "tmpfs"}),
        );
        add_mount(
            cfg,
            json!({"destination": "/seeded", "type": "tmpfs", "source": "tmpfs",
                   "options": ["tmpcopyup", "mode=1777"]}),
        );
        set_sh(
            cfg,
            "stat -c '%a' /covered /seeded; stat -c '%a %u:%g %h' /seeded/sub/file; \
             readlink /seeded/link; stat -c %i /seeded/hard /seeded/sub/file | uniq | wc -l; \
             grep -c ' /seeded tmpfs ' /proc/mounts",
        );
    });
    let out = c.run(&[]).ok().to_string();
    if is_runc() {
        eprintln!("NOTE: runc 1.1.5 gives a tmpcopyup tmpfs the covered directory's mode over mode= and splits hard links; only the rest checked");
        assert!(
            out.starts_with("710\n755\n640 7:8 1\nsub/file\n2\n1\n"),
            "{out}"
        );
        return;
    }
    assert_eq!(out, "710\n1777\n640 7:8 2\nsub/file\n1\n1\n");
}

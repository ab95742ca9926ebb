//! config.md root and mounts; config-linux.md default filesystems,
//! maskedPaths, readonlyPaths, rootfsPropagation.

use crate::config::add_mount;
use crate::harness::{Case, Ctx, TResult, Test};
use crate::{check, tests};
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;

pub fn tests() -> Vec<Test> {
    tests![
        mounts_default_filesystems,
        mounts_in_listed_order,
        mounts_tmpfs_flags,
        mounts_tmpfs_data_options,
        mounts_bind,
        mounts_bind_relative_source,
        mounts_bind_file,
        mounts_bind_ro,
        mounts_rbind_vs_bind,
        masked_paths,
        readonly_paths,
        root_readonly,
        root_writable,
        rootfs_propagation_shared,
        rootfs_propagation_unbindable,
    ]
}

const EROFS: i64 = libc::EROFS as i64;

/// The report's mounts whose mount point is `at`, in mountinfo order.
fn mounts_at<'a>(r: &'a Value, at: &str) -> Vec<&'a Value> {
    r["mounts"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["mount_point"] == at).collect())
        .unwrap_or_default()
}

/// The top (last) mount at `at`.
fn top<'a>(r: &'a Value, at: &str) -> Option<&'a Value> {
    mounts_at(r, at).last().copied()
}

fn has_opt(m: &Value, key: &str, opt: &str) -> bool {
    m[key].as_str().unwrap_or("").split(',').any(|o| o == opt)
}

/// config-linux.md default filesystems (/proc, /sys, /dev/pts, /dev/shm),
/// and every mount of the default config, with its type.
fn mounts_default_filesystems(c: &mut Case) -> TResult {
    let b = c.bundle()?;
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    for (at, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        match top(&r, at) {
            None => errors.push(format!("nothing mounted at {at}")),
            Some(m) if m["fstype"] != fstype => {
                errors.push(format!("{at} is {} not {fstype}", m["fstype"]))
            }
            Some(m) => {
                // The options of the default config.
                let want: &[&str] = match at {
                    "/dev/pts" | "/dev/mqueue" => &["nosuid", "noexec"],
                    "/dev/shm" => &["nosuid", "noexec", "nodev"],
                    "/sys" => &["nosuid", "noexec", "nodev", "ro"],
                    "/dev" => &["nosuid"],
                    _ => &[],
                };
                for o in want {
                    if !has_opt(m, "options", o) {
                        errors.push(format!("{at} lacks {o}: {}", m["options"]));
                    }
                }
            }
        }
    }
    let cg = top(&r, "/sys/fs/cgroup");
    let cg_ok = cg.is_some_and(|m| {
        m["fstype"]
            .as_str()
            .is_some_and(|t| t.starts_with("cgroup") || t == "tmpfs")
    });
    if !cg_ok {
        errors.push(format!("/sys/fs/cgroup is {:?}", cg.map(|m| &m["fstype"])));
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// "The runtime MUST mount entries in the listed order": a tmpfs over a
/// bind mount's subdirectory is visible only if the bind came first; of two
/// mounts at one place the second is on top. (Sizes tell the tmpfs
/// mounts apart: runc resets a tmpfs root's mode to the mount point's.)
fn mounts_in_listed_order(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let src = c.host_dir("src")?;
    fs::create_dir_all(src.join("sub")).ctx("mkdir")?;
    fs::write(src.join("sub/hidden"), "x").ctx("write")?;
    for d in ["/mnt/a", "/mnt/c"] {
        b.mkdir(d)?;
    }
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/a", "type": "bind", "source": src.display().to_string(), "options": ["bind"]}),
    );
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/a/sub", "type": "tmpfs", "source": "over-bind", "options": ["size=1m"]}),
    );
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/c", "type": "tmpfs", "source": "first", "options": ["size=1m"]}),
    );
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/c", "type": "tmpfs", "source": "second", "options": ["size=2m"]}),
    );
    b.probe(&["--path", "/mnt/a/sub", "--path", "/mnt/c"]);
    let r = c.run_probe(&b)?;
    let sub = &r["paths"]["/mnt/a/sub"];
    check!(
        sub["entries"] == 0 && sub["vfs"]["bytes"] == 1 << 20,
        "/mnt/a/sub is not the tmpfs mounted over the bind: {sub}"
    );
    let at_c = mounts_at(&r, "/mnt/c");
    let sources: Vec<&str> = at_c.iter().filter_map(|m| m["source"].as_str()).collect();
    check!(
        sources == ["first", "second"],
        "mounts at /mnt/c in order: {sources:?}"
    );
    check!(
        r["paths"]["/mnt/c"]["vfs"]["bytes"] == 2 << 20,
        "the top mount at /mnt/c is not the second one: {}",
        r["paths"]["/mnt/c"]
    );
    Ok(())
}

/// Mount options ro, nosuid, nodev, noexec, noatime on a tmpfs: in the
/// mount's flags (statvfs) and in mountinfo.
fn mounts_tmpfs_flags(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.mkdir("/mnt/flags")?;
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/flags", "type": "tmpfs", "source": "tmpfs",
               "options": ["ro", "nosuid", "nodev", "noexec", "noatime"]}),
    );
    b.probe(&["--path", "/mnt/flags"]);
    let r = c.run_probe(&b)?;
    let vfs = &r["paths"]["/mnt/flags"]["vfs"];
    for flag in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        check!(vfs[flag] == true, "/mnt/flags is not {flag}: {vfs}");
    }
    let m = top(&r, "/mnt/flags").ctx("no mount at /mnt/flags")?;
    check!(m["fstype"] == "tmpfs", "/mnt/flags is {}", m["fstype"]);
    Ok(())
}

/// "Runtimes SHOULD treat unknown options as filesystem-specific ones and
/// pass those ... to mount(2)": tmpfs size and mode.
fn mounts_tmpfs_data_options(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    // No mount point in the rootfs: the runtime makes it. (runc resets the
    // root of a tmpfs to the mode of an existing mount point.)
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/data", "type": "tmpfs", "source": "tmpfs",
               "options": ["size=2m", "mode=710", "nr_inodes=1k"]}),
    );
    b.probe(&["--path", "/mnt/data"]);
    let r = c.run_probe(&b)?;
    let p = &r["paths"]["/mnt/data"];
    check!(
        p["vfs"]["bytes"] == 2 * 1024 * 1024,
        "size of /mnt/data is {} bytes, want 2 MiB",
        p["vfs"]["bytes"]
    );
    check!(
        p["mode"] == 0o710,
        "mode of /mnt/data is {:o}",
        p["mode"].as_u64().unwrap_or(0)
    );
    let m = top(&r, "/mnt/data").ctx("no mount at /mnt/data")?;
    check!(
        has_opt(m, "super_options", "nr_inodes=1024"),
        "nr_inodes not applied: {}",
        m["super_options"]
    );
    Ok(())
}

/// A bind mount: the host directory's files are seen, and the container's
/// writes reach the host.
fn mounts_bind(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let src = c.host_dir("shared")?;
    fs::write(src.join("from-host"), "hello").ctx("write")?;
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/bind", "type": "none", "source": src.display().to_string(), "options": ["bind"]}),
    );
    b.probe(&[
        "--read",
        "/mnt/bind/from-host",
        "--create",
        "/mnt/bind/from-container",
    ]);
    let r = c.run_probe(&b)?;
    check!(
        r["reads"]["/mnt/bind/from-host"]["text"] == "hello",
        "read through the bind: {}",
        r["reads"]["/mnt/bind/from-host"]
    );
    check!(
        r["creates"]["/mnt/bind/from-container"]["ok"] == true,
        "create through the bind: {}",
        r["creates"]["/mnt/bind/from-container"]
    );
    check!(
        src.join("from-container").exists(),
        "the container's file did not reach the host dir"
    );
    Ok(())
}

/// config.md mounts source: "Path values for bind mounts are either
/// absolute or relative to the bundle."
fn mounts_bind_relative_source(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    fs::create_dir_all(b.dir.join("volume")).ctx("mkdir")?;
    fs::write(b.dir.join("volume/marker"), "relative").ctx("write")?;
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/rel", "type": "bind", "source": "volume", "options": ["rbind"]}),
    );
    b.probe(&["--read", "/mnt/rel/marker"]);
    let r = c.run_probe(&b)?;
    check!(
        r["reads"]["/mnt/rel/marker"]["text"] == "relative",
        "read of /mnt/rel/marker: {}",
        r["reads"]["/mnt/rel/marker"]
    );
    Ok(())
}

/// A bind mount of a single file onto a file.
fn mounts_bind_file(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let src = c.host_dir("files")?;
    fs::write(src.join("hosts"), "10.0.0.1 cf\n").ctx("write")?;
    b.write_file("/etc/hosts", "")?;
    add_mount(
        &mut b.config,
        json!({"destination": "/etc/hosts", "type": "bind", "source": src.join("hosts").display().to_string(), "options": ["bind", "ro"]}),
    );
    b.probe(&["--read", "/etc/hosts", "--openw", "/etc/hosts"]);
    let r = c.run_probe(&b)?;
    check!(
        r["reads"]["/etc/hosts"]["text"] == "10.0.0.1 cf\n",
        "/etc/hosts reads {}",
        r["reads"]["/etc/hosts"]
    );
    check!(
        r["openw"]["/etc/hosts"]["errno"] == EROFS,
        "the ro file bind is writable: {}",
        r["openw"]["/etc/hosts"]
    );
    Ok(())
}

/// A bind mount with ro (and nosuid, nodev, noexec): flags applied.
fn mounts_bind_ro(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let src = c.host_dir("ro")?;
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/ro", "type": "bind", "source": src.display().to_string(),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
    );
    b.probe(&["--path", "/mnt/ro", "--create", "/mnt/ro/file"]);
    let r = c.run_probe(&b)?;
    let vfs = &r["paths"]["/mnt/ro"]["vfs"];
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        check!(vfs[flag] == true, "the bind mount is not {flag}: {vfs}");
    }
    check!(
        r["creates"]["/mnt/ro/file"]["errno"] == EROFS,
        "create in the ro bind: {}",
        r["creates"]["/mnt/ro/file"]
    );
    check!(!src.join("file").exists(), "the file reached the host");
    Ok(())
}

/// bind vs rbind (mount(8) semantics): only rbind brings the mounts under
/// the source along.
fn mounts_rbind_vs_bind(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let src = c.host_dir("tree")?;
    fs::create_dir_all(src.join("sub")).ctx("mkdir")?;
    let sub = CString::new(src.join("sub").display().to_string()).ctx("path")?;
    // SAFETY: mount(2) with valid C strings; Case's drop detaches it.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            sub.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"mode=755".as_ptr().cast(),
        )
    };
    check!(
        rc == 0,
        "mount a tmpfs on the host: {}",
        std::io::Error::last_os_error()
    );
    fs::write(src.join("sub/in-submount"), "x").ctx("write")?;
    let s = src.display().to_string();
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/rbind", "type": "bind", "source": s, "options": ["rbind"]}),
    );
    add_mount(
        &mut b.config,
        json!({"destination": "/mnt/bind", "type": "bind", "source": s, "options": ["bind"]}),
    );
    b.probe(&[
        "--path",
        "/mnt/rbind/sub/in-submount",
        "--path",
        "/mnt/bind/sub/in-submount",
    ]);
    let r = c.run_probe(&b)?;
    check!(
        r["paths"]["/mnt/rbind/sub/in-submount"]["exists"] == true,
        "rbind did not bring the submount along"
    );
    check!(
        r["paths"]["/mnt/bind/sub/in-submount"]["exists"] == false,
        "bind (not rbind) brought the submount along"
    );
    Ok(())
}

/// maskedPaths "will mask over the provided paths inside the container so
/// that they cannot be read": files read empty, directories list empty.
fn masked_paths(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.mkdir("/etc/cf-secret-dir")?;
    b.write_file("/etc/cf-secret-dir/key", "secret")?;
    b.write_file("/etc/cf-secret-file", "secret")?;
    let masked = b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .ctx("maskedPaths")?;
    masked.push(json!("/etc/cf-secret-dir"));
    masked.push(json!("/etc/cf-secret-file"));
    let files = [
        "/etc/cf-secret-file",
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
    ];
    let mut opts = vec!["--path", "/etc/cf-secret-dir", "--path", "/sys/firmware"];
    for f in files {
        opts.extend_from_slice(&["--read", f]);
    }
    b.probe(&opts);
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    for f in files {
        let rd = &r["reads"][f];
        // A masked file reads as empty, or cannot be opened at all.
        let readable = rd["ok"] == true && rd["len"].as_u64().unwrap_or(0) > 0;
        if readable {
            errors.push(format!("{f} is readable: {} bytes", rd["len"]));
        }
    }
    for d in ["/etc/cf-secret-dir", "/sys/firmware"] {
        let p = &r["paths"][d];
        if p["exists"] == true && p["entries"] != 0 {
            errors.push(format!("{d} lists {} entries", p["entries"]));
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// readonlyPaths "will set the provided paths as readonly inside the
/// container": writes fail with EROFS, in directories and on files.
fn readonly_paths(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.mkdir("/etc/cf-ro-dir")?;
    b.write_file("/etc/cf-ro-file", "x")?;
    let ro = b.config["linux"]["readonlyPaths"]
        .as_array_mut()
        .ctx("readonlyPaths")?;
    ro.push(json!("/etc/cf-ro-dir"));
    ro.push(json!("/etc/cf-ro-file"));
    b.probe(&[
        "--path",
        "/proc/sys",
        "--openw",
        "/proc/sys/kernel/hostname",
        "--openw",
        "/proc/sysrq-trigger",
        "--create",
        "/etc/cf-ro-dir/new",
        "--openw",
        "/etc/cf-ro-file",
        "--create",
        "/etc/cf-writable",
    ]);
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    if r["paths"]["/proc/sys"]["vfs"]["ro"] != true {
        errors.push("/proc/sys is not a read-only mount".to_string());
    }
    for (key, p) in [
        ("openw", "/proc/sys/kernel/hostname"),
        ("openw", "/proc/sysrq-trigger"),
        ("creates", "/etc/cf-ro-dir/new"),
        ("openw", "/etc/cf-ro-file"),
    ] {
        // A kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger.
        if p == "/proc/sysrq-trigger" && !std::path::Path::new(p).exists() {
            continue;
        }
        if r[key][p]["errno"] != EROFS {
            errors.push(format!("writing {p}: {}, want EROFS", r[key][p]));
        }
    }
    if r["creates"]["/etc/cf-writable"]["ok"] != true {
        errors.push(format!(
            "the rest of /etc became read-only: {}",
            r["creates"]["/etc/cf-writable"]
        ));
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// root.readonly true: "the root filesystem MUST be read-only inside the
/// container".
fn root_readonly(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["root"]["readonly"] = json!(true);
    b.probe(&[
        "--path",
        "/",
        "--create",
        "/cf-new",
        "--create",
        "/etc/cf-new",
    ]);
    let r = c.run_probe(&b)?;
    check!(
        r["paths"]["/"]["vfs"]["ro"] == true,
        "/ is not a read-only mount: {}",
        r["paths"]["/"]["vfs"]
    );
    for p in ["/cf-new", "/etc/cf-new"] {
        check!(
            r["creates"][p]["errno"] == EROFS,
            "create {p}: {}, want EROFS",
            r["creates"][p]
        );
    }
    Ok(())
}

/// root.readonly false (the default): the root is writable.
fn root_writable(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["root"]["readonly"] = json!(false);
    b.probe(&["--path", "/", "--create", "/cf-new"]);
    let r = c.run_probe(&b)?;
    check!(r["paths"]["/"]["vfs"]["ro"] == false, "/ is read-only");
    check!(
        r["creates"]["/cf-new"]["ok"] == true,
        "create /cf-new: {}",
        r["creates"]["/cf-new"]
    );
    check!(
        b.host_path("/cf-new").exists(),
        "the file is not in the bundle's rootfs"
    );
    Ok(())
}

/// rootfsPropagation shared: "the rootfs mount belongs to a new peer
/// group". runc 1.1 deviates: its / ends up in no peer group (crun's is).
fn rootfs_propagation_shared(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    let r = c.run_probe(&b)?;
    let root = top(&r, "/").ctx("no / in mountinfo")?;
    check!(
        root["optional"].as_str().unwrap_or("").contains("shared:"),
        "/ is not shared: optional fields {:?}",
        root["optional"]
    );
    Ok(())
}

/// rootfsPropagation unbindable: "the rootfs mount is a private mount that
/// cannot be bind-mounted". runc 1.1 deviates: it makes the whole tree
/// unbindable before it bind-mounts the rootfs, and that bind fails
/// (EINVAL), so create fails.
fn rootfs_propagation_unbindable(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["linux"]["rootfsPropagation"] = json!("unbindable");
    let r = c.run_probe(&b)?;
    let root = top(&r, "/").ctx("no / in mountinfo")?;
    check!(
        root["optional"]
            .as_str()
            .unwrap_or("")
            .contains("unbindable"),
        "/ is not unbindable: optional fields {:?}",
        root["optional"]
    );
    Ok(())
}

//! Rootless: the runtime run by an unprivileged user that the test makes
//! (`brigtest-rl`, kept between runs, with subuid/subgid ranges), through
//! setpriv, with its own XDG_RUNTIME_DIR. Every scenario also runs with
//! Debian's runc (BRIG_TEST_RUNTIME=runc); a NOTE marks where runc 1.1.5
//! says things its own way. Needs root (to make the user and hand it a
//! bundle) and setpriv, newuidmap and newgidmap (Debian's util-linux and
//! uidmap packages).

mod common;
mod image_common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const USER: &str = "brigtest-rl";

/// The test user: uid, gid, and the first subordinate uid and gid ranges.
struct TestUser {
    uid: u32,
    gid: u32,
    subuid: (u32, u32),
    subgid: (u32, u32),
}

fn first_range(file: &str, name: &str) -> Option<(u32, u32)> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

fn user() -> &'static TestUser {
    static U: OnceLock<TestUser> = OnceLock::new();
    U.get_or_init(|| {
        for tool in ["setpriv", "newuidmap", "newgidmap", "useradd"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is missing (Debian: util-linux, uidmap, passwd)"
            );
        }
        let (uid, gid) = ensure_user(USER, &[]);
        if first_range("/etc/subuid", USER).is_none() {
            exec(Command::new("usermod").args([
                "--add-subuids",
                "300000-365535",
                "--add-subgids",
                "300000-365535",
                USER,
            ]))
            .ok();
        }
        TestUser {
            uid,
            gid,
            subuid: first_range("/etc/subuid", USER).expect("a subuid range"),
            subgid: first_range("/etc/subgid", USER).expect("a subgid range"),
        }
    })
}

/// The user `name` (made with `useradd EXTRA` if missing): uid and gid.
fn ensure_user(name: &str, extra: &[&str]) -> (u32, u32) {
    let exists = Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        // Races with a parallel test process end with one user.
        let _ = Command::new("useradd")
            .args(extra)
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .output();
    }
    let id = |flag: &str| -> u32 {
        exec(Command::new("id").args([flag, name]))
            .ok()
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// The runtime by absolute path: a test may give the user an empty PATH.
fn runtime_abs() -> PathBuf {
    static RT: OnceLock<PathBuf> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = PathBuf::from(runtime());
        let rt = if rt.is_absolute() {
            rt
        } else {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(&rt))
                .find(|p| p.is_file())
                .unwrap_or(rt)
        };
        reachable(&rt)
    })
    .clone()
}

/// Where the tests' files live: under /tmp, which any user can reach (the
/// checkout may sit in a directory only root may enter). Removed when the
/// test process exits.
fn base() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn cleanup() {
        let _ = fs::remove_dir_all(format!("/tmp/brig-rootless.{}", std::process::id()));
    }
    B.get_or_init(|| {
        let b = PathBuf::from(format!("/tmp/brig-rootless.{}", std::process::id()));
        let _ = fs::remove_dir_all(&b);
        fs::create_dir(&b).expect("mkdir the rootless tests' dir");
        fs::set_permissions(&b, fs::Permissions::from_mode(0o755)).expect("chmod");
        // SAFETY: registers a handler that only removes our own directory.
        unsafe { libc::atexit(cleanup) };
        b
    })
}

/// `path` when the test user may run it where it is, else a copy in
/// base()/bin (made with cp: see tests/escapes.rs on ETXTBSY).
fn reachable(path: &Path) -> PathBuf {
    let u = user();
    let ok = Command::new("/usr/bin/setpriv")
        .args(["--reuid", &u.uid.to_string(), "--regid", &u.gid.to_string()])
        .args(["--clear-groups", "--", "test", "-x"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return path.to_path_buf();
    }
    let bin = base().join("bin");
    fs::create_dir_all(&bin).expect("mkdir bin");
    let dest = bin.join(path.file_name().expect("a file name"));
    exec(Command::new("cp").arg(path).arg(&dest)).ok();
    dest
}

/// A bundle and an XDG_RUNTIME_DIR owned by the test user.
struct Rootless {
    dir: PathBuf,
    bundle: PathBuf,
    xdg: PathBuf,
    id: String,
}

impl Rootless {
    fn new(name: &str) -> Rootless {
        let u = user();
        let dir = base().join(name);
        let _ = fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        let xdg = dir.join("xdg");
        fs::create_dir_all(&xdg).expect("mkdir xdg");
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).expect("chmod xdg");
        fs::create_dir_all(&bundle).expect("mkdir bundle");
        exec(
            Command::new("cp")
                .arg("-a")
                .arg(rootfs())
                .arg(bundle.join("rootfs")),
        )
        .ok();
        exec(
            Command::new("chown")
                .args(["-R", &format!("{}:{}", u.uid, u.gid)])
                .arg(&dir),
        )
        .ok();
        let r = Rootless {
            dir,
            bundle,
            xdg,
            id: format!("rl-{name}-{}", std::process::id()),
        };
        r.as_user(&["spec", "--rootless"], &r.bundle).ok();
        r
    }

    /// The runtime as the test user, in `cwd`, with only PATH, HOME and
    /// XDG_RUNTIME_DIR set.
    fn command(&self, args: &[&str], cwd: &Path) -> Command {
        self.program(&runtime_abs(), args, cwd)
    }

    /// `program` as the test user (see [`Rootless::command`]).
    fn program(&self, program: &Path, args: &[&str], cwd: &Path) -> Command {
        self.program_as(user().uid, user().gid, program, args, cwd)
    }

    fn program_as(&self, uid: u32, gid: u32, program: &Path, args: &[&str], cwd: &Path) -> Command {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &self.dir)
        .env("XDG_RUNTIME_DIR", &self.xdg);
        c
    }

    fn as_user(&self, args: &[&str], cwd: &Path) -> Output {
        exec(&mut self.command(args, cwd))
    }

    fn rt(&self, args: &[&str]) -> Output {
        self.as_user(args, &self.bundle)
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.bundle.join("config.json");
        let mut cfg: Value =
            serde_json::from_slice(&fs::read(&path).expect("read config")).expect("config JSON");
        cfg["process"]["terminal"] = json!(false);
        f(&mut cfg);
        fs::write(&path, serde_json::to_vec_pretty(&cfg).expect("JSON")).expect("write config");
    }

    /// The runtime's state directory under XDG_RUNTIME_DIR.
    fn state_dir(&self) -> PathBuf {
        let name = if is_runc() { "runc" } else { "brig" };
        self.xdg.join(name)
    }

    /// Nothing of the container is left: no state entry, no process.
    fn assert_nothing_left(&self) {
        let entry = self.state_dir().join(&self.id);
        assert!(!entry.exists(), "state left at {entry:?}");
        let procs = procs_of(self);
        assert!(procs.is_empty(), "processes left: {procs:?}");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        let _ = try_exec(&mut self.command(&["delete", "--force", &self.id], &self.bundle));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Processes whose cwd or root is in this test's bundle.
fn procs_of(r: &Rootless) -> Vec<i32> {
    let bundle = fs::canonicalize(&r.bundle).unwrap_or_else(|_| r.bundle.clone());
    fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|p| p.starts_with(&bundle))
        })
        .collect()
}

/// The one error line of a failed command. runc 1.1.5 run rootless prints
/// its errors only with --debug: for it, only the failure is checked.
#[track_caller]
fn failure(out: &Output) -> String {
    if is_runc() {
        assert!(!out.success(), "expected a failure: {out}");
        eprintln!("NOTE: runc 1.1.5 rootless says nothing without --debug: {out}");
        return out.stderr.clone();
    }
    out.err().to_string()
}

#[test]
fn lifecycle_as_an_unprivileged_user() {
    let r = Rootless::new("life");
    r.edit(|c| set_args(c, &["sleep", "60"]));
    r.rt(&["create", &r.id]).ok();
    let state: Value = serde_json::from_str(r.rt(&["state", &r.id]).ok()).expect("state JSON");
    assert_eq!(state["status"], "created");
    assert!(
        r.state_dir().join(&r.id).is_dir(),
        "state is not under XDG_RUNTIME_DIR ({:?})",
        r.state_dir()
    );
    r.rt(&["start", &r.id]).ok();
    let out = r.rt(&["exec", &r.id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let text = out.ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", &user().uid.to_string(), "1"], "{out}");
    let ps = r.rt(&["ps", "--format", "json", &r.id]);
    if is_runc() && !ps.success() {
        eprintln!("NOTE: runc 1.1.5 cannot ps a rootless container without a cgroup: {ps}");
    } else {
        let pids: Vec<i32> = serde_json::from_str(ps.ok()).expect("ps JSON");
        let init = state["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pids.contains(&init), "{ps}");
    }
    r.rt(&["kill", &r.id, "KILL"]).ok();
    wait_for("the container to stop", || {
        serde_json::from_str::<Value>(&r.rt(&["state", &r.id]).stdout)
            .is_ok_and(|s| s["status"] == "stopped")
    });
    r.rt(&["delete", &r.id]).ok();
    r.assert_nothing_left();
}

#[test]
fn a_subuid_range_is_mapped_through_newuidmap() {
    let r = Rootless::new("range");
    let u = user();
    let (su, sun) = u.subuid;
    let (sg, sgn) = u.subgid;
    let n = sun.min(sgn).min(65535);
    r.edit(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": su, "size": n}
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": sg, "size": n}
        ]);
        c["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_CHOWN", "CAP_DAC_OVERRIDE"]);
        }
        set_sh(
            c,
            "cat /proc/self/uid_map; touch /owned && chown 1000:1000 /owned && echo chowned",
        );
    });
    let out = r.rt(&["run", &r.id]);
    let text = out.ok();
    let squeezed: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        squeezed.contains(&format!("1 {su} {n}")),
        "the range is not in uid_map: {out}"
    );
    assert!(text.contains("chowned"), "{out}");
    let meta = fs::metadata(r.bundle.join("rootfs/owned")).expect("stat /owned");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (su + 999, sg + 999),
        "container uid 1000 is not host subuid+999"
    );
    r.assert_nothing_left();
}

#[test]
fn bad_input_gives_one_line_and_leaves_nothing() {
    let r = Rootless::new("bad");
    let u = user();
    // A range outside the user's subuids.
    let outside = u.subuid.0 + u.subuid.1 + 100_000;
    r.edit(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": outside, "size": 10}
        ]);
        set_args(c, &["true"]);
    });
    let line = failure(&r.rt(&["run", &r.id]));
    assert!(
        is_runc() || (line.contains("/etc/subuid") && line.contains(&outside.to_string())),
        "{line}"
    );
    r.assert_nothing_left();

    // A range the user owns, but no newuidmap on PATH.
    r.edit(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.subuid.0, "size": 10}
        ]);
    });
    let mut cmd = r.command(&["run", &r.id], &r.bundle);
    cmd.env("PATH", "/nonexistent");
    let line = failure(&exec(&mut cmd));
    assert!(is_runc() || line.contains("newuidmap"), "{line}");
    r.assert_nothing_left();

    // An XDG_RUNTIME_DIR that does not exist.
    r.edit(|c| c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": u.uid, "size": 1}]));
    let missing = r.dir.join("no-such-dir");
    let mut cmd = r.command(&["run", &r.id], &r.bundle);
    cmd.env("XDG_RUNTIME_DIR", &missing);
    let out = exec(&mut cmd);
    if is_runc() && out.success() {
        eprintln!("NOTE: runc 1.1.5 makes a missing XDG_RUNTIME_DIR itself: {out}");
        let _ = fs::remove_dir_all(&missing);
    } else {
        let line = failure(&out);
        assert!(is_runc() || line.contains("XDG_RUNTIME_DIR"), "{line}");
        assert!(!missing.exists(), "{missing:?} was made");
    }
    r.assert_nothing_left();
}

/// `run` of a spec changed by `edit` fails with one line holding every one
/// of `wants` (runc's silence aside), and leaves nothing behind.
fn assert_refused(name: &str, edit: impl FnOnce(&mut Value), wants: &[&str]) {
    let r = Rootless::new(name);
    r.edit(|c| {
        set_args(c, &["true"]);
        edit(c);
    });
    let line = failure(&r.rt(&["run", &r.id]));
    assert!(
        is_runc() || wants.iter().all(|w| line.contains(w)),
        "wanted {wants:?} in: {line}"
    );
    r.assert_nothing_left();
}

/// What an unprivileged user can never do gets a line that says so.
#[test]
fn raising_a_hard_rlimit_is_refused_clearly() {
    assert_refused(
        "rlimit",
        |c| {
            c["process"]["rlimits"] =
                json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 30, "soft": 1u64 << 30}]);
        },
        &["RlimitNofile", "CAP_SYS_RESOURCE"],
    );
}

#[test]
fn limits_without_a_delegated_cgroup_are_an_error() {
    assert_refused(
        "limits",
        |c| c["linux"]["resources"] = json!({"pids": {"limit": 42}}),
        &["pids", "delegated"],
    );
}

/// A cgroup handed to the test user in every hierarchy (v1 and cgroup2),
/// the way an administrator or systemd delegates one; removed on drop.
struct Delegated {
    name: String,
    dirs: Vec<PathBuf>,
}

/// (mount point, fs type, super options) of the host's cgroup hierarchies.
fn hierarchies() -> Vec<(PathBuf, String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fs_type = post.next()?;
            let opts = post.nth(1).unwrap_or_default();
            (fs_type == "cgroup" || fs_type == "cgroup2").then(|| {
                (
                    PathBuf::from(mount_point),
                    fs_type.to_string(),
                    opts.to_string(),
                )
            })
        })
        .collect()
}

impl Delegated {
    fn new(name: &str) -> Delegated {
        let u = user();
        let mut dirs = Vec::new();
        for (mp, fs_type, opts) in hierarchies() {
            let dir = mp.join(name);
            let _ = fs::create_dir(&dir);
            if opts.split(',').any(|o| o == "cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = fs::read_to_string(mp.join(f)).unwrap_or_default();
                    fs::write(dir.join(f), v.trim()).expect("fill cpuset");
                }
            }
            if fs_type == "cgroup2" {
                // Let the user's cgroups have every controller cgroup2 has.
                let ctrls = fs::read_to_string(mp.join("cgroup.controllers")).unwrap_or_default();
                for c in ctrls.split_whitespace() {
                    let _ = fs::write(mp.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
            exec(
                Command::new("chown")
                    .args(["-R", &format!("{}:{}", u.uid, u.gid)])
                    .arg(&dir),
            )
            .ok();
            dirs.push(dir);
        }
        Delegated {
            name: name.to_string(),
            dirs,
        }
    }

    /// `cmd` run from a shell that first moves itself into the delegated
    /// cgroups (as root), then becomes `cmd` (which drops to the user).
    fn enter(&self, cmd: &Command) -> Command {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(r#"while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs"; shift; done; shift; exec "$@""#)
            .arg("sh")
            .args(&self.dirs)
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        if let Some(d) = cmd.get_current_dir() {
            sh.current_dir(d);
        }
        sh
    }

    /// The file `name` of the container cgroup `sub` in the hierarchy that
    /// carries `controller` (a v1 hierarchy of that name, else cgroup2).
    fn file(&self, controller: &str, sub: &str, name: &str) -> PathBuf {
        let hs = hierarchies();
        let v1 = hs
            .iter()
            .find(|(_, t, o)| t == "cgroup" && o.split(',').any(|x| x == controller));
        let mp = match v1 {
            Some((mp, _, _)) => mp.clone(),
            None => hs
                .iter()
                .find(|(_, t, _)| t == "cgroup2")
                .map(|(mp, _, _)| mp.clone())
                .expect("a hierarchy with the controller"),
        };
        mp.join(&self.name).join(sub).join(name)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Container cgroups first (delete should have removed them).
            if let Ok(entries) = fs::read_dir(d) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
            let _ = fs::remove_dir(d);
        }
    }
}

#[test]
fn limits_apply_in_a_delegated_cgroup() {
    let r = Rootless::new("deleg");
    let deleg = Delegated::new(&format!("brigtest-rl-{}", std::process::id()));
    let path = format!("/{}/{}", deleg.name, r.id);
    r.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({"pids": {"limit": 42}});
        set_args(c, &["sleep", "60"]);
    });
    exec(&mut deleg.enter(&r.command(&["create", &r.id], &r.bundle))).ok();
    let max = deleg.file("pids", &r.id, "pids.max");
    assert_eq!(
        fs::read_to_string(&max)
            .map(|s| s.trim().to_string())
            .ok()
            .as_deref(),
        Some("42"),
        "{max:?}"
    );
    let state: Value = serde_json::from_str(r.rt(&["state", &r.id]).ok()).expect("state JSON");
    let init = state["pid"].as_i64().unwrap_or(0);
    let procs = fs::read_to_string(max.with_file_name("cgroup.procs")).unwrap_or_default();
    assert!(
        procs.lines().any(|l| l.trim() == init.to_string()),
        "init {init} is not in {max:?}'s cgroup: {procs}"
    );
    r.rt(&["delete", "--force", &r.id]).ok();
    assert!(
        !max.parent().is_some_and(Path::exists),
        "the container's cgroup is left"
    );
    r.assert_nothing_left();
}

impl Rootless {
    /// `hoist --store STORE ARGS` as the test user, which must succeed.
    fn hoist(&self, store: &Path, args: &[&str]) -> Output {
        let mut full = vec!["--store", p(store)];
        full.extend(args);
        let out = exec(&mut self.program(hoist(), &full, &self.dir));
        out.ok();
        out
    }

    /// `hoist unpack IMAGE DEST` as the user, the bundle running `sh -c SCRIPT`.
    fn unpack_sh(&self, store: &Path, image: &str, dest: &Path, script: &str) {
        self.hoist(
            store,
            &[
                "unpack",
                image,
                p(dest),
                "--args",
                "sh",
                "--args",
                "-c",
                "--args",
                script,
            ],
        );
    }

    /// Hands the test dir to the user, then pulls hack/mkimage's busybox
    /// into STORE as localhost/busybox:latest, as the user.
    fn pull_busybox(&self, store: &Path) {
        let u = user();
        let busybox = self.dir.join("busybox.tar");
        exec(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkimage"))
                .arg(&busybox)
                .arg("localhost/busybox:latest"),
        )
        .ok();
        exec(
            Command::new("chown")
                .args(["-R", &format!("{}:{}", u.uid, u.gid)])
                .arg(&self.dir),
        )
        .ok();
        let src = format!("oci-archive:{}", busybox.display());
        self.hoist(store, &["pull", "-q", &src]);
    }
}

/// hoist's binary.
fn hoist() -> &'static Path {
    static H: OnceLock<PathBuf> = OnceLock::new();
    H.get_or_init(|| reachable(Path::new(env!("CARGO_BIN_EXE_hoist"))))
}

/// A one-layer OCI layout with a file owned by 1000:1000, a directory
/// without write permission holding a file, and a device node: what an
/// unprivileged unpack cannot make as it is.
fn owners_layout(dir: &Path) -> PathBuf {
    use image_common::{chr, dir as d, file, layer_tar, write_layout, Comp};
    let layout = dir.join("owners-layout");
    let tar = layer_tar(&[
        d("home", 0o755),
        d("home/user", 0o755).owner(1000, 1000),
        file("home/user/owned", b"mine\n", 0o644).owner(1000, 1000),
        d("ro", 0o555),
        file("ro/inside", b"x\n", 0o444),
        d("dev", 0o755),
        chr("dev/null", 1, 3),
    ]);
    write_layout(
        &layout,
        &[(tar, Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    layout
}

#[test]
fn hoist_unpacks_into_the_users_subuid_range_and_the_runtime_runs_it() {
    let r = Rootless::new("hoist");
    let u = user();
    let layout = owners_layout(&r.dir);
    let store = r.dir.join("store");
    r.pull_busybox(&store);
    let b = r.dir.join("bb");
    r.unpack_sh(
        &store,
        "localhost/busybox:latest",
        &b,
        "id -u; cat /proc/self/uid_map",
    );
    let out = exec(&mut r.command(&["run", &r.id], &b));
    let text = out.ok();
    assert!(text.starts_with("0\n"), "{out}");
    let squeezed: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        squeezed.contains(&format!("1 {} {}", u.subuid.0, u.subuid.1)),
        "{out}"
    );

    let o = r.dir.join("owners");
    r.hoist(
        &store,
        &["unpack", &format!("oci:{}:v1", layout.display()), p(&o)],
    );
    use std::os::unix::fs::MetadataExt;
    let owned = fs::symlink_metadata(o.join("rootfs/home/user/owned")).expect("stat owned");
    assert_eq!(
        (owned.uid(), owned.gid()),
        (u.subuid.0 + 999, u.subgid.0 + 999),
        "uid 1000 of the image is not subuid+999 on the host"
    );
    let root_owned = fs::symlink_metadata(o.join("rootfs/ro/inside")).expect("stat inside");
    assert_eq!(root_owned.uid(), u.uid, "the image's root is not the user");
    assert!(
        !o.join("rootfs/dev/null").exists(),
        "a user namespace cannot make device nodes: dev/null should be skipped"
    );
    // What the user unpacked, the user can remove: through its namespace.
    r.hoist(&store, &["rmi", "localhost/busybox:latest"]);
}

/// A second user, a system account without subordinate ids.
fn plain_user() -> (u32, u32) {
    const NAME: &str = "brigtest-rl2";
    let ids = ensure_user(NAME, &["--system"]);
    assert!(
        first_range("/etc/subuid", NAME).is_none(),
        "{NAME} should have no subuid range"
    );
    ids
}

#[test]
fn hoist_without_subuids_records_owners_in_an_xattr() {
    let r = Rootless::new("xattr");
    let (uid, gid) = plain_user();
    let layout = owners_layout(&r.dir);
    exec(
        Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(&r.dir),
    )
    .ok();
    let o = r.dir.join("owners");
    exec(&mut r.program_as(
        uid,
        gid,
        hoist(),
        &[
            "--store",
            p(&r.dir.join("store")),
            "unpack",
            &format!("oci:{}:v1", layout.display()),
            p(&o),
        ],
        &r.dir,
    ))
    .ok();
    use std::os::unix::fs::MetadataExt;
    let owned = o.join("rootfs/home/user/owned");
    let meta = fs::symlink_metadata(&owned).expect("stat owned");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (uid, gid),
        "the file is not the user's own"
    );
    // umoci's encoding of Resource{uid: 1000, gid: 1000}.
    assert_eq!(
        image_common::lgetxattr(&owned, "user.rootlesscontainers"),
        Some(vec![0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]),
        "the real owner is not recorded"
    );
    assert_eq!(
        image_common::lgetxattr(&o.join("rootfs/ro/inside"), "user.rootlesscontainers"),
        None,
        "a root-owned file needs no record"
    );
    assert!(fs::read_to_string(o.join("rootfs/ro/inside")).is_ok());
    // Its own files: the user removes the bundle without help.
    exec(&mut r.program_as(uid, gid, Path::new("/bin/rm"), &["-rf", p(&o)], &r.dir)).ok();
}

#[test]
fn hoist_builds_with_run_steps_in_a_user_namespace() {
    let r = Rootless::new("build");
    let ctx = r.dir.join("ctx");
    fs::create_dir_all(&ctx).expect("mkdir ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:latest\n\
         RUN echo built >/built && mkdir /home/u && chown 1000:1000 /home/u\n\
         COPY f /f\n\
         RUN rm /bin/ls\n",
    )
    .expect("write Dockerfile");
    fs::write(ctx.join("f"), "copied\n").expect("write f");
    let store = r.dir.join("store");
    r.pull_busybox(&store);
    r.hoist(
        &store,
        &["build", "-q", "-t", "localhost/rl-built:1", p(&ctx)],
    );
    let b = r.dir.join("built");
    r.unpack_sh(
        &store,
        "localhost/rl-built:1",
        &b,
        "cat /built /f; stat -c '%u:%g' /home/u; test -e /bin/ls || echo no-ls",
    );
    let out = exec(&mut r.command(&["run", &r.id], &b));
    assert_eq!(out.ok(), "built\ncopied\n1000:1000\nno-ls\n", "{out}");
    // No build container, mount or step directory is left.
    let mounts = mounts_under(&store);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let tmp: Vec<_> = fs::read_dir(store.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
}

/// Rootless podman, as the test user, with the runtime under test: its own
/// storage (vfs), run and config dirs under the test's directory, cgroupfs,
/// no network. The pause process rootless podman leaves is killed by pid.
struct Podman<'a> {
    r: &'a Rootless,
    base: Vec<String>,
    /// podman wants its run root shorter than 50 bytes.
    runroot: PathBuf,
}

impl<'a> Podman<'a> {
    fn new(r: &'a Rootless) -> Podman<'a> {
        let d = |n: &str| r.dir.join(n).display().to_string();
        let runroot = base().join("pm");
        let _ = fs::remove_dir_all(&runroot);
        fs::create_dir(&runroot).expect("mkdir runroot");
        let u = user();
        std::os::unix::fs::chown(&runroot, Some(u.uid), Some(u.gid)).expect("chown runroot");
        let base = vec![
            "--root".into(),
            d("pm-root"),
            "--runroot".into(),
            runroot.display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--runtime".into(),
            runtime_abs().display().to_string(),
        ];
        Podman { r, base, runroot }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = self.base.iter().map(String::as_str).collect();
        all.extend(args);
        exec(
            &mut self
                .r
                .program(Path::new("/usr/bin/podman"), &all, &self.r.dir),
        )
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]);
        let pause = self.r.xdg.join("libpod/tmp/pause.pid");
        if let Some(pid) = fs::read_to_string(pause)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) of the pause process this test's podman made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = fs::remove_dir_all(&self.runroot);
    }
}

#[test]
fn rootless_podman_runs_containers_with_the_runtime() {
    if !image_common::need_tools(&[("podman", "podman")], "the rootless podman test") {
        return;
    }
    let r = Rootless::new("podman");
    let store = r.dir.join("store");
    r.pull_busybox(&store);
    let pm = Podman::new(&r);
    let archive = r.dir.join("busybox.tar");
    pm.cmd(&["load", "-q", "-i", p(&archive)]).ok();
    let image = "localhost/busybox:latest";
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend(extra);
        pm.cmd(&a)
    };
    assert_eq!(run(&[image, "echo", "hi"]).ok(), "hi\n");
    assert_eq!(run(&[image, "sh", "-c", "exit 3"]).code, Some(3));
    assert_eq!(
        run(&[
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            image,
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ])
        .ok(),
        "1 /tmp 1000\n"
    );
    let ro = run(&[
        "--read-only",
        image,
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo ro",
    ]);
    assert_eq!(ro.ok(), "ro\n");
    let name = format!("rl-pm-{}", std::process::id());
    pm.cmd(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        image,
        "sleep",
        "60",
    ])
    .ok();
    assert_eq!(pm.cmd(&["exec", &name, "echo", "in"]).ok(), "in\n");
    pm.cmd(&["stop", "-t", "1", &name]).ok();
    pm.cmd(&["rm", &name]).ok();
}

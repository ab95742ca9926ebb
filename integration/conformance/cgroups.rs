//! config-linux.md "Control groups" (cgroupsPath, linux.resources, the
//! allowed device list) and runtime.md delete, plus the runc commands that
//! work on a container's cgroup: update, pause/resume, ps, events --stats,
//! kill --all, features (named `cgroups_cli_*`: runc's contract, which
//! containerd's shim relies on, not the spec's).
//!
//! Every check reads the kernel's state, never the runtime's word: the
//! container's cgroups are found through /proc/PID/cgroup and the host's
//! mountinfo (no path is assumed), then their files are read. Both layouts
//! are handled: a resource is read from its v1 file where its controller is
//! mounted as a v1 hierarchy, else from the converted cgroup v2 file where
//! the unified hierarchy offers the controller. A test is skipped only when
//! the host lacks the controller (or the file) it needs.

use crate::harness::{alive, Bundle, Case, Ctr, Ctx, Failure, Out, TResult, Test};
use crate::{check, fail, skip, tests};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    tests![
        cgroups_path_absolute,
        cgroups_path_default,
        cgroups_memory,
        cgroups_pids_limit,
        cgroups_cpu,
        cgroups_cpuset,
        cgroups_blkio_weight,
        cgroups_hugepage_limits,
        cgroups_devices_deny_allow,
        cgroups_delete_removes_cgroups,
        cgroups_bad_path_escape_fails,
        cgroups_bad_device_type_fails,
        cgroups_bad_memory_limit_fails,
        cgroups_cli_update_flags,
        cgroups_cli_update_resources_json,
        cgroups_cli_update_bad_value_changes_nothing,
        cgroups_cli_pause_resume,
        cgroups_cli_ps_json,
        cgroups_cli_events_stats,
        cgroups_cli_kill_all,
        cgroups_cli_delete_force_removes_cgroups,
        cgroups_cli_features,
    ]
}

/// A program that stays up until the test ends it (or 30 s pass).
const SLEEP: [&str; 2] = ["/bin/sleep", "30"];

/// An init with two children: three processes in the cgroup.
const FAMILY: [&str; 3] = ["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"];

const MIB: i64 = 1 << 20;

// ---------------------------------------------------------------------------
// The host's cgroup hierarchies and a process's place in them.

/// A mounted cgroup filesystem of the host (from /proc/self/mountinfo).
struct CgMount {
    v2: bool,
    /// The super options ("rw,memory", "rw,xattr,name=systemd").
    opts: Vec<String>,
    mount: PathBuf,
    /// The cgroup shown at the mount point.
    root: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_mounts() -> Vec<CgMount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let v2 = match r[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        out.push(CgMount {
            v2,
            opts: r[2].split(',').map(String::from).collect(),
            mount: PathBuf::from(unescape(l[4])),
            root: unescape(l[3]),
        });
    }
    out
}

/// One line of /proc/PID/cgroup, placed on the host.
#[derive(Clone, Debug)]
struct Member {
    v2: bool,
    /// The hierarchy's controllers as /proc/PID/cgroup names them
    /// ("memory", "cpu,cpuacct", "name=systemd"; "" for cgroup2).
    controllers: String,
    /// The cgroup, as /proc/PID/cgroup shows it.
    path: String,
    /// Where the hierarchy is mounted, and the cgroup's directory there
    /// (None if the host has no mount showing it).
    mount: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl Member {
    fn has(&self, ctrl: &str) -> bool {
        !self.v2 && self.controllers.split(',').any(|c| c == ctrl)
    }

    fn label(&self) -> String {
        if self.v2 {
            "cgroup2".to_string()
        } else {
            self.controllers.clone()
        }
    }

    /// A v1 hierarchy with a real controller (not a named one like
    /// name=systemd), or a v2 hierarchy that offers controllers.
    fn has_controllers(&self) -> bool {
        if self.v2 {
            self.mount
                .as_ref()
                .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
                .is_some_and(|c| !c.trim().is_empty())
        } else {
            self.controllers
                .split(',')
                .any(|c| !c.is_empty() && !c.starts_with("name="))
        }
    }
}

/// The cgroups of `pid` ("self" for us), one per hierarchy.
fn members(pid: &str) -> TResult<Vec<Member>> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ctx(&format!("read /proc/{pid}/cgroup"))?;
    let mounts = cgroup_mounts();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let v2 = id == "0" && ctrls.is_empty();
        let mount = mounts.iter().find(|m| {
            m.v2 == v2
                && (v2 || ctrls.split(',').all(|c| m.opts.iter().any(|o| o == c)))
                && under(path, &m.root).is_some()
        });
        let dir = mount.and_then(|m| {
            under(path, &m.root).map(|rest| m.mount.join(rest.trim_start_matches('/')))
        });
        out.push(Member {
            v2,
            controllers: ctrls.to_string(),
            path: path.to_string(),
            mount: mount.map(|m| m.mount.clone()),
            dir,
        });
    }
    Ok(out)
}

/// `path` relative to `root` if it is at or under it.
fn under<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if root == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Where `ctrl`'s files are for the process with these memberships: the
/// dir of the v1 hierarchy that has it, else the cgroup2 dir if the
/// unified hierarchy offers it. The bool says v2. None: the host has no
/// such controller.
fn controller_dir(ms: &[Member], ctrl: &str) -> Option<(PathBuf, bool)> {
    if let Some(m) = ms.iter().find(|m| m.has(ctrl)) {
        return m.dir.clone().map(|d| (d, false));
    }
    let m = ms.iter().find(|m| m.v2)?;
    let offered = fs::read_to_string(m.mount.as_ref()?.join("cgroup.controllers")).ok()?;
    if offered.split_whitespace().any(|c| c == ctrl) {
        m.dir.clone().map(|d| (d, true))
    } else {
        None
    }
}

/// Whether the host has `ctrl` at all (as v1, or offered by cgroup2).
fn host_has(ctrl: &str) -> TResult<bool> {
    Ok(controller_dir(&members("self")?, ctrl).is_some())
}

/// `controller_dir` for a container's init, or a skip if the host lacks
/// the controller.
fn ctr_controller(c: &Ctr, ctrl: &str) -> TResult<(PathBuf, bool)> {
    if !host_has(ctrl)? {
        skip!("the host has no {ctrl} cgroup controller");
    }
    controller_dir(&members(&c.pid.to_string())?, ctrl)
        .ctx(&format!("the container is in no {ctrl} cgroup"))
}

/// A cgroup file, trimmed.
fn read(dir: &Path, file: &str) -> Result<String, String> {
    let p = dir.join(file);
    fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {}: {e}", p.display()))
}

/// Compares a cgroup file with what it must say; a mismatch goes to
/// `errors`.
fn expect(errors: &mut Vec<String>, dir: &Path, file: &str, want: &str) {
    match read(dir, file) {
        Ok(got) if got == want => {}
        Ok(got) => errors.push(format!(
            "{} is {got:?}, want {want:?}",
            dir.join(file).display()
        )),
        Err(e) => errors.push(e),
    }
}

/// The pids in a cgroup's cgroup.procs.
fn procs(dir: &Path) -> TResult<BTreeSet<i32>> {
    let text = fs::read_to_string(dir.join("cgroup.procs"))
        .ctx(&format!("read {}/cgroup.procs", dir.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The container's cgroup whose cgroup.procs the tests count: its pids
/// cgroup, else its memory one, else its cgroup2 one.
fn procs_dir(c: &Ctr) -> TResult<PathBuf> {
    let ms = members(&c.pid.to_string())?;
    for ctrl in ["pids", "memory"] {
        if let Some((d, _)) = controller_dir(&ms, ctrl) {
            return Ok(d);
        }
    }
    ms.iter()
        .find(|m| m.v2)
        .and_then(|m| m.dir.clone())
        .ctx("the container is in no pids, memory or cgroup2 cgroup")
}

/// Waits until the cgroup holds at least `n` processes; returns them.
fn wait_procs(dir: &Path, n: usize) -> TResult<BTreeSet<i32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = procs(dir)?;
        if p.len() >= n {
            return Ok(p);
        }
        if Instant::now() > deadline {
            fail!(
                "{} holds {p:?}, never {n} processes",
                dir.join("cgroup.procs").display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every cgroup directory of the host (any hierarchy) named `name`.
fn find_cgroups_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy() == name {
                found.push(p.clone());
            }
            if depth < 12 {
                walk(&p, name, depth + 1, found);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for m in cgroup_mounts() {
        if seen.insert(m.mount.clone()) {
            walk(&m.mount, name, 0, &mut found);
        }
    }
    found
}

/// A cgroup name unique in the run (not the container's id: the id is
/// chosen by `create`).
fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cf-cg-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directories `/NAME` would be in each hierarchy of the host (for
/// checks and cleanup around an absolute cgroupsPath).
fn top_level_dirs(name: &str) -> TResult<Vec<PathBuf>> {
    Ok(members("self")?
        .iter()
        .filter_map(|m| m.mount.as_ref().map(|mnt| mnt.join(name)))
        .collect())
}

/// The container's cgroup dirs that are its own: not the driver's (which
/// it would share in a hierarchy the runtime leaves alone) and not a
/// hierarchy's root.
fn own_dirs(c: &Ctr) -> TResult<Vec<PathBuf>> {
    let ours = members("self")?;
    let theirs = members(&c.pid.to_string())?;
    let mut out = Vec::new();
    for t in theirs {
        let same = ours
            .iter()
            .any(|o| o.controllers == t.controllers && o.v2 == t.v2 && o.path == t.path);
        if same || t.path == "/" {
            continue;
        }
        if let Some(d) = t.dir {
            out.push(d);
        }
    }
    Ok(out)
}

/// A created (not started) container running `args` with this config
/// edit.
fn created(c: &mut Case, args: &[&str], edit: impl FnOnce(&mut Bundle)) -> TResult<Ctr> {
    let mut b = c.bundle()?;
    b.args(args);
    edit(&mut b);
    c.create(&b)
}

/// A started container.
fn running(c: &mut Case, args: &[&str], edit: impl FnOnce(&mut Bundle)) -> TResult<Ctr> {
    let ctr = created(c, args, edit)?;
    c.start(&ctr)?;
    Ok(ctr)
}

/// After a create that had to fail: the id is unknown and no cgroup named
/// `leaf` (nor one named after the id) exists anywhere.
fn check_nothing_left(c: &mut Case, out: &Out, ctr: &Ctr, leaf: &str) -> TResult {
    if out.success() {
        rmdir_made_on_drop(c, ctr)?;
        fail!("create succeeded: {out}");
    }
    let id = ctr.id.clone();
    let st = c.rt(&["state", &id])?;
    check!(
        !st.success(),
        "after the failed create `state` knows the id: {}",
        st.stdout.trim()
    );
    let mut left = find_cgroups_named(leaf);
    left.extend(find_cgroups_named(&id));
    check!(
        left.is_empty(),
        "the failed create left cgroups behind: {left:?}"
    );
    Ok(())
}

/// For a container that should not exist: once the case has deleted it,
/// remove the parents the runtime made for its cgroups, from its cgroup up
/// to (not including) the driver's own cgroup or the hierarchy's root.
/// Only empty directories go (rmdir).
fn rmdir_made_on_drop(c: &mut Case, ctr: &Ctr) -> TResult {
    let ours = members("self")?;
    for m in members(&ctr.pid.to_string())? {
        let (Some(dir), Some(mount)) = (m.dir, m.mount) else {
            continue;
        };
        let base = ours
            .iter()
            .find(|o| o.v2 == m.v2 && o.controllers == m.controllers)
            .and_then(|o| o.dir.clone())
            .filter(|b| dir.starts_with(b))
            .unwrap_or(mount);
        let mut d = dir.as_path();
        while d != base && d.starts_with(&base) {
            c.rmdir_on_drop(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// cgroupsPath

/// config-linux.md cgroupsPath: "In the case of an absolute path (starting
/// with /), the runtime MUST take the path to be relative to the cgroups
/// mount point." "The cgroups will be created if they don't exist." The
/// spec has no per-controller paths, so the container's processes (init
/// and its children) are in that cgroup in every hierarchy of the host,
/// named ones (name=systemd) and, on a hybrid host, the unified one
/// included.
fn cgroups_path_absolute(c: &mut Case) -> TResult {
    let parent = unique("abs");
    let path = format!("/{parent}/ctr");
    for d in top_level_dirs(&parent)? {
        c.rmdir_on_drop(d.join("ctr"));
        c.rmdir_on_drop(d);
    }
    let ctr = running(c, &FAMILY, |b| {
        b.config["linux"]["cgroupsPath"] = json!(path);
    })?;
    let dir = procs_dir(&ctr)?;
    let pids = wait_procs(&dir, 3)?;
    let mut errors = Vec::new();
    for pid in pids.iter().copied().chain([ctr.pid]) {
        let Ok(ms) = members(&pid.to_string()) else {
            errors.push(format!("process {pid} vanished"));
            continue;
        };
        for m in ms {
            if m.path != path {
                errors.push(format!(
                    "process {pid} is in {:?} in the {} hierarchy, want {path:?}",
                    m.path,
                    m.label()
                ));
            }
        }
    }
    errors.dedup();
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// config-linux.md: "If the value is not specified, the runtime MAY define
/// the default cgroups path." runc's default is a cgroup named after the
/// id under its own cgroup. Whatever the name, the container must get a
/// cgroup of its own, not stay in the runtime's: in every hierarchy with a
/// resource controller, it is in a new cgroup whose name holds the id.
fn cgroups_path_default(c: &mut Case) -> TResult {
    let ctr = created(c, &SLEEP, |b| {
        if let Some(l) = b.config["linux"].as_object_mut() {
            l.remove("cgroupsPath");
        }
    })?;
    let ours = members("self")?;
    let theirs = members(&ctr.pid.to_string())?;
    let mut errors = Vec::new();
    let mut checked = 0;
    for t in theirs.iter().filter(|t| t.has_controllers()) {
        checked += 1;
        let mine = ours
            .iter()
            .find(|o| o.v2 == t.v2 && o.controllers == t.controllers)
            .map(|o| o.path.as_str());
        let name = t.path.rsplit('/').next().unwrap_or("");
        if mine == Some(t.path.as_str()) {
            errors.push(format!(
                "{}: the container stays in the runtime's cgroup {:?}",
                t.label(),
                t.path
            ));
        } else if !name.contains(&ctr.id) {
            errors.push(format!(
                "{}: the container's cgroup {:?} is not named after its id",
                t.label(),
                t.path
            ));
        }
    }
    check!(checked > 0, "the host has no cgroup controller at all");
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------
// linux.resources

/// config-linux.md Memory: limit ("limit of memory usage"), reservation
/// ("soft limit"), swap ("limit of memory+Swap usage", when the host
/// accounts swap). v1: memory.limit_in_bytes, memory.soft_limit_in_bytes,
/// memory.memsw.limit_in_bytes; v2: memory.max, memory.low, and
/// memory.swap.max which holds swap alone (swap - limit).
fn cgroups_memory(c: &mut Case) -> TResult {
    let (limit, reservation, swap) = (256 * MIB, 128 * MIB, 512 * MIB);
    if !host_has("memory")? {
        skip!("the host has no memory cgroup controller");
    }
    // Swap accounting: the memsw files (v1) or memory.swap.max (v2) exist
    // in our own cgroup or, for a root cgroup, in one of its children.
    let ours = members("self")?;
    let (our_dir, v2) = controller_dir(&ours, "memory").ctx("our memory cgroup")?;
    let swap_file = if v2 {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    let has_swap = our_dir.join(swap_file).exists()
        || fs::read_dir(&our_dir)
            .map(|rd| rd.flatten().any(|e| e.path().join(swap_file).exists()))
            .unwrap_or(false);
    let ctr = created(c, &SLEEP, |b| {
        let mut mem = json!({"limit": limit, "reservation": reservation});
        if has_swap {
            mem["swap"] = json!(swap);
        }
        b.config["linux"]["resources"]["memory"] = mem;
    })?;
    let (dir, v2) = ctr_controller(&ctr, "memory")?;
    let mut errors = Vec::new();
    if v2 {
        expect(&mut errors, &dir, "memory.max", &limit.to_string());
        expect(&mut errors, &dir, "memory.low", &reservation.to_string());
        if has_swap {
            expect(
                &mut errors,
                &dir,
                "memory.swap.max",
                &(swap - limit).to_string(),
            );
        }
    } else {
        expect(
            &mut errors,
            &dir,
            "memory.limit_in_bytes",
            &limit.to_string(),
        );
        expect(
            &mut errors,
            &dir,
            "memory.soft_limit_in_bytes",
            &reservation.to_string(),
        );
        if has_swap {
            expect(
                &mut errors,
                &dir,
                "memory.memsw.limit_in_bytes",
                &swap.to_string(),
            );
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// config-linux.md PIDs: limit, "the maximum number of tasks in the
/// cgroup" (pids.max in both layouts).
fn cgroups_pids_limit(c: &mut Case) -> TResult {
    let ctr = created(c, &SLEEP, |b| {
        b.config["linux"]["resources"]["pids"] = json!({"limit": 37});
    })?;
    let (dir, _) = ctr_controller(&ctr, "pids")?;
    let mut errors = Vec::new();
    expect(&mut errors, &dir, "pids.max", "37");
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// The cgroup v2 cpu.weight for v1 shares (runc's and crun's conversion).
fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262142
}

/// config-linux.md CPU: shares, quota, period. v1: cpu.shares,
/// cpu.cfs_quota_us, cpu.cfs_period_us; v2: cpu.weight (converted) and
/// cpu.max "QUOTA PERIOD".
fn cgroups_cpu(c: &mut Case) -> TResult {
    let (shares, quota, period) = (512u64, 50000i64, 200000u64);
    let ctr = created(c, &SLEEP, |b| {
        b.config["linux"]["resources"]["cpu"] =
            json!({"shares": shares, "quota": quota, "period": period});
    })?;
    let (dir, v2) = ctr_controller(&ctr, "cpu")?;
    let mut errors = Vec::new();
    if v2 {
        expect(
            &mut errors,
            &dir,
            "cpu.weight",
            &shares_to_weight(shares).to_string(),
        );
        expect(&mut errors, &dir, "cpu.max", &format!("{quota} {period}"));
    } else {
        expect(&mut errors, &dir, "cpu.shares", &shares.to_string());
        expect(&mut errors, &dir, "cpu.cfs_quota_us", &quota.to_string());
        expect(&mut errors, &dir, "cpu.cfs_period_us", &period.to_string());
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// A kernel cpu/node list ("0-3,5") as a set.
fn parse_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// config-linux.md CPU: cpus, "list of CPUs the container will run in",
/// and mems, "list of Memory Nodes" (cpuset.cpus, cpuset.mems in both
/// layouts). The last CPU and the first node the host offers are asked
/// for, so a runtime that copies its parent's lists fails.
fn cgroups_cpuset(c: &mut Case) -> TResult {
    let ours = members("self")?;
    let Some((our_dir, v2)) = controller_dir(&ours, "cpuset") else {
        skip!("the host has no cpuset cgroup controller");
    };
    let (cpus_file, mems_file) = if v2 {
        ("cpuset.cpus.effective", "cpuset.mems.effective")
    } else {
        ("cpuset.cpus", "cpuset.mems")
    };
    let host_cpus = read(&our_dir, cpus_file)
        .ok()
        .and_then(|s| parse_list(&s))
        .ctx("the host's cpuset cpus")?;
    let host_mems = read(&our_dir, mems_file)
        .ok()
        .and_then(|s| parse_list(&s))
        .ctx("the host's cpuset mems")?;
    let cpu = *host_cpus.iter().next_back().ctx("the host has no CPU")?;
    let mem = *host_mems.iter().next().ctx("the host has no memory node")?;
    let ctr = created(c, &SLEEP, |b| {
        b.config["linux"]["resources"]["cpu"] =
            json!({"cpus": cpu.to_string(), "mems": mem.to_string()});
    })?;
    let (dir, _) = ctr_controller(&ctr, "cpuset")?;
    let mut errors = Vec::new();
    for (file, want) in [("cpuset.cpus", cpu), ("cpuset.mems", mem)] {
        match read(&dir, file) {
            Ok(got) if parse_list(&got) == Some(BTreeSet::from([want])) => {}
            Ok(got) => errors.push(format!(
                "{} is {got:?}, want \"{want}\"",
                dir.join(file).display()
            )),
            Err(e) => errors.push(e),
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// The number in a weight file: "300" or "default 300".
fn weight_value(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("default") || !l.contains(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// config-linux.md Block IO: weight, "per-cgroup weight". v1: blkio.weight
/// (CFQ) or blkio.bfq.weight (BFQ); v2: io.bfq.weight (the weight) or
/// io.weight (converted to 1..10000). Skipped where the kernel has neither
/// scheduler's weight file.
fn cgroups_blkio_weight(c: &mut Case) -> TResult {
    let weight = 300u64;
    let ours = members("self")?;
    let Some((our_dir, v2)) = controller_dir(
        &ours,
        if ours.iter().any(|m| m.has("blkio")) {
            "blkio"
        } else {
            "io"
        },
    ) else {
        skip!("the host has no blkio/io cgroup controller");
    };
    // The files to look for, with the value each must show.
    let files: Vec<(&str, u64)> = if v2 {
        vec![
            ("io.bfq.weight", weight),
            ("io.weight", 1 + (weight - 10) * 9999 / 990),
        ]
    } else {
        vec![("blkio.weight", weight), ("blkio.bfq.weight", weight)]
    };
    // On v2 a root cgroup has no weight files: look at a child too.
    let exists = |f: &str| {
        our_dir.join(f).exists()
            || fs::read_dir(&our_dir)
                .map(|rd| rd.flatten().any(|e| e.path().join(f).exists()))
                .unwrap_or(false)
    };
    if !files.iter().any(|(f, _)| exists(f)) {
        skip!(
            "the host's {} cgroup has no weight file ({}): no CFQ/BFQ/iocost",
            if v2 { "io" } else { "blkio" },
            files.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
        );
    }
    let ctr = created(c, &SLEEP, |b| {
        b.config["linux"]["resources"]["blockIO"] = json!({"weight": weight});
    })?;
    let (dir, _) = ctr_controller(&ctr, if v2 { "io" } else { "blkio" })?;
    let mut seen = Vec::new();
    for (f, want) in &files {
        if let Ok(text) = read(&dir, f) {
            if weight_value(&text) == Some(*want) {
                return Ok(());
            }
            seen.push(format!("{f} is {text:?} (want {want})"));
        }
    }
    fail!(
        "no weight file of {} shows weight {weight}: {}",
        dir.display(),
        seen.join("; ")
    )
}

/// config-linux.md Huge page limits: pageSize and limit, shown by
/// hugetlb.<size>.limit_in_bytes (v1) or hugetlb.<size>.max (v2).
fn cgroups_hugepage_limits(c: &mut Case) -> TResult {
    if !host_has("hugetlb")? {
        skip!("the host has no hugetlb cgroup controller");
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        skip!("the kernel has no 2MB huge pages");
    }
    let limit = 2 * 2 * MIB;
    let ctr = created(c, &SLEEP, |b| {
        b.config["linux"]["resources"]["hugepageLimits"] =
            json!([{"pageSize": "2MB", "limit": limit}]);
    })?;
    let (dir, v2) = ctr_controller(&ctr, "hugetlb")?;
    let mut errors = Vec::new();
    let file = if v2 {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    expect(&mut errors, &dir, file, &limit.to_string());
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// config-linux.md Allowed Device list: the entries are applied in order,
/// so deny-all followed by allows leaves only those (and the runtime's
/// default devices) usable. A char node 42:0 (a major with no driver) is
/// made in the rootfs: denied, open fails with EPERM (the cgroup); allowed,
/// it fails with ENXIO (no driver), which proves the EPERM was the
/// cgroup's. /dev/null and /dev/zero work in both.
fn cgroups_devices_deny_allow(c: &mut Case) -> TResult {
    if !host_has("devices")? && !members("self")?.iter().any(|m| m.v2) {
        skip!("the host has no devices cgroup controller and no cgroup2");
    }
    let mut results = Vec::new();
    for allow in [false, true] {
        let mut b = c.bundle()?;
        let node = b.host_path("/dev42");
        let cpath = std::ffi::CString::new(node.to_str().ctx("utf-8")?).ctx("path")?;
        // SAFETY: mknod with a valid C string.
        let rc =
            unsafe { libc::mknod(cpath.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(42, 0)) };
        check!(
            rc == 0,
            "mknod {}: {}",
            node.display(),
            std::io::Error::last_os_error()
        );
        let mut rules = vec![json!({"allow": false, "access": "rwm"})];
        if allow {
            rules
                .push(json!({"allow": true, "type": "c", "major": 42, "minor": 0, "access": "rw"}));
        }
        b.config["linux"]["resources"]["devices"] = json!(rules);
        b.probe(&[
            "--read",
            "/dev42",
            "--read",
            "/dev/zero",
            "--write",
            "/dev/null",
        ]);
        results.push((allow, c.run_probe(&b)?));
    }
    let mut errors = Vec::new();
    for (allow, r) in &results {
        let (want, name) = if *allow {
            (libc::ENXIO, "ENXIO (allowed, no driver)")
        } else {
            (libc::EPERM, "EPERM (denied by the cgroup)")
        };
        let d = &r["reads"]["/dev42"];
        if d["errno"] != want {
            errors.push(format!(
                "{} 42:0: open gave {d}, want {name}",
                if *allow { "allowed" } else { "denied" }
            ));
        }
        if r["reads"]["/dev/zero"]["ok"] != true {
            errors.push(format!("read /dev/zero: {}", r["reads"]["/dev/zero"]));
        }
        if r["writes"]["/dev/null"]["ok"] != true {
            errors.push(format!("write /dev/null: {}", r["writes"]["/dev/null"]));
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------
// delete, and bad input

/// runtime.md delete: "Deleting a container MUST delete the resources that
/// were created during the create step." The container's cgroup is one:
/// gone from every hierarchy after the stopped container is deleted.
fn cgroups_delete_removes_cgroups(c: &mut Case) -> TResult {
    let name = unique("del");
    for d in top_level_dirs(&name)? {
        c.rmdir_on_drop(d);
    }
    let ctr = created(c, &["/bin/true"], |b| {
        b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    })?;
    let dirs = own_dirs(&ctr)?;
    check!(!dirs.is_empty(), "the container has no cgroup of its own");
    c.start(&ctr)?;
    c.wait_stopped(&ctr)?;
    c.delete(&ctr)?.ok()?;
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    check!(left.is_empty(), "cgroups left after delete: {left:?}");
    Ok(())
}

/// config-linux.md: "Runtimes MAY consider certain cgroupsPath values to be
/// invalid, and MUST generate an error if this is the case." A path whose
/// `..` climbs out of the cgroup hierarchy is such a value: joined naively
/// to a mount point it would make a directory anywhere on the host. Both a
/// relative and an absolute form aim at a directory of the test; create
/// must fail, make nothing there and leave no cgroup or state behind.
/// runc 1.1 fails this test: it cleans the path lexically
/// (libcontainer/utils.CleanPath) and creates the cgroup inside the
/// hierarchy (under its own cgroup for the relative form, under the root
/// for the absolute one) instead of refusing it; it never escapes.
fn cgroups_bad_path_escape_fails(c: &mut Case) -> TResult {
    let target = c.host_dir("escape")?;
    let rel_target = target
        .to_str()
        .ctx("utf-8")?
        .trim_start_matches('/')
        .to_string();
    let climb = "../".repeat(16);
    for (form, prefix) in [("relative", ""), ("absolute", "/")] {
        let leaf = unique("escape");
        let path = format!("{prefix}{climb}{rel_target}/{leaf}");
        let mut b = c.bundle()?;
        b.args(&SLEEP);
        b.config["linux"]["cgroupsPath"] = json!(path);
        let (out, ctr) = c.try_create(&b, &[])?;
        check!(
            !target.join(&leaf).exists(),
            "the {form} cgroupsPath {path:?} made {} on the host",
            target.join(&leaf).display()
        );
        check_nothing_left(c, &out, &ctr, &leaf)
            .map_err(|e| prefix_failure(e, &format!("{form} cgroupsPath {path:?}")))?;
    }
    Ok(())
}

fn prefix_failure(e: Failure, what: &str) -> Failure {
    match e {
        Failure::Fail(m) => Failure::Fail(format!("{what}: {m}")),
        other => other,
    }
}

/// config-linux.md Allowed Device list: type is "a (all), c (char), or b
/// (block)". Another letter is invalid config: create fails and leaves
/// neither a cgroup nor a container.
fn cgroups_bad_device_type_fails(c: &mut Case) -> TResult {
    let name = unique("devtype");
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "x", "major": 1, "minor": 3, "access": "rwm"}
    ]);
    let (out, ctr) = c.try_create(&b, &[])?;
    check_nothing_left(c, &out, &ctr, &name)
}

/// config-linux.md Memory: "Values for memory specify the limit in bytes,
/// or -1 for unlimited memory." -2 is neither: create fails and leaves
/// neither a cgroup nor a container.
fn cgroups_bad_memory_limit_fails(c: &mut Case) -> TResult {
    if !host_has("memory")? {
        skip!("the host has no memory cgroup controller");
    }
    let name = unique("negmem");
    let mut b = c.bundle()?;
    b.args(&SLEEP);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    b.config["linux"]["resources"]["memory"] = json!({"limit": -2});
    let (out, ctr) = c.try_create(&b, &[])?;
    check_nothing_left(c, &out, &ctr, &name)
}

// ---------------------------------------------------------------------------
// runc's commands

/// The values the update tests set and read back.
struct Limits {
    memory: i64,
    pids: i64,
    shares: u64,
    quota: i64,
    period: u64,
}

/// Compares the container's memory, pids and cpu files with `want`.
fn check_limits(ctr: &Ctr, want: &Limits) -> TResult<Vec<String>> {
    let mut errors = Vec::new();
    let (mem, v2) = ctr_controller(ctr, "memory")?;
    let file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    expect(&mut errors, &mem, file, &want.memory.to_string());
    let (pids, _) = ctr_controller(ctr, "pids")?;
    expect(&mut errors, &pids, "pids.max", &want.pids.to_string());
    let (cpu, v2) = ctr_controller(ctr, "cpu")?;
    if v2 {
        expect(
            &mut errors,
            &cpu,
            "cpu.weight",
            &shares_to_weight(want.shares).to_string(),
        );
        expect(
            &mut errors,
            &cpu,
            "cpu.max",
            &format!("{} {}", want.quota, want.period),
        );
    } else {
        expect(&mut errors, &cpu, "cpu.shares", &want.shares.to_string());
        expect(
            &mut errors,
            &cpu,
            "cpu.cfs_quota_us",
            &want.quota.to_string(),
        );
        expect(
            &mut errors,
            &cpu,
            "cpu.cfs_period_us",
            &want.period.to_string(),
        );
    }
    Ok(errors)
}

/// A running container with these limits in its config.
fn limited(c: &mut Case, l: &Limits) -> TResult<Ctr> {
    let res = json!({
        "memory": {"limit": l.memory},
        "pids": {"limit": l.pids},
        "cpu": {"shares": l.shares, "quota": l.quota, "period": l.period},
    });
    running(c, &SLEEP, |b| {
        let devices = b.config["linux"]["resources"]["devices"].clone();
        b.config["linux"]["resources"] = res;
        b.config["linux"]["resources"]["devices"] = devices;
    })
}

const START_LIMITS: Limits = Limits {
    memory: 256 * MIB,
    pids: 100,
    shares: 1024,
    quota: 50000,
    period: 100000,
};

/// runc CLI: `update` with its flags (--memory, --pids-limit, --cpu-share,
/// --cpu-quota, --cpu-period; runc's names, singular --cpu-share included)
/// changes a running container's limits.
fn cgroups_cli_update_flags(c: &mut Case) -> TResult {
    for ctrl in ["memory", "pids", "cpu"] {
        if !host_has(ctrl)? {
            skip!("the host has no {ctrl} cgroup controller");
        }
    }
    let ctr = limited(c, &START_LIMITS)?;
    let new = Limits {
        memory: 96 * MIB,
        pids: 42,
        shares: 256,
        quota: 30000,
        period: 150000,
    };
    let id = ctr.id.clone();
    let (memory, pids, shares, quota, period) = (
        new.memory.to_string(),
        new.pids.to_string(),
        new.shares.to_string(),
        new.quota.to_string(),
        new.period.to_string(),
    );
    c.rt(&[
        "update",
        "--memory",
        &memory,
        "--pids-limit",
        &pids,
        "--cpu-share",
        &shares,
        "--cpu-quota",
        &quota,
        "--cpu-period",
        &period,
        &id,
    ])?
    .ok()?;
    let errors = check_limits(&ctr, &new)?;
    check!(errors.is_empty(), "after update: {}", errors.join("; "));
    check!(alive(ctr.pid), "the container died in the update");
    Ok(())
}

/// runc CLI: `update --resources FILE` and `update --resources -` (stdin,
/// as containerd's shim does it) take LinuxResources JSON; only the fields
/// given change.
fn cgroups_cli_update_resources_json(c: &mut Case) -> TResult {
    for ctrl in ["memory", "pids", "cpu"] {
        if !host_has(ctrl)? {
            skip!("the host has no {ctrl} cgroup controller");
        }
    }
    let ctr = limited(c, &START_LIMITS)?;
    let id = ctr.id.clone();
    let file = c.dir.join("resources1.json");
    fs::write(&file, r#"{"pids":{"limit":66}}"#).ctx("write resources")?;
    let f = file.to_str().ctx("utf-8")?.to_string();
    c.rt(&["update", "--resources", &f, &id])?.ok()?;
    let mut want = Limits {
        pids: 66,
        ..START_LIMITS
    };
    let errors = check_limits(&ctr, &want)?;
    check!(
        errors.is_empty(),
        "after update --resources FILE: {}",
        errors.join("; ")
    );
    let stdin = c.dir.join("resources2.json");
    let body = json!({
        "memory": {"limit": 128 * MIB},
        "pids": {"limit": 77},
        "cpu": {"quota": 20000, "period": 100000},
    });
    fs::write(&stdin, body.to_string()).ctx("write resources")?;
    c.rt_stdin(&["update", "--resources", "-", &id], &stdin)?
        .ok()?;
    want = Limits {
        memory: 128 * MIB,
        pids: 77,
        quota: 20000,
        ..START_LIMITS
    };
    let errors = check_limits(&ctr, &want)?;
    check!(
        errors.is_empty(),
        "after update --resources -: {}",
        errors.join("; ")
    );
    Ok(())
}

/// runc CLI: an update the kernel refuses (a CFS period of 5 µs, below its
/// 1 ms minimum) fails, and the limits given with it do not stay half
/// applied: memory, pids and cpu all keep their old values.
/// runc 1.1 fails this test: the new memory limit stays. Its update.go
/// edits `container.Config().Cgroups`, a pointer shared with the
/// container's own config, so the rollback in linuxContainer.Set ("Set
/// configs back") writes the new values again; memory is set before cpu
/// fails, pids after (so pids keeps its old value).
fn cgroups_cli_update_bad_value_changes_nothing(c: &mut Case) -> TResult {
    for ctrl in ["memory", "pids", "cpu"] {
        if !host_has(ctrl)? {
            skip!("the host has no {ctrl} cgroup controller");
        }
    }
    let ctr = limited(c, &START_LIMITS)?;
    let id = ctr.id.clone();
    let memory = (96 * MIB).to_string();
    let out = c.rt(&[
        "update",
        "--memory",
        &memory,
        "--pids-limit",
        "50",
        "--cpu-period",
        "5",
        &id,
    ])?;
    check!(
        !out.success(),
        "update --cpu-period 5 succeeded: {}",
        out.cmd
    );
    let errors = check_limits(&ctr, &START_LIMITS)?;
    check!(
        errors.is_empty(),
        "the refused update changed limits: {}",
        errors.join("; ")
    );
    check!(alive(ctr.pid), "the container died in the refused update");
    Ok(())
}

/// The freezer state of the container's cgroup: Some(true) frozen,
/// Some(false) thawed, None in between (v1 FREEZING).
fn frozen(dir: &Path, v2: bool) -> TResult<Option<bool>> {
    if v2 {
        let ev = read(dir, "cgroup.events")?;
        Ok(ev
            .lines()
            .find_map(|l| l.strip_prefix("frozen "))
            .map(|v| v.trim() == "1"))
    } else {
        Ok(match read(dir, "freezer.state")?.as_str() {
            "FROZEN" => Some(true),
            "THAWED" => Some(false),
            _ => None,
        })
    }
}

/// The counter the ticker writes to /tick (retrying a read that meets the
/// file between truncate and write).
fn tick(path: &Path) -> TResult<u64> {
    for _ in 0..100 {
        if let Some(n) = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    fail!("{} never held a number", path.display())
}

/// runc CLI: `pause` freezes every process of the container (state says
/// "paused", the cgroup is FROZEN / frozen 1, a ticking loop stops);
/// `resume` thaws it (state "running", THAWED / frozen 0, the loop ticks
/// again).
fn cgroups_cli_pause_resume(c: &mut Case) -> TResult {
    let ours = members("self")?;
    let v2 = !ours.iter().any(|m| m.has("freezer"));
    if v2 && !ours.iter().any(|m| m.v2) {
        skip!("the host has no freezer cgroup controller and no cgroup2");
    }
    let mut b = c.bundle()?;
    b.args(&[
        "/bin/sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tick; sleep 0.02; done",
    ]);
    let ctr = c.create(&b)?;
    c.start(&ctr)?;
    let tick_file = b.host_path("/tick");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tick_file.exists() || tick(&tick_file)? < 2 {
        check!(Instant::now() < deadline, "the ticker never ticked");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ms = members(&ctr.pid.to_string())?;
    let dir = if v2 {
        ms.iter().find(|m| m.v2).and_then(|m| m.dir.clone())
    } else {
        ms.iter()
            .find(|m| m.has("freezer"))
            .and_then(|m| m.dir.clone())
    }
    .ctx("the container's freezer cgroup")?;
    let id = ctr.id.clone();
    c.rt(&["pause", &id])?.ok()?;
    let status = c.status(&ctr)?;
    check!(status == "paused", "state after pause says {status:?}");
    let f = frozen(&dir, v2)?;
    check!(
        f == Some(true),
        "after pause {} says not frozen ({f:?})",
        dir.display()
    );
    let t1 = tick(&tick_file)?;
    std::thread::sleep(Duration::from_millis(300));
    let t2 = tick(&tick_file)?;
    check!(t1 == t2, "the paused container kept ticking ({t1} -> {t2})");
    c.rt(&["resume", &id])?.ok()?;
    let status = c.status(&ctr)?;
    check!(status == "running", "state after resume says {status:?}");
    let f = frozen(&dir, v2)?;
    check!(
        f == Some(false),
        "after resume {} says not thawed ({f:?})",
        dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while tick(&tick_file)? <= t2 {
        check!(
            Instant::now() < deadline,
            "the resumed container does not tick"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// runc CLI: `ps --format json` prints the pids of the container's cgroup
/// (host pids) as a JSON array: exactly those, init and children.
fn cgroups_cli_ps_json(c: &mut Case) -> TResult {
    let ctr = running(c, &FAMILY, |_| {})?;
    let dir = procs_dir(&ctr)?;
    let want = wait_procs(&dir, 3)?;
    let id = ctr.id.clone();
    let out = c.rt(&["ps", "--format", "json", &id])?.ok()?;
    let v: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| Failure::Fail(format!("ps output is not JSON ({e}): {}", out.stdout)))?;
    let got: BTreeSet<i32> = v
        .as_array()
        .ctx(&format!("ps output is not an array: {v}"))?
        .iter()
        .map(|p| p.as_i64().map(|n| n as i32).ctx(&format!("not a pid: {p}")))
        .collect::<TResult<_>>()?;
    check!(
        got == want,
        "ps says {got:?}, the cgroup holds {want:?} (init {})",
        ctr.pid
    );
    Ok(())
}

/// runc CLI: `events --stats ID` prints one JSON object
/// {"type":"stats","id":ID,"data":{...}} in runc's types (containerd's
/// shim decodes them): data.memory.usage.usage is the memory in use and
/// data.pids.current the number of tasks, as the cgroup's pids.current
/// says.
fn cgroups_cli_events_stats(c: &mut Case) -> TResult {
    let ctr = running(c, &FAMILY, |_| {})?;
    let dir = procs_dir(&ctr)?;
    wait_procs(&dir, 3)?;
    let id = ctr.id.clone();
    let out = c.rt(&["events", "--stats", &id])?.ok()?;
    let values: Vec<Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Failure::Fail(format!(
                "events --stats printed no JSON ({e}): {}",
                out.stdout
            ))
        })?;
    check!(
        values.len() == 1,
        "events --stats printed {} JSON values, want one: {}",
        values.len(),
        out.stdout.trim()
    );
    let v = &values[0];
    check!(
        v["type"] == "stats",
        "type is {}, want \"stats\"",
        v["type"]
    );
    check!(v["id"] == id.as_str(), "id is {}, want {id:?}", v["id"]);
    let data = &v["data"];
    check!(data.is_object(), "data is not an object: {v}");
    let usage = &data["memory"]["usage"]["usage"];
    check!(
        usage.as_u64().is_some_and(|u| u > 0),
        "data.memory.usage.usage is {usage}, want a positive number (data.memory: {})",
        data["memory"]
    );
    let (pids_dir, _) = ctr_controller(&ctr, "pids")?;
    let current: u64 = read(&pids_dir, "pids.current")?
        .parse()
        .ctx("pids.current")?;
    check!(
        data["pids"]["current"].as_u64() == Some(current),
        "data.pids.current is {}, the cgroup's pids.current is {current}",
        data["pids"]["current"]
    );
    Ok(())
}

/// runc CLI: `kill --all ID SIGNAL` signals every process of the
/// container's cgroup, not only its init. The container shares the
/// runtime's pid namespace here, so killing the init alone would leave
/// its children running.
fn cgroups_cli_kill_all(c: &mut Case) -> TResult {
    let ctr = running(c, &FAMILY, |b| {
        crate::config::drop_namespace(&mut b.config, "pid");
    })?;
    let dir = procs_dir(&ctr)?;
    let pids = wait_procs(&dir, 3)?;
    let id = ctr.id.clone();
    c.rt(&["kill", "--all", &id, "KILL"])?.ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        let in_cgroup = procs(&dir).unwrap_or_default();
        if left.is_empty() && in_cgroup.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            fail!(
                "after kill --all KILL, of {pids:?} these live: {left:?}; the cgroup holds {in_cgroup:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// runc CLI: `delete --force` of a running container kills it and removes
/// its cgroups, in every hierarchy, before it returns.
fn cgroups_cli_delete_force_removes_cgroups(c: &mut Case) -> TResult {
    let name = unique("delf");
    for d in top_level_dirs(&name)? {
        c.rmdir_on_drop(d);
    }
    let ctr = running(c, &FAMILY, |b| {
        b.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    })?;
    wait_procs(&procs_dir(&ctr)?, 3)?;
    let dirs = own_dirs(&ctr)?;
    check!(!dirs.is_empty(), "the container has no cgroup of its own");
    let id = ctr.id.clone();
    c.rt(&["delete", "--force", &id])?.ok()?;
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    check!(
        left.is_empty(),
        "cgroups left after delete --force: {left:?}"
    );
    Ok(())
}

/// runc CLI: `features` prints JSON whose linux.cgroup.v1 and v2 say (as
/// booleans) which cgroup versions the runtime supports.
fn cgroups_cli_features(c: &mut Case) -> TResult {
    let out = c.rt(&["features"])?.ok()?;
    let v: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| Failure::Fail(format!("features output is not JSON ({e}): {}", out.stdout)))?;
    let cg = &v["linux"]["cgroup"];
    check!(cg.is_object(), "features has no linux.cgroup object: {v}");
    for k in ["v1", "v2"] {
        check!(
            cg[k].is_boolean(),
            "linux.cgroup.{k} is {}, want a boolean",
            cg[k]
        );
    }
    Ok(())
}

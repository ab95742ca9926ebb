//! The harness: one [`Suite`] per run (runtime, work dir, base rootfs), one
//! [`Case`] per test (its own dir, bundles and containers, all removed when
//! it drops, even on failure), and the runtime's CLI as the spec's
//! operations: create, start, state, kill, delete.

use crate::reaper::{self, Exit};
use serde_json::Value;
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest wait for one runtime command or for a container to stop.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Why a test did not pass.
#[derive(Debug)]
pub enum Failure {
    Fail(String),
    Skip(String),
}

pub type TResult<T = ()> = Result<T, Failure>;

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Fail(s)
    }
}

/// `.ctx("what")?` turns any error into a failure that says what failed.
pub trait Ctx<T> {
    fn ctx(self, what: &str) -> TResult<T>;
}

impl<T, E: fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> TResult<T> {
        self.map_err(|e| Failure::Fail(format!("{what}: {e}")))
    }
}

impl<T> Ctx<T> for Option<T> {
    fn ctx(self, what: &str) -> TResult<T> {
        self.ok_or_else(|| Failure::Fail(what.to_string()))
    }
}

#[macro_export]
macro_rules! fail {
    ($($t:tt)*) => { return Err($crate::harness::Failure::Fail(format!($($t)*))) };
}

#[macro_export]
macro_rules! skip {
    ($($t:tt)*) => { return Err($crate::harness::Failure::Skip(format!($($t)*))) };
}

#[macro_export]
macro_rules! check {
    ($cond:expr, $($t:tt)*) => {
        let ok: bool = $cond;
        if !ok {
            $crate::fail!($($t)*)
        }
    };
}

/// One test: a name and a function.
pub struct Test {
    pub name: &'static str,
    pub run: fn(&mut Case) -> TResult,
}

/// What the whole run shares.
pub struct Suite {
    pub runtime: PathBuf,
    /// The run's temp dir; every case has a subdirectory.
    pub work: PathBuf,
    /// The runtime's --root.
    pub state_root: PathBuf,
    /// The busybox rootfs plus /bin/brig-probe, hard-linked into each bundle.
    pub base: PathBuf,
    /// The probe as the host sees it (for hooks that run in the runtime
    /// namespace).
    pub probe: PathBuf,
    pub keep: bool,
    pub verbose: bool,
}

/// A finished command.
pub struct Out {
    pub cmd: String,
    pub exit: Option<Exit>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn success(&self) -> bool {
        self.exit == Some(Exit::Code(0))
    }

    /// Ok if it succeeded, else a failure quoting it.
    pub fn ok(self) -> TResult<Out> {
        if self.success() {
            Ok(self)
        } else {
            Err(Failure::Fail(format!("{self}")))
        }
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exit = match self.exit {
            Some(Exit::Code(c)) => format!("exited {c}"),
            Some(Exit::Signal(s)) => format!("killed by signal {s}"),
            None => "timed out".to_string(),
        };
        write!(f, "`{}` {exit}", self.cmd)?;
        let err = self.stderr.trim();
        if !err.is_empty() {
            write!(f, "; stderr: {}", one_line(err, 300))?;
        }
        Ok(())
    }
}

/// Text squeezed onto one line and cut to `max` chars.
pub fn one_line(s: &str, max: usize) -> String {
    let joined = s.lines().map(str::trim).collect::<Vec<_>>().join(" | ");
    if joined.chars().count() > max {
        let cut: String = joined.chars().take(max).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

/// Runs a command with stdin from /dev/null and stdout/stderr into files
/// (a container started by it may keep them open: no pipe to drain), and
/// waits for it through the reaper. A hang is killed after `timeout`.
pub fn run_cmd(
    cmd: &mut Command,
    out_file: &Path,
    err_file: &Path,
    timeout: Duration,
) -> Result<Out, String> {
    run_cmd_with_stdin(cmd, None, out_file, err_file, timeout)
}

/// [`run_cmd`] with stdin read from a file (or /dev/null if None).
pub fn run_cmd_with_stdin(
    cmd: &mut Command,
    stdin_file: Option<&Path>,
    out_file: &Path,
    err_file: &Path,
    timeout: Duration,
) -> Result<Out, String> {
    // `NAME ARGS...` without the --root pair: short enough for one line.
    let name = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut shown = name;
    let mut args = cmd.get_args().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--root" {
            args.next();
            continue;
        }
        shown.push(' ');
        shown.push_str(&a);
    }
    let stdout =
        File::create(out_file).map_err(|e| format!("create {}: {e}", out_file.display()))?;
    let stderr =
        File::create(err_file).map_err(|e| format!("create {}: {e}", err_file.display()))?;
    let stdin = match stdin_file {
        Some(p) => Stdio::from(File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?),
        None => Stdio::null(),
    };
    let start = Instant::now();
    let child = cmd
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let pid = child.id() as i32;
    // The reaper owns waiting; dropping Child does not wait or kill.
    drop(child);
    let exit = reaper::wait(pid, start, timeout);
    if exit.is_none() {
        // SAFETY: our own child, not yet reaped, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = reaper::wait(pid, start, Duration::from_secs(5));
    }
    Ok(Out {
        cmd: shown,
        exit,
        stdout: fs::read_to_string(out_file).unwrap_or_default(),
        stderr: fs::read_to_string(err_file).unwrap_or_default(),
        elapsed: start.elapsed(),
    })
}

/// A bundle: a dir with `rootfs/` (hard links to the base) and the config
/// that [`Case::create`] writes to `config.json`.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// A path inside the rootfs, as the host sees it.
    pub fn host_path(&self, container_path: &str) -> PathBuf {
        self.rootfs().join(container_path.trim_start_matches('/'))
    }

    /// Writes a file into the rootfs. The rootfs is hard links to the
    /// suite's base: unlink first so the base is never written through.
    pub fn write_file(&self, container_path: &str, content: &str) -> TResult {
        let p = self.host_path(container_path);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).ctx("create parent dir")?;
        }
        let _ = fs::remove_file(&p);
        fs::write(&p, content).ctx(&format!("write {}", p.display()))
    }

    /// Creates a directory in the rootfs.
    pub fn mkdir(&self, container_path: &str) -> TResult {
        fs::create_dir_all(self.host_path(container_path)).ctx("create dir in rootfs")
    }

    pub fn write_config(&self) -> TResult {
        let text = serde_json::to_string_pretty(&self.config).ctx("serialize config")?;
        fs::write(self.dir.join("config.json"), text).ctx("write config.json")
    }

    /// Sets process.args.
    pub fn args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = serde_json::json!(args);
    }

    /// Sets process.args to the probe's report with these options.
    pub fn probe(&mut self, opts: &[&str]) {
        let mut args = vec!["/bin/brig-probe", "report"];
        args.extend_from_slice(opts);
        self.args(&args);
    }
}

/// A container this case created.
pub struct Ctr {
    pub id: String,
    /// Where the container's stdout and stderr go (files).
    pub out: PathBuf,
    pub err: PathBuf,
    /// The init pid that `state` gave after create.
    pub pid: i32,
    /// When create was run (the init cannot have ended before).
    pub created: Instant,
}

impl Ctr {
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// One test's world. Drop deletes (--force) every container it created,
/// detaches any mount left under its dir and removes the dir.
pub struct Case<'s> {
    pub suite: &'s Suite,
    pub name: &'static str,
    pub dir: PathBuf,
    ids: Vec<String>,
    /// Host directories to rmdir (in this order) after the containers are
    /// deleted, e.g. the parent cgroups of a nested cgroupsPath.
    rmdirs: Vec<PathBuf>,
    n: usize,
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

impl<'s> Case<'s> {
    pub fn new(suite: &'s Suite, name: &'static str) -> TResult<Case<'s>> {
        let dir = suite.work.join(name);
        fs::create_dir_all(&dir).ctx("create case dir")?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).ctx("chmod case dir")?;
        Ok(Case {
            suite,
            name,
            dir,
            ids: Vec::new(),
            rmdirs: Vec::new(),
            n: 0,
        })
    }

    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }

    /// A new id for this case (unique in the run, valid for any runtime).
    pub fn new_id(&mut self) -> String {
        let id = format!(
            "cf-{}-{}-{}",
            self.name.replace('_', "-"),
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        );
        self.ids.push(id.clone());
        id
    }

    /// A fresh bundle with the default config (running the probe's report).
    pub fn bundle(&mut self) -> TResult<Bundle> {
        let n = self.next();
        let dir = self.dir.join(format!("bundle{n}"));
        fs::create_dir_all(&dir).ctx("create bundle dir")?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).ctx("chmod bundle")?;
        let rootfs = dir.join("rootfs");
        link_tree(&self.suite.base, &rootfs).map_err(|e| {
            Failure::Fail(format!("copy the rootfs into {}: {e}", rootfs.display()))
        })?;
        Ok(Bundle {
            dir,
            config: crate::config::default_config(),
        })
    }

    /// A new empty directory in the case dir (e.g. a bind-mount source).
    pub fn host_dir(&mut self, name: &str) -> TResult<PathBuf> {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).ctx("create host dir")?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).ctx("chmod host dir")?;
        Ok(d)
    }

    /// `RUNTIME --root ROOT ARGS...`, run in the case dir.
    pub fn rt(&mut self, args: &[&str]) -> TResult<Out> {
        let mut cmd = self.command(args);
        let n = self.next();
        let (o, e) = (
            self.dir.join(format!("cmd{n}.out")),
            self.dir.join(format!("cmd{n}.err")),
        );
        let out = run_cmd(&mut cmd, &o, &e, TIMEOUT)?;
        if self.suite.verbose {
            eprintln!("[{}] {out} ({:?})", self.name, out.elapsed);
        }
        Ok(out)
    }

    /// [`Case::rt`] with stdin read from `stdin` (e.g. `update --resources -`).
    pub fn rt_stdin(&mut self, args: &[&str], stdin: &Path) -> TResult<Out> {
        let mut cmd = self.command(args);
        let n = self.next();
        let (o, e) = (
            self.dir.join(format!("cmd{n}.out")),
            self.dir.join(format!("cmd{n}.err")),
        );
        let out = run_cmd_with_stdin(&mut cmd, Some(stdin), &o, &e, TIMEOUT)?;
        if self.suite.verbose {
            eprintln!("[{}] {out} ({:?})", self.name, out.elapsed);
        }
        Ok(out)
    }

    /// Removes the (empty) host directory `dir` when the case ends, after
    /// its containers are deleted: e.g. a parent cgroup the runtime made
    /// for a nested cgroupsPath. Directories go in the order given.
    pub fn rmdir_on_drop(&mut self, dir: PathBuf) {
        self.rmdirs.push(dir);
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.suite.runtime);
        cmd.arg("--root")
            .arg(&self.suite.state_root)
            .args(args)
            .current_dir(&self.dir);
        cmd
    }

    /// `create --bundle B [EXTRA] ID` with the bundle's config written
    /// first; the container's stdio are two files. Returns the command's
    /// outcome and the container (pid 0 unless create succeeded).
    pub fn try_create(&mut self, b: &Bundle, extra: &[&str]) -> TResult<(Out, Ctr)> {
        b.write_config()?;
        let id = self.new_id();
        let n = self.next();
        let ctr_out = self.dir.join(format!("ctr{n}.out"));
        let ctr_err = self.dir.join(format!("ctr{n}.err"));
        let bundle = b.dir.to_str().ctx("bundle path is not UTF-8")?.to_string();
        let mut args = vec!["create", "--bundle", bundle.as_str()];
        args.extend_from_slice(extra);
        args.push(&id);
        let mut cmd = self.command(&args);
        let created = Instant::now();
        let out = run_cmd(&mut cmd, &ctr_out, &ctr_err, TIMEOUT)?;
        if self.suite.verbose {
            eprintln!("[{}] {out} ({:?})", self.name, out.elapsed);
        }
        let mut ctr = Ctr {
            id,
            out: ctr_out,
            err: ctr_err,
            pid: 0,
            created,
        };
        if out.success() {
            let st = self.state(&ctr)?;
            ctr.pid = st["pid"].as_i64().unwrap_or(0) as i32;
        }
        Ok((out, ctr))
    }

    /// create, which must succeed.
    pub fn create(&mut self, b: &Bundle) -> TResult<Ctr> {
        let (out, ctr) = self.try_create(b, &[])?;
        if !out.success() {
            fail!("create failed: {out}");
        }
        Ok(ctr)
    }

    /// start, which must succeed. On failure, what the container's init
    /// wrote on its stderr is part of the message.
    pub fn start(&mut self, c: &Ctr) -> TResult<Out> {
        let id = c.id.clone();
        let out = self.rt(&["start", &id])?;
        if !out.success() {
            // Give a dying init a moment to finish its last words.
            std::thread::sleep(Duration::from_millis(100));
            let init_err = fs::read_to_string(&c.err).unwrap_or_default();
            fail!(
                "start failed: {out}; the container's stderr: {}",
                one_line(&init_err, 300)
            );
        }
        Ok(out)
    }

    /// `state ID` parsed; fails if the command or the JSON does.
    pub fn state(&mut self, c: &Ctr) -> TResult<Value> {
        let id = c.id.clone();
        let out = self.rt(&["state", &id])?;
        if !out.success() {
            fail!("state failed: {out}");
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| Failure::Fail(format!("state output is not JSON ({e}): {}", out.stdout)))
    }

    pub fn status(&mut self, c: &Ctr) -> TResult<String> {
        let st = self.state(c)?;
        Ok(st["status"].as_str().unwrap_or("<no status>").to_string())
    }

    pub fn kill(&mut self, c: &Ctr, sig: &str) -> TResult<Out> {
        let id = c.id.clone();
        self.rt(&["kill", &id, sig])
    }

    pub fn delete(&mut self, c: &Ctr) -> TResult<Out> {
        let id = c.id.clone();
        self.rt(&["delete", &id])
    }

    /// Waits until the container's process has exited (reaped by us) and
    /// `state` says stopped; returns how the process ended, if we saw it.
    pub fn wait_stopped(&mut self, c: &Ctr) -> TResult<Option<Exit>> {
        let deadline = Instant::now() + TIMEOUT;
        let mut exit = None;
        // The init is re-parented to us (the subreaper) when create exits,
        // so the reaper normally sees it end; a runtime that keeps it
        // elsewhere is covered by looking at /proc.
        if c.pid > 0 {
            loop {
                exit = reaper::wait(c.pid, c.created, Duration::from_millis(5));
                if exit.is_some() {
                    break;
                }
                if !alive(c.pid) {
                    // Gone or a zombie: the reaper may be about to record it.
                    exit = reaper::wait(c.pid, c.created, Duration::from_millis(100));
                    break;
                }
                if Instant::now() > deadline {
                    fail!(
                        "container process {} still running after {TIMEOUT:?}",
                        c.pid
                    );
                }
            }
        }
        loop {
            let status = self.status(c)?;
            if status == "stopped" {
                return Ok(exit);
            }
            if Instant::now() > deadline {
                fail!("container process gone but state still says {status:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the container's stdout file holds `text`.
    pub fn wait_output(&mut self, c: &Ctr, text: &str) -> TResult<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let s = c.stdout();
            if s.contains(text) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                fail!(
                    "container never printed {text:?}; stdout so far: {}",
                    one_line(&s, 300)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The common in-container check: create, start, wait for the program to
    /// exit, delete; returns the probe's report (the first JSON line it
    /// printed).
    pub fn run_probe(&mut self, b: &Bundle) -> TResult<Value> {
        let c = self.create(b)?;
        self.start(&c)?;
        let exit = self.wait_stopped(&c)?;
        let stdout = c.stdout();
        let _ = self.delete(&c);
        let report = stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str::<Value>(l).ok());
        match report {
            Some(r) => Ok(r),
            None => fail!(
                "the probe printed no report (exit {exit:?}); stdout: {}; stderr: {}",
                one_line(&stdout, 200),
                one_line(&fs::read_to_string(&c.err).unwrap_or_default(), 300)
            ),
        }
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            let mut cmd = self.command(&["delete", "--force", &id]);
            let _ = run_cmd(
                &mut cmd,
                &self.dir.join("cleanup.out"),
                &self.dir.join("cleanup.err"),
                TIMEOUT,
            );
        }
        for d in std::mem::take(&mut self.rmdirs) {
            let _ = fs::remove_dir(d);
        }
        // Never let remove_dir_all walk into a mount: detach what is left.
        for target in mounts_under(&self.dir).iter().rev() {
            if let Ok(c) = CString::new(target.as_str()) {
                // SAFETY: umount2 with a valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if !self.suite.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Copies a tree: directories are made anew, everything else is a hard
/// link (the rootfs of each bundle costs next to nothing).
pub fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let md = fs::symlink_metadata(from)?;
    fs::create_dir(to)?;
    fs::set_permissions(
        to,
        fs::Permissions::from_mode(md.permissions().mode() & 0o7777),
    )?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type()?;
        if ft.is_dir() {
            link_tree(&src, &dst)?;
        } else {
            // linkat(2) without AT_SYMLINK_FOLLOW: a symlink is linked
            // itself, which is ten times cheaper than making a new one.
            fs::hard_link(&src, &dst)?;
        }
    }
    Ok(())
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Host mount points at or under `dir`, in mountinfo order.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// The namespaces of `pid` ("self" for us), type -> "type:[inode]".
pub fn namespaces_of(pid: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(t) = fs::read_link(format!("/proc/{pid}/ns/{ns}")) {
            m.insert(ns.to_string(), Value::String(t.display().to_string()));
        }
    }
    m
}

//! Harness for the integration tests: real containers through the runtime's
//! runc-compatible CLI.
//!
//! The runtime under test is `$BRIG_TEST_RUNTIME` (e.g. `runc`) if set, else
//! the `brig` binary of this package. Every test gets a [`Container`]: a fresh
//! temp dir holding its own bundle (a copy of the busybox rootfs plus the
//! runtime's own `spec` output) and its own `--root` state dir, so tests run in
//! parallel and a failing test leaves nothing behind.
#![allow(dead_code)] // each test crate uses its own subset of these helpers

use serde_json::{json, Value};
use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{fmt, thread};

/// A runtime command (or a container's output) that takes longer than this
/// is killed and fails the test instead of blocking CI.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The runtime binary under test.
pub fn runtime() -> String {
    std::env::var("BRIG_TEST_RUNTIME").unwrap_or_else(|_| env!("CARGO_BIN_EXE_brig").to_string())
}

/// Whether the runtime under test is runc, for the few places where runc 1.1
/// deviates from the spec or from what brig promises (each one commented).
pub fn is_runc() -> bool {
    Path::new(&runtime())
        .file_name()
        .is_some_and(|n| n == "runc")
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("these tests create real containers and need root (run cargo test as root)");
    }
}

/// What a finished command printed and how it ended.
pub struct Output {
    pub cmd: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts the command succeeded and returns its stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.success(), "expected success: {self}");
        &self.stdout
    }

    /// Asserts the command failed with an exit code (not a signal) and said
    /// why in one line on stderr; returns that line.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit: {self}"
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {self}");
        lines[0]
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// One end of a pipe or pty read without blocking, so that a container that
/// keeps a copy of the write end open cannot hang the test.
struct Reader {
    fd: OwnedFd,
    buf: Vec<u8>,
    eof: bool,
}

impl Reader {
    fn new(fd: OwnedFd) -> Self {
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Reader {
            fd,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads everything available now.
    fn drain(&mut self) {
        let mut chunk = [0u8; 8192];
        while !self.eof {
            // SAFETY: reading into a local buffer of the given length.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match n {
                n if n > 0 => self.buf.extend_from_slice(&chunk[..n as usize]),
                0 => self.eof = true,
                _ => match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => return,
                    // EIO: a pty master whose slave side is all closed.
                    _ => self.eof = true,
                },
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// Waits (briefly) until one of the readers has something to read.
fn wait_readable(readers: &[&Reader]) {
    let mut fds: Vec<libc::pollfd> = readers
        .iter()
        .filter(|r| !r.eof)
        .map(|r| libc::pollfd {
            fd: r.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    if fds.is_empty() {
        thread::sleep(Duration::from_millis(20));
    } else {
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
    }
}

/// Reads a descriptor (pipe or pty master) to its end; panics after TIMEOUT.
pub fn read_to_end(fd: OwnedFd) -> String {
    let mut r = Reader::new(fd);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        r.drain();
        if r.eof {
            return r.text();
        }
        assert!(
            Instant::now() < deadline,
            "no end of output after {TIMEOUT:?}; so far: {}",
            r.text()
        );
        wait_readable(&[&r]);
    }
}

/// Runs a command with stdin from /dev/null and stdout/stderr captured. Err
/// if it was still running after TIMEOUT (it is then killed).
pub fn try_exec(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}").replace('"', "");
    default_signals(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let mut out = Reader::new(child.stdout.take().expect("piped stdout").into());
    let mut err = Reader::new(child.stderr.take().expect("piped stderr").into());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = child
            .try_wait()
            .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        // Whatever the command wrote before it exited is in the pipes now. A
        // container it started may hold the pipes open: don't wait for EOF.
        out.drain();
        err.drain();
        if let Some(status) = status {
            let (stdout, stderr) = (out.text(), err.text());
            return Ok(Output {
                cmd: shown,
                code: status.code(),
                stdout,
                stderr,
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{shown}` still running after {TIMEOUT:?}, killed it\n--- stdout\n{}--- stderr\n{}",
                out.text(),
                err.text()
            ));
        }
        wait_readable(&[&out, &err]);
    }
}

/// The runtime (and the container after it) starts with every signal at
/// its default and none blocked, whatever the test process inherited: a
/// suite run under `nohup` or from a script that ignores SIGINT must test
/// the same thing.
pub fn default_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only signal(2) and sigprocmask(2), async-signal-safe, run
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in 1..32 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Runs a command like [`try_exec`]; a hang fails the test.
#[track_caller]
pub fn exec(cmd: &mut Command) -> Output {
    try_exec(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// A path as &str for command lines (all our paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The cargo target dir. CARGO_TARGET_TMPDIR is target/tmp, or
/// target/TRIPLE/tmp with a build target set: take the topmost dir that
/// cargo marked with a CACHEDIR.TAG.
fn target_dir() -> &'static Path {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let marked = tmp
        .ancestors()
        .filter(|d| d.join("CACHEDIR.TAG").exists())
        .last();
    marked.unwrap_or(tmp)
}

/// The busybox rootfs, made once by hack/mkrootfs into target/test-rootfs.
/// A file lock keeps parallel test processes from building it together.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        require_root();
        let dest = target_dir().join("test-rootfs");
        let lock = File::create(target_dir().join("test-rootfs.lock")).expect("create rootfs lock");
        // SAFETY: flock on a descriptor we own; released when `lock` drops.
        assert_eq!(
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) },
            0,
            "flock rootfs lock"
        );
        let mkrootfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkrootfs");
        exec(Command::new(mkrootfs).arg(&dest)).ok();
        dest
    })
}

/// One test's container: its id, temp dir, bundle and state root. Dropping
/// it force-deletes the container, unmounts whatever is left under its dir
/// and removes the dir.
pub struct Container {
    pub id: String,
    /// Temp dir holding `bundle/`, `state/` and whatever else the test needs.
    pub dir: PathBuf,
    pub bundle: PathBuf,
    /// The runtime's `--root`.
    pub root: PathBuf,
}

impl Container {
    /// A bundle with a copy of the test rootfs and the runtime's default
    /// config (`spec`), edited to run without a terminal and with
    /// cgroupsPath `/<id>` (runc's own default) so leftovers can be found.
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let rootfs = rootfs();
        let id = format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&id);
        let _ = fs::remove_dir_all(&dir); // left by an earlier run with the same pid
        let c = Container {
            bundle: dir.join("bundle"),
            root: dir.join("state"),
            dir,
            id,
        };
        fs::create_dir_all(&c.bundle).expect("create bundle dir");
        exec(Command::new("cp").arg("-a").arg(rootfs).arg(c.rootfs())).ok();
        // hack/mkrootfs leaves / at mktemp's 0700; images have 0755, and
        // non-root container users must be able to walk it.
        fs::set_permissions(c.rootfs(), fs::Permissions::from_mode(0o755)).expect("chmod rootfs");
        exec(Command::new(runtime()).args(["spec", "--bundle", p(&c.bundle)])).ok();
        let id = c.id.clone();
        c.edit(|cfg| {
            cfg["process"]["terminal"] = json!(false);
            cfg["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        });
        c
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A new empty directory in the test's temp dir (e.g. a bind mount source).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).expect("create host dir");
        d
    }

    pub fn config(&self) -> Value {
        let text = fs::read_to_string(self.bundle.join("config.json")).expect("read config.json");
        serde_json::from_str(&text).expect("parse config.json")
    }

    /// Edits config.json in place.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut cfg = self.config();
        f(&mut cfg);
        let text = serde_json::to_string_pretty(&cfg).expect("serialize config");
        fs::write(self.bundle.join("config.json"), text).expect("write config.json");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime());
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.dir);
        cmd
    }

    /// A created and started container running `sleep 60`, after `edit`.
    #[track_caller]
    pub fn running(name: &str, edit: impl FnOnce(&mut Value)) -> Self {
        let c = Container::new(name);
        c.edit(|cfg| {
            set_args(cfg, &["sleep", "60"]);
            edit(cfg);
        });
        c.create();
        c.start();
        c
    }

    /// `RUNTIME --root ROOT ARGS...`, run in the test's temp dir.
    pub fn cmd(&self, args: &[&str]) -> Output {
        exec(&mut self.command(args))
    }

    /// `create --bundle B [EXTRA...] ID`, unchecked.
    pub fn try_create(&self, extra: &[&str]) -> Output {
        let mut args = vec!["create", "--bundle", p(&self.bundle)];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.cmd(&args)
    }

    #[track_caller]
    pub fn create(&self) {
        self.try_create(&[]).ok();
    }

    #[track_caller]
    pub fn start(&self) {
        self.cmd(&["start", &self.id]).ok();
    }

    /// `run [EXTRA...] --bundle B ID` in the foreground.
    pub fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--bundle", p(&self.bundle), &self.id]);
        self.cmd(&args)
    }

    /// `kill ID [SIGNAL]`, checked.
    #[track_caller]
    pub fn kill(&self, signal: Option<&str>) {
        let mut args = vec!["kill", self.id.as_str()];
        args.extend(signal);
        self.cmd(&args).ok();
    }

    #[track_caller]
    pub fn delete(&self) {
        self.cmd(&["delete", &self.id]).ok();
    }

    #[track_caller]
    pub fn state(&self) -> Value {
        let out = self.cmd(&["state", &self.id]);
        serde_json::from_str(out.ok()).unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    #[track_caller]
    pub fn status(&self) -> String {
        self.state()["status"]
            .as_str()
            .expect("state has a status")
            .to_string()
    }

    #[track_caller]
    pub fn pid(&self) -> i32 {
        let pid = self.state()["pid"].as_i64().expect("state has a pid");
        i32::try_from(pid).expect("pid fits in i32")
    }

    /// Polls `state` until the status is `want`; panics after TIMEOUT.
    #[track_caller]
    pub fn wait_status(&self, want: &str) {
        wait_for(&format!("container {} to be {want}", self.id), || {
            self.status() == want
        });
    }

    /// Creates the container with `args` as its program.
    #[track_caller]
    pub fn create_with(&self, args: &[&str]) {
        self.edit(|cfg| set_args(cfg, args));
        self.create();
    }

    /// Creates the container with `args` as its program and starts it.
    #[track_caller]
    pub fn start_with(&self, args: &[&str]) {
        self.create_with(args);
        self.start();
    }

    /// The ids that `list -q` shows in this container's root.
    pub fn listed_ids(&self) -> Vec<String> {
        self.cmd(&["list", "-q"])
            .ok()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Asserts that no trace of the container is left: unknown to `list`
    /// and `state`, its init process (if `pid` is known) gone, no cgroup
    /// directory and no host mount under the bundle.
    #[track_caller]
    pub fn assert_gone(&self, pid: Option<i32>) {
        assert!(
            !self.listed_ids().contains(&self.id),
            "{} still listed",
            self.id
        );
        let state = self.cmd(&["state", &self.id]);
        assert!(
            !state.success(),
            "state of a deleted container succeeded: {state}"
        );
        if let Some(pid) = pid {
            wait_for(&format!("process {pid} of {} to go", self.id), || {
                !alive(pid)
            });
        }
        let mut cgroups = Vec::new();
        for m in host_mounts()
            .iter()
            .filter(|m| m.fstype.starts_with("cgroup"))
        {
            find_dirs_named(Path::new(&m.target), &self.id, 4, &mut cgroups);
        }
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        let mounts = mounts_under(&self.bundle);
        assert!(
            mounts.is_empty(),
            "host mounts left under the bundle: {mounts:?}"
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = try_exec(&mut self.command(&["delete", "--force", &self.id]));
        // Never let remove_dir_all walk into a mount (it would delete the
        // mounted files): detach anything a test or a runtime left here.
        for target in mounts_under(&self.dir).iter().rev() {
            if let Ok(c) = CString::new(target.as_bytes()) {
                // SAFETY: umount2 with a valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Directories named `name` under `dir`, down to `depth` levels (a runtime
/// may nest a container's cgroup under its own, as runc does for memory here).
fn find_dirs_named(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
    let subdirs = fs::read_dir(dir).into_iter().flatten().flatten();
    for entry in subdirs.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        if entry.file_name() == name {
            found.push(entry.path());
        } else if depth > 1 {
            find_dirs_named(&entry.path(), name, depth - 1, found);
        }
    }
}

/// Polls `cond` until it holds; panics after TIMEOUT saying what it waited for.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the ")" closing the name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A mount of the host (this test process's mount namespace).
pub struct HostMountInfo {
    pub target: String,
    pub fstype: String,
    /// The superblock options (for cgroup v1: its controllers).
    pub options: String,
}

/// The host's mount table, from /proc/self/mountinfo.
pub fn host_mounts() -> Vec<HostMountInfo> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(HostMountInfo {
                target: unescape_mount_path(fields.get(4)?),
                fstype: fields.get(sep + 1)?.to_string(),
                options: fields.get(sep + 3).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Host mount points at or under `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    host_mounts()
        .into_iter()
        .map(|m| m.target)
        .filter(|t| Path::new(t).starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mount_path(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mount the test makes on the host, detached on drop.
pub struct HostMount(PathBuf);

impl HostMount {
    fn mount(source: &Path, target: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
        let c = |p: &[u8]| CString::new(p).expect("no NUL in path");
        let (src, dst) = (
            c(source.as_os_str().as_bytes()),
            c(target.as_os_str().as_bytes()),
        );
        let fstype = fstype.map(|t| c(t.as_bytes()));
        let fs_ptr = fstype.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        // SAFETY: valid C strings (or null fstype), no data argument.
        let rc =
            unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs_ptr, flags, std::ptr::null()) };
        assert_eq!(
            rc,
            0,
            "mount {source:?} on {target:?}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// A fresh tmpfs on `target`.
    pub fn tmpfs(target: &Path) -> Self {
        Self::mount(Path::new("tmpfs"), target, Some("tmpfs"), 0);
        HostMount(target.to_path_buf())
    }

    /// `target` bind-mounted on itself and made a shared mount.
    pub fn shared_bind(target: &Path) -> Self {
        Self::mount(target, target, None, libc::MS_BIND);
        let guard = HostMount(target.to_path_buf());
        Self::mount(Path::new("none"), target, None, libc::MS_SHARED);
        guard
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_bytes()).expect("no NUL in path");
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

// ---- config.json edits ----

pub fn set_args(cfg: &mut Value, args: &[&str]) {
    cfg["process"]["args"] = json!(args);
}

/// `sh -c SCRIPT` as the container's program.
pub fn set_sh(cfg: &mut Value, script: &str) {
    set_args(cfg, &["sh", "-c", script]);
}

pub fn add_mount(cfg: &mut Value, mount: Value) {
    cfg["mounts"]
        .as_array_mut()
        .expect("mounts array")
        .push(mount);
}

/// A bind mount of a host path, e.g. `bind(&dir, "/mnt", &["rbind", "ro"])`.
pub fn bind(source: &Path, destination: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

pub fn add_namespace(cfg: &mut Value, ns: Value) {
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces array")
        .push(ns);
}

pub fn writable_root(cfg: &mut Value) {
    cfg["root"]["readonly"] = json!(false);
}

/// Runs `args` in a new container in the foreground (`run`), after applying
/// `edit` to its config; returns what it printed and its exit code.
pub fn run_in_container(name: &str, edit: impl FnOnce(&mut Value), args: &[&str]) -> Output {
    let c = Container::new(name);
    c.edit(|cfg| {
        set_args(cfg, args);
        edit(cfg);
    });
    c.run(&[])
}

/// Runs a shell script in a new container; it must succeed. Returns stdout.
#[track_caller]
pub fn sh_in_container(name: &str, edit: impl FnOnce(&mut Value), script: &str) -> String {
    run_in_container(name, edit, &["sh", "-c", script])
        .ok()
        .to_string()
}

/// The host's namespace of a kind, as `readlink /proc/self/ns/KIND` shows it.
pub fn host_ns(kind: &str) -> String {
    let link = fs::read_link(format!("/proc/self/ns/{kind}")).expect("read ns link");
    link.to_string_lossy().into_owned()
}

/// Receives one file descriptor sent with SCM_RIGHTS.
pub fn recv_fd(stream: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut data = [0u8; 4096]; // the runtime may send the pty's name along
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 8]; // u64 for cmsghdr alignment
                                 // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(
        n >= 0,
        "recvmsg on the console socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: msg was filled in by recvmsg; CMSG_* walk its control buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !cmsg.is_null()
                && (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_RIGHTS,
            "no file descriptor came over the console socket"
        );
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        OwnedFd::from_raw_fd(fd)
    }
}

/// A test that does not apply to the runtime under test (runc 1.1.5 lacks
/// the feature, or the fault points are brig's): says why on stderr and
/// records it in target/tmp/skipped-<runtime>.txt, which hack/test lists
/// after the phase, so that a skip is never counted as a pass unseen.
pub fn skipped(why: &str) {
    eprintln!("SKIPPED: {why}");
    let name = std::thread::current().name().unwrap_or("?").to_string();
    let rt = Path::new(&runtime())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("skipped-{rt}.txt"));
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&file) {
        use std::io::Write;
        let _ = writeln!(f, "{name}: {}", why.lines().next().unwrap_or(""));
    }
}

/// The id map of the tests' user-namespaced containers: their 0-65535 are
/// the host's 100000 on.
pub fn userns_map() -> Value {
    json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
}

/// The rootfs owned by the mapped root, as a user-namespaced engine would.
pub fn chown_to_mapped_root(c: &Container) {
    exec(Command::new("chown").args(["-hR", "100000:100000", p(&c.rootfs())])).ok();
}

/// A new user namespace mapped with [`userns_map`], the rootfs chowned to
/// match.
pub fn in_user_namespace(c: &Container) {
    chown_to_mapped_root(c);
    c.edit(|cfg| {
        add_namespace(cfg, json!({"type": "user"}));
        cfg["linux"]["uidMappings"] = userns_map();
        cfg["linux"]["gidMappings"] = userns_map();
    });
}

//! A RUN step: a brig container, created through brig's own library (the
//! code path of `brig run`), on the overlay the step's changes go to. Its
//! output streams to ours as it happens, and the last lines are kept for
//! the error when it fails.

use crate::container::{create, run, store::Store as Containers};
use crate::error::{Error, IoContext, Result};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Docker's default capabilities for build containers: what package
/// managers need (chown, setuid for privilege drops, mknod...), no more.
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// How long a RUN may take to stop after Ctrl-C (forwarded to it) before
/// it is killed.
const KILL_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How many lines of a failed RUN's output the error shows.
const TAIL: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// The host's network namespace (the default: hoist has no bridge).
    Host,
    /// A namespace of its own with only loopback.
    None,
}

pub struct RunSpec<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// The process user as config.json wants it ({"uid", "gid", ...}).
    pub user: Value,
    pub network: Network,
    /// The rootfs: the merged directory of the step's overlay.
    pub rootfs: &'a Path,
    /// RUN --mount's entries for the spec's mounts.
    pub mounts: Vec<Value>,
}

/// What became of a RUN.
pub struct Ran {
    pub code: i32,
    /// Its last lines of output, for an error message.
    pub tail: Vec<String>,
}

/// The cgroup under which RUN containers go, in each hierarchy: one
/// parent of hoist's instead of a new cgroup at every root. It stays,
/// empty, as Docker's and podman's parents do.
pub const CGROUP_PARENT: &str = "/hoist";

fn spec(r: &RunSpec, id: &str) -> Result<Value> {
    let mut spec: Value = serde_json::from_str(&crate::spec::default_spec_json(false))
        .map_err(|e| Error::Other(format!("default spec: {e}")))?;
    let p = &mut spec["process"];
    p["args"] = json!(r.args);
    p["env"] = json!(r.env);
    p["cwd"] = json!(r.cwd);
    p["user"] = r.user.clone();
    p["noNewPrivileges"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        p["capabilities"][set] = json!(CAPS);
    }
    spec["root"] = json!({"path": r.rootfs, "readonly": false});
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.extend(r.mounts.iter().cloned());
    }
    if crate::linux::idmap::in_user_namespace() {
        // An unprivileged build: the RUN container nests a user namespace
        // over every id the build's own namespace has.
        let (uid, gid) = crate::linux::idmap::identity_maps()?;
        spec["linux"]["uidMappings"] = json!(uid);
        spec["linux"]["gidMappings"] = json!(gid);
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.push(json!({"type": "user"}));
        }
    } else {
        let name = id.strip_prefix("hoist-").unwrap_or(id);
        spec["linux"]["cgroupsPath"] = json!(format!("{CGROUP_PARENT}/{name}"));
    }
    spec["hostname"] = json!("hoist-build");
    if r.network == Network::Host {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }
    Ok(spec)
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs the step's process to its end in a container whose state lives
/// under `state_dir`; `echo` says whether its output goes to our stdout.
pub fn run(r: &RunSpec, scratch: &Path, state_dir: &Path, echo: bool) -> Result<Ran> {
    let bundle = scratch.join("bundle");
    fs::create_dir_all(&bundle).at(&bundle)?;
    let id = format!(
        "hoist-build-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let cfg = serde_json::to_vec_pretty(&spec(r, &id)?).map_err(|e| Error::Other(e.to_string()))?;
    let cfg_path = bundle.join("config.json");
    fs::write(&cfg_path, cfg).at(&cfg_path)?;
    let containers = Containers::new(state_dir);
    let opts = run::Options {
        create: create::Options {
            bundle: bundle.clone(),
            // In a user namespace no cgroup is ours unless delegated.
            rootless: crate::linux::idmap::in_user_namespace(),
            ..Default::default()
        },
        detach: false,
        keep: false,
        kill_after: Some(KILL_AFTER),
    };
    let mut tee = Tee::start(echo, &scratch.join("tail"))?;
    // run blocks the signals it forwards; between steps the build's own
    // handlers (crate::interrupt) must see them again.
    let mask =
        nix::sys::signal::SigSet::thread_get_mask().map_err(|e| Error::sys("sigprocmask", e))?;
    let code = run::run(&containers, &id, &opts);
    let _ = mask.thread_set_mask();
    let tail = tee.stop();
    // A failed create may leave the container behind: nothing may stay.
    let _ = crate::container::delete::delete(&containers, &id, true);
    let code = code?;
    Ok(Ran { code, tail })
}

/// The container inherits our stdio: while it runs, fds 1 and 2 are a pipe
/// whose other end a forked process of ours copies to the real stdout,
/// keeping the last lines in a file for the error message; fd 0 is
/// /dev/null. A process, not a thread: brig clones the container's init
/// from this process, and a clone taken while another thread holds a lock
/// (the allocator's, stdout's) would inherit it held.
struct Tee {
    saved: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    copier: Option<nix::unistd::Pid>,
    tail_file: std::path::PathBuf,
}

impl Tee {
    fn start(echo: bool, tail_file: &Path) -> Result<Tee> {
        let sys = |what: &'static str| move |e| Error::sys(what, e);
        let (rd, wr) = nix::unistd::pipe().map_err(sys("pipe"))?;
        std::io::stdout().flush().ok();
        // SAFETY: hoist build runs single-threaded here (its worker threads
        // are scoped and joined), so the child can allocate and write.
        match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
            nix::unistd::ForkResult::Child => {
                drop(wr);
                let code = copy_tail(rd, echo, tail_file);
                // SAFETY: _exit skips the parent's atexit work and buffers.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(rd);
                let saved = (
                    nix::unistd::dup(std::io::stdin().as_fd()).map_err(sys("dup stdin"))?,
                    nix::unistd::dup(std::io::stdout().as_fd()).map_err(sys("dup stdout"))?,
                    nix::unistd::dup(std::io::stderr().as_fd()).map_err(sys("dup stderr"))?,
                );
                let null = fs::File::open("/dev/null").at("/dev/null")?;
                nix::unistd::dup2_stdin(&null).map_err(sys("dup2 stdin"))?;
                nix::unistd::dup2_stdout(&wr).map_err(sys("dup2 stdout"))?;
                nix::unistd::dup2_stderr(&wr).map_err(sys("dup2 stderr"))?;
                Ok(Tee {
                    saved: Some(saved),
                    copier: Some(child),
                    tail_file: tail_file.to_path_buf(),
                })
            }
        }
    }

    /// Puts our stdio back; once the container's copies are closed too,
    /// the copier sees the end of the pipe and exits.
    fn stop(&mut self) -> Vec<String> {
        if let Some((i, o, e)) = self.saved.take() {
            let _ = nix::unistd::dup2_stdin(&i);
            let _ = nix::unistd::dup2_stdout(&o);
            let _ = nix::unistd::dup2_stderr(&e);
        }
        if let Some(pid) = self.copier.take() {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        fs::read_to_string(&self.tail_file)
            .map(|t| t.lines().map(String::from).collect())
            .unwrap_or_default()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The copier: the pipe to stdout (when echoing) until its end, then the
/// last lines to `tail_file`.
fn copy_tail(rd: OwnedFd, echo: bool, tail_file: &Path) -> i32 {
    let mut rd = fs::File::from(rd);
    let mut out = std::io::stdout().lock();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut partial = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match rd.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if echo {
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
        partial.extend_from_slice(&buf[..n]);
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            tail.push_back(String::from_utf8_lossy(&line[..i]).into_owned());
            if tail.len() > TAIL {
                tail.pop_front();
            }
        }
    }
    if !partial.is_empty() {
        tail.push_back(String::from_utf8_lossy(&partial).into_owned());
        if tail.len() > TAIL {
            tail.pop_front();
        }
    }
    let text: String = tail.iter().map(|l| format!("{l}\n")).collect();
    match fs::write(tail_file, text) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

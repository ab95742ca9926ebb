//! The six OCI hook points. Each hook gets the container's state JSON on
//! stdin; its path, args, env and timeout are honoured as runc does.
//!
//! Where each point runs:
//! - prestart, createRuntime: `create`, in the runtime's namespaces, once
//!   init has built the rootfs and before it pivots into it;
//! - createContainer: init, in the container's namespaces, before pivot_root;
//! - startContainer: init, after `start`, before the user's program;
//! - poststart: `start` (or `run`) once the program runs; failures only logged;
//! - poststop: `delete`, once the container is gone; failures only logged.

use crate::error::{Error, Result};
use crate::linux::pidfd::Pidfd;
use oci_spec::runtime::{Hook, Hooks};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    pub const ALL: [Point; 6] = [
        Point::Prestart,
        Point::CreateRuntime,
        Point::CreateContainer,
        Point::StartContainer,
        Point::Poststart,
        Point::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }

    #[allow(deprecated)] // prestart is deprecated in the spec, still honoured
    fn of(self, h: &Hooks) -> &[Hook] {
        let list = match self {
            Point::Prestart => h.prestart(),
            Point::CreateRuntime => h.create_runtime(),
            Point::CreateContainer => h.create_container(),
            Point::StartContainer => h.start_container(),
            Point::Poststart => h.poststart(),
            Point::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// Whether any hook is registered at `point`.
pub fn any(hooks: Option<&Hooks>, point: Point) -> bool {
    hooks.is_some_and(|h| !point.of(h).is_empty())
}

/// Checks what the spec requires of every hook, so a bad one fails create
/// before anything runs.
pub fn validate(hooks: &Hooks) -> std::result::Result<(), String> {
    for point in Point::ALL {
        for h in point.of(hooks) {
            if !h.path().is_absolute() {
                return Err(format!(
                    "hooks.{}: path {:?} must be absolute",
                    point.name(),
                    h.path()
                ));
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    return Err(format!(
                        "hooks.{}: timeout {t} must be positive",
                        point.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every hook of `point` in order; the first failure stops the rest.
pub fn run(hooks: Option<&Hooks>, point: Point, state: &serde_json::Value) -> Result<()> {
    run_with_env(hooks, point, state, None)
}

/// [`run`], where a hook without `env` gets `default_env` (the container's
/// for startContainer, as runc's do) instead of the runtime's own.
pub fn run_with_env(
    hooks: Option<&Hooks>,
    point: Point,
    state: &serde_json::Value,
    default_env: Option<&[String]>,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let input = state.to_string();
    for h in point.of(hooks) {
        run_one(h, input.as_bytes(), default_env).map_err(|e| {
            Error::Other(format!("{} hook {}: {e}", point.name(), h.path().display()))
        })?;
    }
    Ok(())
}

/// For the points whose failures the spec says to log, not to act on.
/// The spec: a failure is logged and the remaining hooks still run.
pub fn run_logged(hooks: Option<&Hooks>, point: Point, state: &serde_json::Value) {
    let Some(hooks) = hooks else { return };
    let input = state.to_string();
    for h in point.of(hooks) {
        if let Err(e) = run_one(h, input.as_bytes(), None) {
            crate::logging::warn(&format!(
                "{} hook {}: {e}",
                point.name(),
                h.path().display()
            ));
        }
    }
}

fn run_one(
    h: &Hook,
    input: &[u8],
    default_env: Option<&[String]>,
) -> std::result::Result<(), String> {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    if let Some(env) = h.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its input; that is its right.
        let _ = stdin.write_all(input);
    }
    if let Some(secs) = h.timeout() {
        let pid = child.id() as i32;
        let start = crate::linux::procfs::start_time(pid).unwrap_or(0);
        let exited = Pidfd::open(pid, start)
            .map(|fd| fd.wait_exit(Duration::from_secs(secs as u64)))
            .unwrap_or(true);
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {secs}s"));
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    // runc's words, which tools and tests look for.
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => Err(format!("error running hook: signal: {}", signal_words(sig))),
        None => Err(format!("error running hook: {status}")),
    }
}

/// A signal as the C library names it, in lower case ("bad system call"),
/// as Go (and so runc) prints it.
fn signal_words(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: a non-null strsignal result is a valid C string.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .to_lowercase()
}

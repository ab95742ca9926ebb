//! Test-only fault injection: `BRIG_FAULT=NAME` makes brig SIGKILL itself
//! when it reaches the point called NAME, so the tests can check that a
//! `create` killed at any step leaves nothing that `delete --force` cannot
//! remove, and nothing that looks like a working container.
//!
//! Not a feature: never set BRIG_FAULT outside the tests. When it is unset
//! (always, in real use) a point costs one load of a `OnceLock`: the
//! environment is read once per process.

use std::sync::OnceLock;

/// Every point, in the order `create` passes them (tests/faults.rs runs a
/// create killed at each one).
pub const POINTS: &[&str] = &[
    // store::claim: the directory made, state.json not yet written.
    "claim-dir",
    // The id claimed: state.json written (status creating, no pid).
    "claimed",
    // The exec fifo made.
    "fifo-made",
    // Init cloned (maybe not yet in its cgroup), nothing answered yet.
    "cloned",
    // The cgroup directories made, nothing written into them yet. Here,
    // after the clone, unless init has a user namespace or joins
    // namespaces by path, or brig is rootless: then before "fifo-made".
    "cgroup-created",
    // The cgroup's limits and device rules written.
    "cgroup-configured",
    // Init cloned, in its cgroup, rootfs built, asking for the runtime's
    // hooks (only when the spec has prestart/createRuntime/... hooks).
    "hooks",
    // The runtime-side hooks have run; init not yet told.
    "hooks-done",
    // Init is ready (its pid not yet recorded).
    "init-ready",
    // The state with init's pid, about to be saved.
    "save-state",
    // The state with init's pid saved.
    "state-saved",
    // --pid-file about to be written.
    "pid-file",
    // --pid-file written; init not yet told that its state is saved.
    "pid-file-written",
];

fn armed() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var("BRIG_FAULT").ok())
        .as_deref()
}

/// A full disk at this point when `BRIG_FAULT` is `enospc:NAME`: the error
/// a write would have returned, so the test of a failing step does not
/// depend on filling a filesystem to the exact byte.
pub fn no_space(name: &str) -> std::io::Result<()> {
    match armed().and_then(|a| a.strip_prefix("enospc:")) {
        Some(n) if n == name => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
        _ => Ok(()),
    }
}

/// SIGKILLs this process if `BRIG_FAULT` names this point.
pub fn point(name: &str) {
    if armed() == Some(name) {
        debug_assert!(POINTS.contains(&name), "fault point {name} not in POINTS");
        // SAFETY: raise(2) has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

//! A stop request for the whole process (SIGINT, SIGTERM, SIGHUP), for
//! long jobs that must stop at a safe point rather than die mid-way with
//! mounts and half-written files: `hoist build` installs the handlers and
//! checks between steps; a foreground container wait notes the signals it
//! reads itself.

use crate::error::{Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The signals that ask a job to stop.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The first stop signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Stop signals that were ignored when the job started (`nohup`): they are
/// no stop request, however they are read.
static IGNORED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// Catches the stop signals from now on instead of dying of them. A signal
/// that was ignored when brig started stays ignored (`nohup hoist build`
/// must survive the hangup it asked to ignore).
pub fn install() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in STOP_SIGNALS {
        // SAFETY: the handler only stores into an atomic.
        let old = unsafe { sigaction(sig, &action) }
            .map_err(|e| Error::sys(format!("sigaction {sig}"), e))?;
        if matches!(old.handler(), SigHandler::SigIgn) {
            IGNORED.fetch_or(1 << sig as i32, Ordering::SeqCst);
            // SAFETY: restoring the disposition the process started with.
            unsafe { sigaction(sig, &old) }
                .map_err(|e| Error::sys(format!("sigaction {sig}"), e))?;
        }
    }
    Ok(())
}

/// Records a stop signal read some other way (a signalfd: blocked signals
/// arrive there even when ignored).
pub fn note(sig: i32) {
    if (0..64).contains(&sig) && IGNORED.load(Ordering::SeqCst) & (1 << sig) != 0 {
        return;
    }
    on_signal(sig);
}

/// Whether `sig` is one of the stop signals.
pub fn is_stop(sig: i32) -> bool {
    STOP_SIGNALS.iter().any(|s| *s as i32 == sig)
}

/// The stop signal received so far, if any.
pub fn received() -> Option<Signal> {
    Signal::try_from(RECEIVED.load(Ordering::SeqCst)).ok()
}

/// An error once a stop signal has arrived.
pub fn check() -> Result<()> {
    match received() {
        Some(sig) => Err(Error::Other(format!("interrupted by {sig}"))),
        None => Ok(()),
    }
}

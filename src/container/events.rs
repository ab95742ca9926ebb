//! `events`: resource statistics and OOM notifications, as runc prints them.

use super::store::Store;
use super::Status;
use crate::error::{Error, Result};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

fn stats_event(id: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"type": "stats", "id": id, "data": data})
}

/// One stats object (`events --stats`).
pub fn stats(store: &Store, id: &str) -> Result<serde_json::Value> {
    let c = store.load(id)?;
    let cg = c
        .cgroup()
        .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup")))?;
    Ok(stats_event(id, cg.stats()))
}

/// Streams stats every `interval` and an `oom` event whenever the OOM
/// killer acts, until the container stops.
pub fn stream(store: &Store, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let (cg, state) = {
        let c = store.load(id)?;
        let cg = c
            .cgroup()
            .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup")))?;
        (cg, c.state.clone())
    };
    let mut ooms = cg.oom_kills();
    let mut next = Instant::now();
    let emit = |out: &mut dyn Write, v: serde_json::Value| -> Result<()> {
        writeln!(out, "{v}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::Other(format!("writing events: {e}")))
    };
    loop {
        // Read before the liveness check: an OOM kill of init must still
        // be reported after init is gone.
        let stopped = state.status(false) == Status::Stopped;
        let now_ooms = cg.oom_kills();
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(out, json!({"type": "oom", "id": id}))?;
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(out, stats_event(id, cg.stats()))?;
            next = Instant::now() + interval;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

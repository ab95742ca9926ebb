//! `events`: resource statistics and OOM notifications, as runc prints them.

use super::store::Store;
use super::Status;
use crate::error::{Error, Result};
use std::io::Write;
use std::time::{Duration, Instant};

/// An event as runc writes one, on one line: `type`, `id`, `data`, in that
/// order (a serde_json Value would sort the keys).
#[derive(serde::Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

impl Event<'_> {
    fn line(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Other(format!("encoding an event: {e}")))
    }
}

/// One stats event (`events --stats`).
pub fn stats(store: &Store, id: &str) -> Result<String> {
    let c = store.load(id)?;
    let cg = c
        .cgroup()
        .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup")))?;
    Event {
        typ: "stats",
        id,
        data: Some(cg.stats()),
    }
    .line()
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
    let emit = |out: &mut dyn Write, e: Event| -> Result<()> {
        let line = e.line()?;
        writeln!(out, "{line}")
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
            emit(
                out,
                Event {
                    typ: "oom",
                    id,
                    data: None,
                },
            )?;
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(
                out,
                Event {
                    typ: "stats",
                    id,
                    data: Some(cg.stats()),
                },
            )?;
            next = Instant::now() + interval;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_runcs_key_order() {
        let e = Event {
            typ: "stats",
            id: "c1",
            data: Some(serde_json::json!({"pids": {"current": 1}})),
        };
        assert_eq!(
            e.line().unwrap(),
            r#"{"type":"stats","id":"c1","data":{"pids":{"current":1}}}"#
        );
    }
}

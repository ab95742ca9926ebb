//! Error and debug lines in runc's formats: text on stderr, and JSON lines
//! (`{"level":"error","msg":"...","time":"..."}`) in the --log file, which
//! containerd reads back to show users why a command failed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
    started: std::time::Instant,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Set in a process that has entered a container's mount namespace: the
/// log's path would name a file in the container's root there.
static FILE_DETACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on this process writes no log file (its errors reach the
/// parent over the sync channel, which logs them).
pub fn detach_file() {
    FILE_DETACHED.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
        started: std::time::Instant::now(),
    });
}

fn line(level: &str, msg: &str, format: Format) -> String {
    let time = crate::container::create::now_rfc3339();
    match format {
        Format::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string() + "\n"
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

fn write(level: &str, msg: &str) {
    let Some(c) = CONFIG.get() else { return };
    if FILE_DETACHED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if let Some(path) = &c.file {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line(level, msg, c.format).as_bytes());
        }
    }
}

/// Whether the --log file can be opened for appending (and made if
/// missing): a command fails at start if not, as runc's does.
pub fn check_file() -> std::result::Result<(), String> {
    let Some(path) = CONFIG.get().and_then(|c| c.file.as_ref()) else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| format!("opening log file {}: {e}", path.display()))
}

/// One line on stderr and, with --log, one entry in the log file. The line
/// says "error" as runc's do, for tools that look for the word.
pub fn error(msg: &str) {
    write("error", msg);
    eprintln!("brig: error: {msg}");
}

/// Something went wrong that the operation survives (poststart/poststop hooks).
pub fn warn(msg: &str) {
    write("warning", msg);
    eprintln!("brig: warning: {msg}");
}

pub fn debug(msg: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        write("debug", msg);
        if CONFIG.get().is_some_and(|c| c.file.is_none()) {
            eprintln!("brig: debug: {msg}");
        }
    }
}

/// A debug line stamped with the microseconds since brig started (the
/// process, or for init the `create` it was forked from): where start-up
/// time goes, with `--debug`.
pub fn step(what: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        let us = CONFIG.get().map_or(0, |c| c.started.elapsed().as_micros());
        debug(&format!("[{us:>6}us pid {}] {what}", std::process::id()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_level_msg_and_time() {
        let l = line("error", "boom \"x\"", Format::Json);
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}

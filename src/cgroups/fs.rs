//! Reading and writing cgroup files, with errors that name the file and the value.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    Writer::open(dir, file)?.write(value)
}

/// A cgroup file kept open for several writes, each a separate record.
pub struct Writer {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Writer {
    pub fn open(dir: &Path, file: &str) -> Result<Writer> {
        let path = dir.join(file);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        Ok(Writer { path, file })
    }

    pub fn write(&self, value: &str) -> Result<()> {
        (&self.file)
            .write_all(value.as_bytes())
            .map_err(|e| Error::Other(format!("writing {value:?} to {}: {e}", self.path.display())))
    }
}

pub fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn read_u64(dir: &Path, file: &str) -> u64 {
    read(dir, file).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `key value` lines (memory.stat, cgroup.events, ...) as a map.
pub fn read_keyed(dir: &Path, file: &str) -> std::collections::BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

pub fn mkdir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// The processes of the cgroup and of every cgroup below it (a container
/// may make its own, as systemd in a container does).
pub fn pids(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = read(dir, "cgroup.procs")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    for sub in subdirs(dir) {
        out.extend(pids(&sub));
    }
    out
}

fn subdirs(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Removes the cgroup and every cgroup below it, deepest first.
pub fn remove(dir: &Path) -> Result<()> {
    for sub in subdirs(dir) {
        remove(&sub)?;
    }
    remove_one(dir)
}

/// rmdir, retried briefly: the kernel keeps a cgroup busy for a moment
/// after its last process has exited.
fn remove_one(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
    }
}

/// Polls until `done` holds, for state changes (freezing) the kernel
/// completes asynchronously.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return Err(Error::Other(format!("timed out waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// -1 (or any negative) means "no limit".
pub fn limit(v: i64, unlimited: &str) -> String {
    if v < 0 {
        unlimited.to_string()
    } else {
        v.to_string()
    }
}

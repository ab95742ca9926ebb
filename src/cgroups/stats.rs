//! The data object of runc's `events --stats`, read from the cgroup files.

use super::fs;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn percpu(dir: &Path) -> Vec<u64> {
    fs::read(dir, "cpuacct.usage_percpu")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

pub fn v1(
    cpu: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    blkio: Option<PathBuf>,
    hugetlb: Option<PathBuf>,
) -> Value {
    let mut data = json!({});
    if let Some(d) = cpu {
        let ticks = fs::read_keyed(&d, "cpuacct.stat");
        // cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
        let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * 10_000_000;
        data["cpu"] = json!({
            "usage": {
                "total": fs::read_u64(&d, "cpuacct.usage"),
                "percpu": percpu(&d),
                "kernel": ns("system"),
                "user": ns("user"),
            },
            "throttling": {}
        });
    }
    if let Some(d) = memory {
        let entry = |prefix: &str| {
            json!({
                "limit": fs::read_u64(&d, &format!("{prefix}.limit_in_bytes")),
                "usage": fs::read_u64(&d, &format!("{prefix}.usage_in_bytes")),
                "max": fs::read_u64(&d, &format!("{prefix}.max_usage_in_bytes")),
                "failcnt": fs::read_u64(&d, &format!("{prefix}.failcnt")),
            })
        };
        data["memory"] = json!({
            "usage": entry("memory"),
            "swap": entry("memory.memsw"),
            "kernel": entry("memory.kmem"),
            "raw": fs::read_keyed(&d, "memory.stat"),
        });
    }
    if let Some(d) = pids {
        data["pids"] = json!({
            "current": fs::read_u64(&d, "pids.current"),
            "limit": fs::read_u64(&d, "pids.max"),
        });
    }
    if let Some(d) = blkio {
        data["blkio"] = json!({
            "ioServiceBytesRecursive": blkio_entries(&d, "blkio.throttle.io_service_bytes"),
            "ioServicedRecursive": blkio_entries(&d, "blkio.throttle.io_serviced"),
        });
    }
    if let Some(d) = hugetlb {
        data["hugetlb"] = hugetlb_v1(&d);
    }
    data
}

/// "8:0 Read 4096" lines as runc's entries ({major, minor, op, value});
/// the "Total" line is not one.
fn blkio_entries(dir: &Path, file: &str) -> Value {
    let text = fs::read(dir, file).unwrap_or_default();
    Value::Array(text.lines().filter_map(blkio_entry).collect())
}

fn blkio_entry(line: &str) -> Option<Value> {
    let mut f = line.split_whitespace();
    let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
    let (major, minor) = dev.split_once(':')?;
    Some(json!({
        "major": major.parse::<u64>().ok()?,
        "minor": minor.parse::<u64>().ok()?,
        "op": op,
        "value": value.parse::<u64>().ok()?,
    }))
}

fn hugetlb_v1(dir: &Path) -> Value {
    let mut out = json!({});
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|s| s.strip_suffix(".usage_in_bytes"))
            .filter(|s| !s.contains('.'))
        {
            out[size] = json!({
                "usage": fs::read_u64(dir, &name),
                "max": fs::read_u64(dir, &format!("hugetlb.{size}.max_usage_in_bytes")),
                "failcnt": fs::read_u64(dir, &format!("hugetlb.{size}.failcnt")),
            });
        }
    }
    out
}

pub fn v2(dir: &Path) -> Value {
    let cpu = fs::read_keyed(dir, "cpu.stat");
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    let max = |f: &str| match fs::read(dir, f).as_deref() {
        Some("max") | None => 0,
        Some(v) => v.parse().unwrap_or(0),
    };
    json!({
        "cpu": {
            "usage": {"total": us("usage_usec"), "kernel": us("system_usec"), "user": us("user_usec")},
            "throttling": {
                "periods": cpu.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": cpu.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": us("throttled_usec"),
            }
        },
        "memory": {
            "usage": {"usage": fs::read_u64(dir, "memory.current"), "limit": max("memory.max"),
                      "max": fs::read_u64(dir, "memory.peak")},
            "swap": {"usage": fs::read_u64(dir, "memory.swap.current"), "limit": max("memory.swap.max")},
            "raw": fs::read_keyed(dir, "memory.stat"),
        },
        "pids": {"current": fs::read_u64(dir, "pids.current"), "limit": max("pids.max")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_become_runcs_entries() {
        assert_eq!(
            blkio_entry("8:16 Read 4096"),
            Some(json!({"major": 8, "minor": 16, "op": "Read", "value": 4096}))
        );
        assert_eq!(blkio_entry("Total 4096"), None);
    }
}

//! `ps`: the processes in the container's cgroup (or, for a rootless
//! container without one, in its pid namespace).

use super::store::Store;
use crate::error::{Error, Result};

pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let c = store.load(id)?;
    let mut pids = match c.cgroup() {
        Some(cg) => cg.pids()?,
        None => super::kill::container_pids(&c),
    };
    pids.sort_unstable();
    Ok(pids)
}

/// `ps` output filtered to the container's pids: runc runs ps(1) with the
/// caller's arguments and keeps the header and the lines whose PID column
/// belongs to the container.
pub fn table(pids: &[i32], ps_args: &[String]) -> Result<String> {
    let args = if ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::Other(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Other("ps output has no PID column".into()))?;
    let mut result = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            result += line;
            result.push('\n');
        }
    }
    Ok(result)
}

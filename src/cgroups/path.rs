//! linux.cgroupsPath, resolved as runc's cgroupfs driver does: absolute
//! paths hang from each hierarchy's root, relative ones from the runtime's
//! own cgroup, and no path means `<own cgroup>/<id>`. Nothing may climb out.

use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// Lexically cleans `p`; `..` that would climb above the start is an error.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Our own cgroup, from /proc/self/cgroup: the cgroup2 entry on a v2 host,
/// else the first v1 one (runc nests relative paths under it).
fn own_cgroup() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut v1 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (id, ctrls, path) = (f.next(), f.next(), f.next());
        if let (Some(id), Some(ctrls), Some(path)) = (id, ctrls, path) {
            if id == "0" && ctrls.is_empty() {
                return PathBuf::from(path);
            }
            if v1.is_none() && !ctrls.starts_with("name=") {
                v1 = Some(PathBuf::from(path));
            }
        }
    }
    v1.unwrap_or_else(|| PathBuf::from("/"))
}

/// The container's cgroup, relative to each hierarchy root.
pub fn resolve(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        Error::Other(format!(
            "linux.cgroupsPath {:?}: {why}",
            cgroups_path.unwrap_or(Path::new(""))
        ))
    };
    let p = match cgroups_path {
        Some(p) if p.to_string_lossy().contains(':') && !p.is_absolute() => {
            return Err(bad(
                "looks like a systemd slice:prefix:name path, which needs --systemd-cgroup (not supported yet)",
            ))
        }
        Some(p) if p.is_absolute() => clean(p).ok_or_else(|| bad("climbs out of the cgroup root"))?,
        Some(p) if !p.as_os_str().is_empty() => {
            let rel = clean(p).ok_or_else(|| bad("climbs out of the runtime's cgroup"))?;
            clean(&own_cgroup().join(rel)).ok_or_else(|| bad("climbs out of the cgroup root"))?
        }
        _ => clean(&own_cgroup().join(id)).ok_or_else(|| bad("invalid"))?,
    };
    if p.as_os_str().is_empty() {
        return Err(bad("names the cgroup root itself"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_climb_out() {
        assert_eq!(
            resolve(Some(Path::new("/a/b")), "x").unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(
            resolve(Some(Path::new("/a/../b")), "x").unwrap(),
            PathBuf::from("b")
        );
        assert!(resolve(Some(Path::new("/../etc")), "x").is_err());
        assert!(resolve(Some(Path::new("../../x")), "x").is_err());
        assert!(resolve(Some(Path::new("/")), "x").is_err());
        let e = resolve(Some(Path::new("system.slice:brig:x")), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("systemd"), "{e}");
        assert!(resolve(None, "abc").unwrap().ends_with("abc"));
        assert!(resolve(Some(Path::new("rel/c")), "x")
            .unwrap()
            .ends_with("rel/c"));
    }
}

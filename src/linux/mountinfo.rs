//! /proc/self/mountinfo, parsed just enough to find mount points and cgroup layouts.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct MountInfo {
    /// The path inside its filesystem that is mounted ("/" for a whole one).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
    /// The mount is in a shared peer group ("shared:N" optional field).
    pub shared: bool,
}

/// Undoes the octal escapes (\040 for space, ...) the kernel writes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|t| u8::from_str_radix(t, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let root = unescape(pre.split(' ').nth(3)?);
            let mount_point = unescape(pre.split(' ').nth(4)?);
            let shared = pre.split(' ').skip(6).any(|f| f.starts_with("shared:"));
            let mut post = post.split(' ');
            let fs_type = post.next()?.to_string();
            let _source = post.next();
            let super_options = post.next().unwrap_or("").to_string();
            Some(MountInfo {
                root: PathBuf::from(root),
                mount_point: PathBuf::from(mount_point),
                fs_type,
                super_options,
                shared,
            })
        })
        .collect()
}

pub fn read_self() -> Vec<MountInfo> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_lines_and_escapes() {
        let text = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    50 1 0:40 / /mnt/a\\040b rw shared:1 - tmpfs tmpfs rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].fs_type, "cgroup");
        assert_eq!(m[0].super_options, "rw,cpu");
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/a b"));
        assert!(m[2].shared && !m[0].shared);
    }
}

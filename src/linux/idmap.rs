//! Writing a child's uid and gid maps. Only a process outside the new user
//! namespace may, so it is the parent's job. Root writes any map straight
//! into /proc/PID/{uid,gid}_map. An unprivileged user may write only one
//! line mapping its own id (and, for gids, only after setgroups is denied);
//! anything more goes through the setuid helpers newuidmap/newgidmap
//! (Debian's `uidmap`), which allow the ranges /etc/subuid and /etc/subgid
//! give the user.

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxIdMapping;
use std::path::Path;

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn map_file(self) -> &'static str {
        match self {
            Kind::Uid => "uid_map",
            Kind::Gid => "gid_map",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
    fn sub_file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Uid => "linux.uidMappings",
            Kind::Gid => "linux.gidMappings",
        }
    }
}

/// Writes `pid`'s uid and gid maps.
pub fn write(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        for (kind, maps) in [(Kind::Uid, uid), (Kind::Gid, gid)] {
            write_direct(pid, kind, maps)?;
        }
        return Ok(());
    }
    let egid = nix::unistd::getegid().as_raw();
    let user = User::current(euid.as_raw())?;
    for (kind, maps, own) in [(Kind::Uid, uid, euid.as_raw()), (Kind::Gid, gid, egid)] {
        if maps.is_empty() {
            continue;
        }
        if is_own_id_only(maps, own) {
            if kind == Kind::Gid {
                // The kernel lets an unprivileged writer map its gid only
                // once the namespace can never call setgroups.
                let path = format!("/proc/{pid}/setgroups");
                std::fs::write(&path, "deny").map_err(|e| Error::io(&path, e))?;
            }
            write_direct(pid, kind, maps)?;
        } else {
            let ranges = user.ranges(kind)?;
            check_allowed(kind, maps, own, &user.name, &ranges)?;
            run_helper(pid, kind, maps)?;
        }
    }
    Ok(())
}

fn mapping(container: u32, host: u32, size: u32) -> Result<LinuxIdMapping> {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()
        .map_err(|e| Error::Other(format!("id mapping: {e}")))
}

/// For an unprivileged user: uid and gid maps of root to the user and of
/// 1..N to the user's first subordinate range, when /etc/subuid and
/// /etc/subgid give it one and newuidmap/newgidmap are there to map it.
/// None otherwise (only the user's own id can then be mapped).
pub fn subordinate_maps() -> Result<Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)>> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let user = User::current(euid)?;
    let (Some(&(us, un)), Some(&(gs, gn))) = (
        user.ranges(Kind::Uid)?.first(),
        user.ranges(Kind::Gid)?.first(),
    ) else {
        return Ok(None);
    };
    if find_in_path("newuidmap").is_none() || find_in_path("newgidmap").is_none() {
        return Ok(None);
    }
    let id = |n: u64| u32::try_from(n).unwrap_or(u32::MAX - 1);
    Ok(Some((
        vec![mapping(0, euid, 1)?, mapping(1, id(us), id(un))?],
        vec![mapping(0, egid, 1)?, mapping(1, id(gs), id(gn))?],
    )))
}

/// Whether this process runs in a user namespace other than the host's
/// (its uid map is not the identity over every id).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Runs `f` in a forked child that is root in a new user namespace with
/// these maps (written by us, the parent, through [`write`]), and in the
/// other new namespaces of `also` (a mount namespace, for instance); returns
/// what `f` returned. Call it with no other thread running.
pub fn run_in_userns(
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    also: nix::sched::CloneFlags,
    f: impl FnOnce() -> Result<String>,
) -> Result<String> {
    use std::io::{Read, Write};
    let sys = |what: &'static str| move |e| Error::sys(what, e);
    let (go_r, go_w) = nix::unistd::pipe().map_err(sys("pipe"))?;
    let (say_r, say_w) = nix::unistd::pipe().map_err(sys("pipe"))?;
    // SAFETY: the caller runs us single-threaded, and the child leaves
    // through _exit.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        nix::unistd::ForkResult::Child => {
            drop(go_w);
            drop(say_r);
            let mut say = std::fs::File::from(say_w);
            let mut go = std::fs::File::from(go_r);
            let result = (|| -> Result<String> {
                let flags = nix::sched::CloneFlags::CLONE_NEWUSER | also;
                nix::sched::unshare(flags).map_err(sys("unshare"))?;
                say.write_all(b"U").map_err(|e| Error::io("pipe", e))?;
                let mut b = [0u8; 1];
                if go.read(&mut b).map_err(|e| Error::io("pipe", e))? != 1 {
                    return Err(Error::Other(
                        "the parent could not map the namespace".into(),
                    ));
                }
                nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(sys("setgid 0"))?;
                nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(sys("setuid 0"))?;
                if also.contains(nix::sched::CloneFlags::CLONE_NEWNS) {
                    // Nothing mounted here may try to reach the host's tree.
                    nix::mount::mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .map_err(sys("making / private"))?;
                }
                f()
            })();
            let (code, tag, text) = match result {
                Ok(s) => (0, b'0', s),
                Err(e) => (1, b'1', e.to_string()),
            };
            let _ = say.write_all(&[tag]);
            let _ = say.write_all(text.as_bytes());
            // SAFETY: leave without the parent's destructors and atexit work.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(go_r);
            drop(say_w);
            let mut say = std::fs::File::from(say_r);
            let mut go = std::fs::File::from(go_w);
            let mut b = [0u8; 1];
            let unshared = say.read(&mut b).map_err(|e| Error::io("pipe", e))? == 1;
            let mapped = if unshared {
                write(child.as_raw(), uid, gid)
                    .and_then(|()| go.write_all(b"G").map_err(|e| Error::io("pipe", e)))
            } else {
                Ok(())
            };
            drop(go);
            let mut reply = Vec::new();
            let _ = say.read_to_end(&mut reply);
            let status = nix::sys::wait::waitpid(child, None).map_err(sys("waitpid"))?;
            mapped?;
            let text = String::from_utf8_lossy(reply.get(1..).unwrap_or_default()).into_owned();
            match (status, reply.first()) {
                (nix::sys::wait::WaitStatus::Exited(_, 0), Some(b'0')) => Ok(text),
                (_, Some(b'1')) => Err(Error::Other(text)),
                (other, _) => Err(Error::Other(format!(
                    "the user namespace's process ended: {other:?}"
                ))),
            }
        }
    }
}

/// Maps that give a nested user namespace every id of ours, each as
/// itself (read from /proc/self/{uid,gid}_map).
pub fn identity_maps() -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let read = |file: &str| -> Result<Vec<LinuxIdMapping>> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        text.lines()
            .filter_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(|| mapping(f[0], f[0], f[2]))
            })
            .collect()
    };
    Ok((read("/proc/self/uid_map")?, read("/proc/self/gid_map")?))
}

/// Maps of root to the caller alone: what an unprivileged user without
/// subordinate ids can have.
pub fn own_maps() -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    Ok((
        vec![mapping(0, nix::unistd::geteuid().as_raw(), 1)?],
        vec![mapping(0, nix::unistd::getegid().as_raw(), 1)?],
    ))
}

fn write_direct(pid: i32, kind: Kind, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/{}", kind.map_file());
    std::fs::write(&path, map_text(maps)).map_err(|e| Error::io(&path, e))
}

/// One mapping of exactly our own id.
fn is_own_id_only(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

/// The calling user: its name and the subordinate id ranges it owns.
struct User {
    name: String,
    uid: u32,
}

impl User {
    fn current(uid: u32) -> Result<User> {
        let name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Ok(User { name, uid })
    }

    /// (start, count) ranges of /etc/subuid or /etc/subgid for this user,
    /// listed by name or by number.
    fn ranges(&self, kind: Kind) -> Result<Vec<(u64, u64)>> {
        let file = kind.sub_file();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(file, e)),
        };
        Ok(parse_ranges(&text, &self.name, self.uid))
    }
}

fn parse_ranges(text: &str, name: &str, uid: u32) -> Vec<(u64, u64)> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            (who == name || who == uid)
                .then(|| Some((start.parse().ok()?, count.parse().ok()?)))
                .flatten()
        })
        .collect()
}

/// Every mapped host range must be our own id or inside one of our
/// subordinate ranges: said here, with the numbers, rather than left to
/// newuidmap's terser refusal.
fn check_allowed(
    kind: Kind,
    maps: &[LinuxIdMapping],
    own: u32,
    name: &str,
    ranges: &[(u64, u64)],
) -> Result<()> {
    for m in maps {
        let (h, n) = (u64::from(m.host_id()), u64::from(m.size()));
        let own_only = h == u64::from(own) && n == 1;
        let inside = ranges.iter().any(|(s, c)| h >= *s && h + n <= s + c);
        if !own_only && !inside {
            let have: Vec<String> = ranges
                .iter()
                .map(|(s, c)| format!("{s}-{}", s + c - 1))
                .collect();
            let have = if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            };
            return Err(Error::Other(format!(
                "{}: host ids {h}-{} are neither {name}'s own id {own} nor in {name}'s ranges in {} ({have})",
                kind.field(),
                h + n.saturating_sub(1),
                kind.sub_file()
            )));
        }
    }
    Ok(())
}

fn run_helper(pid: i32, kind: Kind, maps: &[LinuxIdMapping]) -> Result<()> {
    let helper = kind.helper();
    let Some(path) = find_in_path(helper) else {
        return Err(Error::Other(format!(
            "{}: mapping more than your own id needs {helper} (Debian package uidmap), which is not in PATH",
            kind.field()
        )));
    };
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(&path, e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Other(format!(
            "{helper} {pid}: {} ({})",
            msg.trim().replace('\n', "; "),
            out.status
        )));
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn m(c: u32, h: u32, n: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(n)
            .build()
            .unwrap()
    }

    #[test]
    fn id_map_text_is_one_line_per_range() {
        let x = m(0, 100000, 65536);
        assert_eq!(map_text(&[x, x]), "0 100000 65536\n0 100000 65536\n");
    }

    #[test]
    fn subordinate_ranges_by_name_or_number() {
        let text = "alice:100000:65536\nbob:200000:10\n1000:300000:5\nbroken\n";
        assert_eq!(
            parse_ranges(text, "alice", 1000),
            vec![(100000, 65536), (300000, 5)]
        );
        assert_eq!(parse_ranges(text, "carol", 1001), vec![]);
    }

    #[test]
    fn only_own_id_or_subordinate_ranges_are_allowed() {
        let ranges = [(100000, 65536)];
        let ok = [m(0, 1000, 1), m(1, 100000, 65536)];
        assert!(check_allowed(Kind::Uid, &ok, 1000, "alice", &ranges).is_ok());
        let err = check_allowed(Kind::Uid, &[m(0, 200000, 10)], 1000, "alice", &ranges)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("200000-200009") && err.contains("100000-165535"),
            "{err}"
        );
        let none = check_allowed(Kind::Gid, &[m(0, 5, 1)], 1000, "alice", &[])
            .unwrap_err()
            .to_string();
        assert!(none.contains("/etc/subgid (none)"), "{none}");
        assert!(is_own_id_only(&[m(0, 1000, 1)], 1000));
        assert!(!is_own_id_only(&[m(0, 1000, 2)], 1000));
    }
}

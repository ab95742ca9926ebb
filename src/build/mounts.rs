//! RUN --mount, in BuildKit's syntax (`type=bind|cache|tmpfs|secret`,
//! comma-separated key=value fields): parsing, and the host side of each
//! mount for the RUN container's spec. What a mount brings never lands in
//! the step's layer: the container's mounts go with it, and the mount
//! points the runtime had to make are removed again ([`Stubs`]).
//!
//! - bind: a directory or file of the context, a stage or an image,
//!   read-only unless `rw`, where writes go to a scratch overlay and are
//!   thrown away. Its content is part of the step's cache key.
//! - cache: a directory kept in the store (`cache-mounts/`) from build to
//!   build, by `id` (default: the target), never part of a layer or key;
//!   `sharing=shared|private|locked` as in BuildKit; `ro` mounts it
//!   read-only.
//! - tmpfs: an empty tmpfs.
//! - secret: `hoist build --secret id=ID,src=FILE|env=VAR` as a file on a
//!   tmpfs of its own (default /run/secrets/ID), read-only, 0400.

use crate::error::{Error, IoContext, Result};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bind {
        rw: bool,
    },
    /// `ro`: the cache is mounted read-only.
    Cache {
        id: String,
        sharing: Sharing,
        ro: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
    Secret {
        id: String,
        required: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub typ: Type,
    /// Absolute, cleaned.
    pub target: String,
    /// bind and cache: a stage, an image or (none) the context.
    pub from: Option<String>,
    /// bind and cache: a path inside `from`.
    pub source: String,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

fn boolean(key: &str, v: Option<&str>) -> std::result::Result<bool, String> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("{key}={other}: want true or false")),
    }
}

fn number(key: &str, v: Option<&str>, radix: u32) -> std::result::Result<u32, String> {
    v.and_then(|v| u32::from_str_radix(v, radix).ok())
        .ok_or_else(|| format!("{key}={}: not a number", v.unwrap_or_default()))
}

/// Parses one `--mount=` value (after variable substitution).
pub fn parse(spec: &str) -> std::result::Result<Mount, String> {
    let mut fields: Vec<(String, Option<String>)> = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (part.to_ascii_lowercase(), None),
        };
        fields.push((k, v));
    }
    let typ = fields
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone().unwrap_or_default())
        .unwrap_or_else(|| "bind".into());
    if !["bind", "cache", "tmpfs", "secret"].contains(&typ.as_str()) {
        return Err(if typ == "ssh" {
            "type \"ssh\" is not supported (hoist has no SSH agent forwarding)".into()
        } else {
            format!("unknown type \"{typ}\" (bind, cache, tmpfs, secret)")
        });
    }
    let (mut target, mut from, mut source, mut id) = (None, None, None, None);
    // Binds are read-only unless rw, caches writable unless ro.
    let mut rw = typ == "cache";
    let (mut sharing, mut size, mut required) = (Sharing::Shared, None, false);
    let (mut mode, mut uid, mut gid) = (None, None, None);
    for (k, v) in &fields {
        let v = v.as_deref();
        let text = || {
            v.filter(|s| !s.is_empty())
                .map(String::from)
                .ok_or_else(|| format!("{k} needs a value"))
        };
        let applies = match k.as_str() {
            "type" => true,
            "target" | "dst" | "destination" => {
                target = Some(text()?);
                true
            }
            "from" => {
                from = Some(text()?);
                typ == "bind" || typ == "cache"
            }
            "source" | "src" => {
                source = Some(text()?);
                typ != "tmpfs"
            }
            "id" => {
                id = Some(text()?);
                typ == "cache" || typ == "secret"
            }
            "ro" | "readonly" => {
                rw = !boolean(k, v)?;
                typ == "bind" || typ == "cache"
            }
            "rw" | "readwrite" => {
                rw = boolean(k, v)?;
                typ == "bind" || typ == "cache"
            }
            "sharing" => {
                sharing = match v {
                    Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "sharing={}: want shared, private or locked",
                            v.unwrap_or_default()
                        ))
                    }
                };
                typ == "cache"
            }
            "mode" => {
                mode = Some(number(k, v, 8)?).filter(|m| *m <= 0o7777);
                if mode.is_none() {
                    return Err(format!("mode={}: not an octal mode", v.unwrap_or_default()));
                }
                typ == "cache" || typ == "secret"
            }
            "uid" => {
                uid = Some(number(k, v, 10)?);
                typ == "cache" || typ == "secret"
            }
            "gid" => {
                gid = Some(number(k, v, 10)?);
                typ == "cache" || typ == "secret"
            }
            "size" => {
                size = Some(
                    v.and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| format!("size={}: not bytes", v.unwrap_or_default()))?,
                );
                typ == "tmpfs"
            }
            "required" => {
                required = boolean(k, v)?;
                typ == "secret"
            }
            _ => return Err(format!("unknown field \"{k}\"")),
        };
        if !applies {
            return Err(format!("{k} does not apply to type={typ}"));
        }
    }
    let target = match (target, &typ[..], &id) {
        (Some(t), _, _) => t,
        (None, "secret", Some(id)) => format!("/run/secrets/{id}"),
        (None, _, _) => return Err(format!("type={typ} needs a target")),
    };
    if !target.starts_with('/') {
        return Err(format!("target \"{target}\" is not an absolute path"));
    }
    let target = super::exec::clean_abs(Path::new(&target));
    if target == "/" {
        return Err("the target cannot be /".into());
    }
    let typ = match &typ[..] {
        "bind" => Type::Bind { rw },
        "cache" => Type::Cache {
            id: id.unwrap_or_else(|| target.clone()),
            sharing,
            ro: !rw,
        },
        "tmpfs" => Type::Tmpfs { size },
        _ => Type::Secret {
            id: id.unwrap_or_else(|| {
                Path::new(&target)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            required,
        },
    };
    Ok(Mount {
        typ,
        target,
        from,
        source: source.unwrap_or_else(|| "/".into()),
        mode,
        uid,
        gid,
    })
}

/// Where a `--secret` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `id=ID,src=FILE` or `id=ID,env=VAR` (also `source=`, `type=file|env`);
/// `id=ID` alone reads the variable ID, as buildx does.
pub fn parse_secret(s: &str) -> Result<(String, SecretSource)> {
    let bad = |why: &str| Error::Other(format!("--secret {s}: {why}"));
    let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", v @ ("file" | "env"))) => typ = Some(v.to_string()),
            _ => return Err(bad("want id=ID,src=FILE or id=ID,env=VAR")),
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or_else(|| bad("no id"))?;
    let source = match (src, env, typ.as_deref()) {
        (Some(_), Some(_), _) => return Err(bad("both src and env")),
        (Some(v), None, Some("env")) | (None, Some(v), _) => SecretSource::Env(v),
        (Some(f), None, _) => SecretSource::File(PathBuf::from(f)),
        (None, None, _) => SecretSource::Env(id.clone()),
    };
    // A secret that is not there fails the build before any step runs.
    read_secret(&id, &source)?;
    Ok((id, source))
}

pub(crate) fn read_secret(id: &str, s: &SecretSource) -> Result<Vec<u8>> {
    match s {
        SecretSource::File(p) => fs::read(p).at(p),
        SecretSource::Env(v) => std::env::var_os(v)
            .map(|x| std::os::unix::ffi::OsStrExt::as_bytes(x.as_os_str()).to_vec())
            .ok_or_else(|| {
                Error::Other(format!(
                    "--secret id={id}: the environment has no {v} (give src=FILE or env=VAR)"
                ))
            }),
    }
}

/// The spec entry of a bind mount of `source` at `target`.
pub fn bind_entry(source: &Path, target: &str, rw: bool) -> Value {
    let mode = if rw { "rw" } else { "ro" };
    json!({
        "destination": target,
        "type": "bind",
        "source": source,
        "options": ["rbind", mode, "nosuid", "nodev"],
    })
}

pub fn tmpfs_entry(target: &str, size: Option<u64>) -> Value {
    let mut options = vec!["nosuid".to_string(), "nodev".into(), "mode=1777".into()];
    if let Some(s) = size {
        options.push(format!("size={s}"));
    }
    json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
}

/// A cache mount's directory in the store, held as its sharing says for as
/// long as this lives.
pub struct CacheDir {
    pub path: PathBuf,
    /// True when the directory was made now (and wants its first content).
    pub fresh: bool,
    _lock: Option<Flock<fs::File>>,
}

/// The cache directory of `id` under `root` (the store's cache-mounts/),
/// made with `uid`, `gid` and `mode` when new. A private cache that
/// another build holds is replaced by an empty one in `scratch`, as
/// BuildKit gives each concurrent user of a private cache its own.
pub fn cache_dir(
    root: &Path,
    id: &str,
    sharing: Sharing,
    owner: (u32, u32),
    mode: u32,
    scratch: &Path,
) -> Result<CacheDir> {
    fs::create_dir_all(root).at(root)?;
    let name = hex::encode(Sha256::digest(id.as_bytes()));
    let lock_path = root.join(format!("{name}.lock"));
    let f = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .at(&lock_path)?;
    let how = match sharing {
        Sharing::Shared => FlockArg::LockShared,
        Sharing::Locked => FlockArg::LockExclusive,
        Sharing::Private => FlockArg::LockExclusiveNonblock,
    };
    let (path, lock) = match Flock::lock(f, how) {
        Ok(l) => (root.join(&name), Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if sharing == Sharing::Private => {
            (scratch.to_path_buf(), None)
        }
        Err((_, e)) => return Err(Error::sys(format!("flock {}", lock_path.display()), e)),
    };
    // mkdir, not a rename into place: two builds sharing a new cache must
    // both end up in the one directory.
    let fresh = match fs::create_dir(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io(&path, e)),
    };
    if fresh {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).at(&path)?;
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).at(&path)?;
    }
    Ok(CacheDir {
        path,
        fresh,
        _lock: lock,
    })
}

/// The secret `data` as file `name` on a small tmpfs mounted at `dir`
/// (never on disk), owned and moded as the mount says.
pub fn secret_file(dir: &Path, data: &[u8], owner: (u32, u32), mode: u32) -> Result<PathBuf> {
    fs::create_dir_all(dir).at(dir)?;
    let size = data.len() + 4096;
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("mode=0700,size={size}").as_str()),
    )
    .map_err(|e| {
        Error::sys(
            format!("mounting a tmpfs for a secret at {}", dir.display()),
            e,
        )
    })?;
    let file = dir.join("secret");
    let written = (|| {
        fs::write(&file, data).at(&file)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).at(&file)?;
        std::os::unix::fs::chown(&file, Some(owner.0), Some(owner.1)).at(&file)
    })();
    if let Err(e) = written {
        let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        return Err(e);
    }
    Ok(file)
}

/// The mount points of a RUN that were not in its rootfs: what the
/// runtime makes for them is removed after the step, and so are the
/// directories above them that only the making copied up.
#[derive(Default)]
pub struct Stubs {
    made: Vec<Made>,
}

/// A directory and its (mode, uid, gid), relative to the rootfs.
type DirMeta = (PathBuf, (u32, u32, u32));

/// The first missing path of a mount target, and the existing directories
/// above it.
type Made = (PathBuf, Vec<DirMeta>);

impl Stubs {
    /// Notes what of `target` is missing under `rootfs` (the merged dir).
    pub fn note(&mut self, rootfs: &Path, target: &str) {
        let rel = Path::new(target.trim_start_matches('/'));
        let mut cur = PathBuf::new();
        let mut above = Vec::new();
        for c in rel.components() {
            cur.push(c);
            match fs::symlink_metadata(rootfs.join(&cur)) {
                Ok(md) if md.is_dir() => {
                    above.push((cur.clone(), (md.mode() & 0o7777, md.uid(), md.gid())));
                }
                // A file, a symlink (the runtime resolves it inside the
                // rootfs): nothing is made here by the mount.
                Ok(_) => return,
                Err(_) => {
                    self.made.push((cur, above));
                    return;
                }
            }
        }
    }

    /// After the RUN, with the overlay still mounted at `rootfs`: removes
    /// the made mount points that are still empty.
    pub fn remove_made(&self, rootfs: &Path) {
        for (first, _) in &self.made {
            remove_if_empty(&rootfs.join(first));
        }
    }

    /// With the overlay unmounted: the directories above a mount point
    /// that the upper directory holds only because a mount point was made
    /// in them (empty, as they were) are dropped from the layer.
    pub fn prune_upper(&self, upper: &Path) {
        for (_, above) in &self.made {
            for (rel, was) in above.iter().rev() {
                let p = upper.join(rel);
                let Ok(md) = fs::symlink_metadata(&p) else {
                    continue;
                };
                let same = md.is_dir() && (md.mode() & 0o7777, md.uid(), md.gid()) == *was;
                let empty = fs::read_dir(&p).map(|mut d| d.next().is_none());
                let opaque = crate::build::commit::is_opaque(&p);
                if !(same && matches!(empty, Ok(true)) && !opaque && fs::remove_dir(&p).is_ok()) {
                    break;
                }
            }
        }
    }
}

/// Removes `p` when it holds nothing but empty directories and empty
/// files (mount points); returns whether it is gone.
fn remove_if_empty(p: &Path) -> bool {
    let Ok(md) = fs::symlink_metadata(p) else {
        return true;
    };
    if md.is_file() {
        return md.len() == 0 && fs::remove_file(p).is_ok();
    }
    if !md.is_dir() {
        return false;
    }
    let Ok(rd) = fs::read_dir(p) else {
        return false;
    };
    let mut all = true;
    for e in rd.flatten() {
        all &= remove_if_empty(&e.path());
    }
    all && fs::remove_dir(p).is_ok()
}

/// Secrets by id, as `--secret` gave them.
pub type Secrets = BTreeMap<String, SecretSource>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_fields_and_defaults() {
        let m = parse("type=cache,target=/root/.cache,sharing=locked,uid=1000,mode=0700").unwrap();
        assert_eq!(
            m.typ,
            Type::Cache {
                id: "/root/.cache".into(),
                sharing: Sharing::Locked,
                ro: false
            }
        );
        assert_eq!((m.uid, m.mode), (Some(1000), Some(0o700)));
        let m = parse("type=cache,target=/c,ro").unwrap();
        assert!(matches!(m.typ, Type::Cache { ro: true, .. }));
        let m = parse("type=secret,id=tok").unwrap();
        assert_eq!(m.target, "/run/secrets/tok");
        let m = parse("type=secret,target=/etc/key").unwrap();
        assert_eq!(
            m.typ,
            Type::Secret {
                id: "key".into(),
                required: false
            }
        );
        let m = parse("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!(m.typ, Type::Bind { rw: true });
        assert_eq!(
            (m.from.as_deref(), m.source.as_str()),
            (Some("build"), "/out")
        );
        assert_eq!(parse("dst=/a/../b").unwrap().target, "/b");
        let m = parse("type=tmpfs,target=/t,size=1048576").unwrap();
        assert_eq!(
            m.typ,
            Type::Tmpfs {
                size: Some(1048576)
            }
        );
    }

    #[test]
    fn bad_mounts_say_what() {
        for (spec, want) in [
            ("type=foo,target=/x", "unknown type \"foo\""),
            ("type=ssh", "not supported"),
            ("type=cache", "needs a target"),
            ("type=bind,target=rel", "not an absolute path"),
            ("type=cache,target=/x,sharing=maybe", "sharing=maybe"),
            ("type=tmpfs,target=/x,from=a", "from does not apply"),
            ("type=bind,target=/x,bogus=1", "unknown field \"bogus\""),
            ("type=cache,target=/x,mode=999", "not a number"),
            ("type=cache,target=/", "cannot be /"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn secret_flags() {
        std::env::set_var("HOIST_TEST_SECRET_X", "v");
        assert_eq!(
            parse_secret("id=a,env=HOIST_TEST_SECRET_X").unwrap(),
            ("a".into(), SecretSource::Env("HOIST_TEST_SECRET_X".into()))
        );
        assert!(parse_secret("id=a,src=/nonexistent/secret")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/secret"));
        assert!(parse_secret("src=/etc/hostname").is_err());
    }
}

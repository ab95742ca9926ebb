//! COPY and ADD: sources from the build context (minus .dockerignore) or
//! from another stage's rootfs, copied into the step's rootfs.
//!
//! Everything is walked by file descriptor: a source path is resolved
//! inside its root with openat2(RESOLVE_IN_ROOT), so a symlink in the
//! context cannot make COPY read outside it, and below a source nothing is
//! followed (symlinks are copied as symlinks). Destinations are resolved
//! inside the step's rootfs the same way.
//!
//! A copy is walked twice: once to hash what it would copy (the cache key:
//! names, types, modes, sizes, link targets, contents), once to copy.

use super::ignore::{glob_match, Ignore};
use crate::error::{Error, Result};
use crate::image::layer::{list_dir, remove_all_at};
use crate::linux::paths::{mkdir_all_in_root, open_in_root};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Where sources come from.
pub struct SourceRoot<'a> {
    pub fd: BorrowedFd<'a>,
    /// For the build context: what .dockerignore leaves out.
    pub ignore: Option<&'a Ignore>,
    /// How sources are named in errors ("build context", "stage builder").
    pub what: &'a str,
}

/// How copied files are owned and moded.
#[derive(Clone, Copy)]
pub struct Attrs {
    /// --chown (or 0:0 for the context); None keeps the source's owners,
    /// as COPY --from does.
    pub owner: Option<(u32, u32)>,
    /// --chmod: for every file and directory copied.
    pub chmod: Option<u32>,
}

impl Attrs {
    /// The owner of what a copy creates that has no source: directories
    /// on the way to the destination.
    fn made_owner(&self) -> (u32, u32) {
        self.owner.unwrap_or((0, 0))
    }
}

/// mkdir -p of `path` in the root, each directory it creates owned like
/// the copy (Docker creates them with the --chown owner).
pub fn mkdir_owned(target: BorrowedFd, path: &Path, a: Attrs) -> Result<()> {
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        if open_in_root(target, &cur, libc::O_PATH).is_ok() {
            continue;
        }
        mkdir_all_in_root(target, &cur, 0o755)?;
        let fd = open_in_root(target, &cur, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::sys(format!("opening {}", cur.display()), e))?;
        set_owner(fd.as_fd(), a.made_owner())?;
    }
    Ok(())
}

/// A source, resolved: its path in the root and whether it is a directory.
pub struct Resolved {
    pub rel: PathBuf,
    pub is_dir: bool,
}

/// A path of the user's, relative to a root, without `..` climbing out.
fn clean(p: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return Err(Error::Other(format!(
                    "\"{p}\" is outside the build context"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn stat_at(dir: BorrowedFd, name: &CStr) -> nix::Result<FileStat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Expands the sources of a COPY: globs are matched against every path of
/// the root (as Docker matches them, `*` within one component), plain
/// names must exist. A source that matches nothing is an error.
pub fn resolve(root: &SourceRoot, srcs: &[String]) -> Result<Vec<Resolved>> {
    let mut out = Vec::new();
    for s in srcs {
        let rel = clean(s)?;
        let pattern = rel.to_string_lossy().into_owned();
        if has_glob(&pattern) {
            let mut hits = Vec::new();
            glob_walk(root, Path::new(""), &pattern, &mut hits)?;
            if hits.is_empty() {
                return Err(Error::Other(format!(
                    "no source files were specified: \"{s}\" matches nothing in the {}",
                    root.what
                )));
            }
            hits.sort_by(|a: &Resolved, b| a.rel.cmp(&b.rel));
            out.extend(hits);
            continue;
        }
        if let Some(ig) = root.ignore {
            if !rel.as_os_str().is_empty() && ig.excluded(&pattern) {
                return Err(Error::Other(format!(
                    "\"{s}\": not found in the {} (excluded by .dockerignore)",
                    root.what
                )));
            }
        }
        let fd = open_in_root(root.fd, &rel, libc::O_PATH).map_err(|e| match e {
            Errno::ENOENT | Errno::ENOTDIR => {
                Error::Other(format!("\"{s}\": not found in the {}", root.what))
            }
            e => Error::sys(format!("opening \"{s}\" in the {}", root.what), e),
        })?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("stat", e))?;
        out.push(Resolved {
            rel,
            is_dir: is_dir(&st),
        });
    }
    Ok(out)
}

fn glob_walk(root: &SourceRoot, dir: &Path, pattern: &str, hits: &mut Vec<Resolved>) -> Result<()> {
    let fd = match open_in_root(root.fd, dir, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    let depth = pattern.split('/').count();
    for name in list_dir(fd.as_fd())? {
        let rel = dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let rel_s = rel.to_string_lossy().into_owned();
        if root.ignore.is_some_and(|ig| ig.excluded(&rel_s)) {
            continue;
        }
        let st = stat_at(fd.as_fd(), &name).map_err(|e| Error::sys("stat", e))?;
        let here = rel.components().count();
        if here == depth && glob_match(pattern, &rel_s) {
            hits.push(Resolved {
                rel: rel.clone(),
                is_dir: is_dir(&st),
            });
        } else if here < depth && is_dir(&st) {
            glob_walk(root, &rel, pattern, hits)?;
        }
    }
    Ok(())
}

/// Hashes what copying `sources` would copy, for the cache key.
pub fn hash(root: &SourceRoot, sources: &[Resolved]) -> Result<String> {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.rel.as_os_str().as_bytes());
        h.update([0]);
        let fd = open_top(root, &s.rel)?;
        walk(root, fd.as_fd(), c"", &s.rel, &mut |ev| {
            match ev {
                Ev::Enter(rel, st) | Ev::Node(rel, st, _) => {
                    h.update(rel.as_os_str().as_bytes());
                    h.update(st.st_mode.to_le_bytes());
                    h.update(st.st_size.to_le_bytes());
                    h.update(st.st_rdev.to_le_bytes());
                }
                Ev::Leave => h.update(b"<"),
            }
            if let Ev::Node(_, _, Some(content)) = ev {
                match content {
                    Content::Link(t) => h.update(t.as_bytes()),
                    Content::File(f) => {
                        let mut f = std::fs::File::from(f);
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = f
                                .read(&mut buf)
                                .map_err(|e| Error::Other(format!("reading: {e}")))?;
                            if n == 0 {
                                break;
                            }
                            h.update(&buf[..n]);
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(hex::encode(h.finalize()))
}

enum Content {
    File(OwnedFd),
    Link(CString),
}

enum Ev<'a> {
    Enter(&'a Path, &'a FileStat),
    Node(&'a Path, &'a FileStat, Option<Content>),
    Leave,
}

/// A source itself, opened for reading: symlinks on its way (itself
/// included) are followed, inside the root. O_NONBLOCK: a fifo must not
/// hang the build.
fn open_top(root: &SourceRoot, rel: &Path) -> Result<OwnedFd> {
    open_in_root(root.fd, rel, libc::O_RDONLY | libc::O_NONBLOCK)
        .map_err(|e| Error::sys(format!("opening {}", rel.display()), e))
}

/// Walks the source `name` in `dir` (`c""`: `dir` itself), depth first,
/// names sorted, never following a symlink below the top.
fn walk(
    root: &SourceRoot,
    dir: BorrowedFd,
    name: &CStr,
    rel: &Path,
    f: &mut dyn FnMut(Ev) -> Result<()>,
) -> Result<()> {
    let st = if name.is_empty() {
        nix::sys::stat::fstat(dir)
    } else {
        stat_at(dir, name)
    }
    .map_err(|e| Error::sys(format!("stat {}", rel.display()), e))?;
    let open = |flags: OFlag| {
        let at: &CStr = if name.is_empty() { c"." } else { name };
        nix::fcntl::openat(
            dir,
            at,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("opening {}", rel.display()), e))
    };
    match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
        SFlag::S_IFDIR => {
            let d = open(OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            f(Ev::Enter(rel, &st))?;
            let mut names = list_dir(d.as_fd())?;
            names.sort();
            for n in names {
                let child = rel.join(std::ffi::OsStr::from_bytes(n.to_bytes()));
                if let Some(ig) = root.ignore {
                    let s = child.to_string_lossy();
                    if ig.excluded(&s) && !ig.may_include_under(&s) {
                        continue;
                    }
                    if ig.excluded(&s) {
                        // Only an exception below it may be copied: walk,
                        // but the directory itself counts only if it is.
                        let cst = stat_at(d.as_fd(), &n).map_err(|e| Error::sys("stat", e))?;
                        if !is_dir(&cst) {
                            continue;
                        }
                    }
                }
                walk(root, d.as_fd(), &n, &child, f)?;
            }
            f(Ev::Leave)
        }
        SFlag::S_IFREG => {
            let fd = if name.is_empty() {
                nix::unistd::dup(dir).map_err(|e| Error::sys("dup", e))?
            } else {
                open(OFlag::O_RDONLY)?
            };
            f(Ev::Node(rel, &st, Some(Content::File(fd))))
        }
        SFlag::S_IFLNK => {
            let t = nix::fcntl::readlinkat(dir, name)
                .map_err(|e| Error::sys(format!("readlink {}", rel.display()), e))?;
            let t = CString::new(t.as_bytes())
                .map_err(|_| Error::Other("symlink target with a NUL byte".into()))?;
            f(Ev::Node(rel, &st, Some(Content::Link(t))))
        }
        _ => f(Ev::Node(rel, &st, None)),
    }
}

/// Copies the resolved sources to `dest` in the rootfs open at `target`,
/// following Docker's rules: a directory's contents (not the directory)
/// go into dest; with several sources or a dest ending in '/', dest is a
/// directory and files keep their names; otherwise a file source is
/// copied to dest itself.
pub fn copy(
    root: &SourceRoot,
    sources: &[Resolved],
    target: BorrowedFd,
    dest: &str,
    attrs: Attrs,
) -> Result<()> {
    let dest_rel = clean(dest).map_err(|_| Error::Other(format!("bad destination \"{dest}\"")))?;
    // An existing directory takes files into it, slash or not.
    let dest_exists_as_dir =
        open_in_root(target, &dest_rel, libc::O_RDONLY | libc::O_DIRECTORY).is_ok();
    let dest_is_dir = dest.ends_with('/')
        || sources.len() > 1
        || sources.iter().any(|s| s.is_dir)
        || dest_exists_as_dir;
    if dest_is_dir {
        mkdir_owned(target, &dest_rel, attrs)?;
    } else if let Some(parent) = dest_rel.parent() {
        mkdir_owned(target, parent, attrs)?;
    }
    for s in sources {
        let fd = open_top(root, &s.rel)?;
        let base = s
            .rel
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let to = if s.is_dir || base.is_empty() {
            dest_rel.clone()
        } else if dest_is_dir {
            dest_rel.join(&base)
        } else {
            dest_rel.clone()
        };
        let mut stack: Vec<OwnedFd> = Vec::new();
        walk(root, fd.as_fd(), c"", &s.rel, &mut |ev| {
            let rel_in = |p: &Path| -> PathBuf {
                let sub = p.strip_prefix(&s.rel).unwrap_or(Path::new(""));
                if sub.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(sub)
                }
            };
            match ev {
                Ev::Enter(p, st) => {
                    let d = rel_in(p);
                    let existed = open_in_root(target, &d, libc::O_PATH).is_ok();
                    mkdir_all_in_root(target, &d, 0o755)?;
                    let fd = open_in_root(target, &d, libc::O_RDONLY | libc::O_DIRECTORY)
                        .map_err(|e| Error::sys(format!("opening {}", d.display()), e))?;
                    if p == s.rel {
                        // The source directory itself is not copied, only
                        // its contents: a destination it makes is 0755,
                        // owned like the files.
                        if !existed {
                            set_owner(fd.as_fd(), attrs.made_owner())?;
                        }
                    } else {
                        set_meta(fd.as_fd(), c"", st, attrs, false)?;
                    }
                    stack.push(fd);
                    Ok(())
                }
                Ev::Leave => {
                    stack.pop();
                    Ok(())
                }
                Ev::Node(p, st, content) => {
                    let d = rel_in(p);
                    let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
                        return Err(Error::Other(format!("cannot copy onto \"{dest}\"")));
                    };
                    let pfd = mkdir_all_in_root(target, parent, 0o755)?;
                    let pfd = open_in_root(
                        pfd.as_fd(),
                        Path::new("."),
                        libc::O_RDONLY | libc::O_DIRECTORY,
                    )
                    .map_err(|e| Error::sys(format!("opening {}", parent.display()), e))?;
                    let cname = CString::new(name.as_bytes())
                        .map_err(|_| Error::Other("a name with a NUL byte".into()))?;
                    if let Ok(old) = stat_at(pfd.as_fd(), &cname) {
                        if is_dir(&old) {
                            return Err(Error::Other(format!(
                                "cannot copy {} onto the directory {}",
                                p.display(),
                                d.display()
                            )));
                        }
                        remove_all_at(pfd.as_fd(), &cname)?;
                    }
                    make_node(pfd.as_fd(), &cname, st, content)?;
                    set_meta(
                        pfd.as_fd(),
                        &cname,
                        st,
                        attrs,
                        st.st_mode & libc::S_IFMT == libc::S_IFLNK,
                    )
                }
            }
        })?;
    }
    Ok(())
}

fn set_owner(fd: BorrowedFd, (uid, gid): (u32, u32)) -> Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| Error::sys("chown", e))
}

fn make_node(dir: BorrowedFd, name: &CStr, st: &FileStat, content: Option<Content>) -> Result<()> {
    match content {
        Some(Content::File(src)) => {
            let out = nix::fcntl::openat(
                dir,
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| Error::sys("creating file", e))?;
            let mut src = std::fs::File::from(src);
            let mut out = std::fs::File::from(out);
            io::copy(&mut src, &mut out).map_err(|e| Error::Other(format!("copying: {e}")))?;
            Ok(())
        }
        Some(Content::Link(t)) => {
            nix::unistd::symlinkat(t.as_c_str(), dir, name).map_err(|e| Error::sys("symlink", e))
        }
        None => {
            let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
            nix::sys::stat::mknodat(dir, name, kind, Mode::from_bits_truncate(0o600), st.st_rdev)
                .map_err(|e| Error::sys("mknod", e))
        }
    }
}

/// Owner, mode (the source's, or --chmod) and the source's mtime.
fn set_meta(dir: BorrowedFd, name: &CStr, st: &FileStat, a: Attrs, symlink: bool) -> Result<()> {
    let flags = if name.is_empty() {
        AtFlags::AT_EMPTY_PATH
    } else {
        AtFlags::AT_SYMLINK_NOFOLLOW
    };
    let at: &CStr = name;
    let (uid, gid) = a.owner.unwrap_or((st.st_uid, st.st_gid));
    nix::unistd::fchownat(
        dir,
        at,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        flags,
    )
    .map_err(|e| Error::sys("chown", e))?;
    if !symlink {
        let mode = a.chmod.unwrap_or(st.st_mode & 0o7777);
        if name.is_empty() {
            nix::sys::stat::fchmod(dir, Mode::from_bits_truncate(mode))
        } else {
            nix::sys::stat::fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        }
        .map_err(|e| Error::sys("chmod", e))?;
    }
    let t = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    if name.is_empty() {
        nix::sys::stat::futimens(dir, &t, &t)
    } else {
        nix::sys::stat::utimensat(dir, name, &t, &t, UtimensatFlags::NoFollowSymlink)
    }
    .map_err(|e| Error::sys("setting times", e))
}

/// Whether `rel` in the root is a tar ADD extracts: plain, gzip or zstd.
pub fn archive_kind(root: BorrowedFd, rel: &Path) -> Option<crate::image::layer::Compression> {
    use crate::image::layer::Compression;
    let fd = open_in_root(root, rel, libc::O_RDONLY).ok()?;
    let mut f = std::fs::File::from(fd);
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    match &head[..n] {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
        h if h.len() >= 262 && &h[257..262] == b"ustar" => Some(Compression::None),
        _ => None,
    }
}

/// ADD of a local archive: its entries extracted into `dest` (made if
/// missing), every path kept inside it.
pub fn extract(
    src_root: BorrowedFd,
    rel: &Path,
    c: crate::image::layer::Compression,
    target: BorrowedFd,
    dest: &Path,
) -> Result<()> {
    mkdir_all_in_root(target, dest, 0o755)?;
    let d = open_in_root(target, dest, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| Error::sys(format!("opening {}", dest.display()), e))?;
    let fd = open_in_root(src_root, rel, libc::O_RDONLY)
        .map_err(|e| Error::sys(format!("opening {}", rel.display()), e))?;
    crate::image::layer::apply_layer(d.as_fd(), std::fs::File::from(fd), c)
        .map_err(|e| Error::Other(format!("extracting {}: {e}", rel.display())))?;
    Ok(())
}

//! Applying layer tars to a rootfs: OCI whiteouts and opaque directories,
//! hard links, symlinks, device nodes, owners, modes, mtimes and xattrs.
//!
//! Every entry is untrusted. Its path must be relative and free of `..`;
//! its parent directory is looked up with openat2(RESOLVE_IN_ROOT), so a
//! symlink planted by an earlier entry resolves inside the rootfs, never
//! out of it; the final component is never followed (an existing one is
//! removed first and the new node created with O_EXCL / *at calls).

use crate::error::{Error, Result};
use crate::linux::paths::{mkdir_all_in_root, open_in_root};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer descriptor's media type; unknown types are an error.
    pub fn from_media_type(mt: &str) -> Result<Compression> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
            other => Err(Error::Unsupported(format!("layer media type \"{other}\""))),
        }
    }
}

/// A decompressing reader that gives back the raw reader when done, so the
/// caller can drain it (and check its digest).
pub(crate) enum Decoder<R: Read> {
    Plain(R),
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, io::BufReader<R>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(r: R, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Decoder::Plain(r),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(r))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(r)?),
        })
    }

    fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish().into_inner(),
        }
    }
}

/// Chunks of the decompressed layer, from the decompressing thread to the
/// tar reader.
struct Chunks {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    /// The diff_id, hashed on this side: the decompressing thread is the
    /// busier one.
    hasher: Sha256,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.hasher.update(&c);
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // sender done: end of stream
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Applies one layer read from `blob` (compressed as `c`) onto the rootfs
/// open at `root`. Returns the raw reader, read to its end so the caller
/// can finish verifying it, and the layer's diff_id (the sha256 of the
/// uncompressed tar).
///
/// Decompression and hashing run on a thread of their own while this one
/// makes the files: the two halves take about as long as each other.
pub fn apply_layer<R: Read + Send>(
    root: BorrowedFd,
    blob: R,
    c: Compression,
) -> Result<(R, String)> {
    const CHUNK: usize = 256 << 10;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(16);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<R> {
            let mut dec =
                Decoder::new(blob, c).map_err(|e| Error::Other(format!("decompressing: {e}")))?;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match dec.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let msg = format!("decompressing: {e}");
                        let _ =
                            tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, msg.clone())));
                        return Err(Error::Other(msg));
                    }
                };
                buf.truncate(n);
                if tx.send(Ok(buf)).is_err() {
                    break; // the tar side failed
                }
            }
            drop(tx);
            Ok(dec.into_inner())
        });
        let mut chunks = Chunks {
            rx,
            cur: Vec::new(),
            pos: 0,
            hasher: Sha256::new(),
        };
        // The tar's end is not the stream's: the rest is read and hashed.
        let applied = apply_tar(root, &mut chunks).and_then(|()| {
            io::copy(&mut chunks, &mut io::sink())
                .map(drop)
                .map_err(|e| Error::Other(format!("decompressing: {e}")))
        });
        let diff_id = format!("sha256:{}", hex::encode(chunks.hasher.finalize()));
        drop(chunks.rx);
        let produced = producer
            .join()
            .map_err(|_| Error::Other("decompressing thread panicked".into()))?;
        // A decompression error explains a tar error; report it first.
        let raw = produced?;
        applied?;
        Ok((raw, diff_id))
    })
}

fn apply_tar(root: BorrowedFd, data: &mut Chunks) -> Result<()> {
    let mut ar = tar::Archive::new(data);
    let mut st = Layer {
        root,
        touched: HashSet::new(),
        dir_times: HashMap::new(),
        owners: Owners::here(),
        skipped_devices: 0,
        buf: vec![0u8; 256 << 10],
    };
    let entries = ar
        .entries()
        .map_err(|e| Error::Other(format!("reading tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Other(format!("reading tar: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        st.entry(&mut entry)
            .map_err(|e| Error::Other(format!("layer entry \"{shown}\": {e}")))?;
    }
    st.finish()
}

/// A tar path checked to be relative without `..`: its normal components.
pub fn clean_path(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(Error::Other("path has a \"..\" component".into())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::Other("path is absolute".into()))
            }
        }
    }
    Ok(out)
}

fn cstr(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| Error::Other("name contains a NUL byte".into()))
}

/// How file owners from the tar are kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owners {
    /// Real root: chown, make device nodes.
    Host,
    /// Root of a user namespace: chown to what the namespace maps (an id
    /// it does not map is recorded instead); no device nodes.
    Namespace,
    /// An unprivileged user: every file is the user's own; owners other
    /// than root are recorded in the `user.rootlesscontainers` xattr, as
    /// umoci --rootless does.
    Record,
}

impl Owners {
    fn here() -> Owners {
        if !nix::unistd::geteuid().is_root() {
            return Owners::Record;
        }
        if crate::linux::idmap::in_user_namespace() {
            Owners::Namespace
        } else {
            Owners::Host
        }
    }
}

/// The xattr umoci and the rootless-containers project keep a file's real
/// owner in, when the file itself cannot have it.
const ROOTLESS_XATTR: &str = "user.rootlesscontainers";

/// The rootlesscontainers protobuf `Resource { uint32 uid = 1; uint32 gid =
/// 2; }`: two varint fields.
fn rootless_owner_value(uid: u32, gid: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    if uid != 0 {
        out.push(0x08);
        varint(&mut out, uid);
    }
    if gid != 0 {
        out.push(0x10);
        varint(&mut out, gid);
    }
    out
}

struct Layer<'a> {
    root: BorrowedFd<'a>,
    /// Paths this layer has created, which its opaque markers keep.
    touched: HashSet<PathBuf>,
    /// Directory mtimes, set once the layer's entries are all in: a
    /// directory entry's own, or what a directory had before this layer
    /// changed its contents.
    dir_times: HashMap<PathBuf, TimeSpec>,
    owners: Owners,
    /// Device nodes a user namespace could not make.
    skipped_devices: usize,
    /// One copy buffer for all files: fewer, larger writes than io::copy's 8 KiB.
    buf: Vec<u8>,
}

impl Layer<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let kind = entry.header().entry_type();
        // Extension headers are folded into the entries they precede.
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry
            .path()
            .map_err(|e| Error::Other(format!("bad path: {e}")))?
            .into_owned();
        let rel = clean_path(&raw)?;
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_os_string()),
            _ => {
                // The rootfs itself ("./"): only its metadata applies.
                if kind == tar::EntryType::Directory {
                    let fd = open_in_root(self.root, Path::new("."), libc::O_RDONLY)
                        .map_err(|e| Error::sys("opening rootfs", e))?;
                    self.meta(fd.as_fd(), OsStr::new("."), entry, false)?;
                    let t = mtime(entry);
                    self.dir_times.insert(PathBuf::new(), t);
                }
                return Ok(());
            }
        };
        let name_b = name.as_bytes();

        // Whiteouts: markers, never files of their own.
        if name_b == OPAQUE.as_bytes() {
            return self.opaque(&parent);
        }
        if let Some(victim) = name_b.strip_prefix(WHITEOUT.as_bytes()) {
            let victim = OsStr::from_bytes(victim);
            // ".wh.." or ".wh..." would whiteout the directory or its parent.
            if victim.is_empty() || victim == "." || victim == ".." {
                return Err(Error::Other("whiteout of no file".into()));
            }
            let vpath = parent.join(victim);
            if self.touched.contains(&vpath) {
                return Ok(()); // whiteouts only hide lower layers
            }
            let dir = match open_in_root(self.root, &parent, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(d) => d,
                Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
                Err(e) => return Err(Error::sys(format!("opening {}", parent.display()), e)),
            };
            self.keep_time(&parent, dir.as_fd());
            return remove_all_at(dir.as_fd(), &cstr(victim)?);
        }

        let dir = self.parent_dir(&parent)?;
        self.keep_time(&parent, dir.as_fd());
        let cname = cstr(&name)?;
        self.touch(&rel);

        // What is there already goes, except a directory under a directory.
        let existing =
            nix::sys::stat::fstatat(&dir, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        if let Ok(st) = existing {
            let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if !(is_dir && kind == tar::EntryType::Directory) {
                remove_all_at(dir.as_fd(), &cname)?;
            }
        }

        let hdr_mode = entry
            .header()
            .mode()
            .map_err(|e| Error::Other(format!("bad mode: {e}")))?
            & 0o7777;
        let perm = Mode::from_bits_truncate(hdr_mode);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = nix::fcntl::openat(
                    &dir,
                    cname.as_c_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| Error::sys("creating file", e))?;
                let mut f = std::fs::File::from(fd);
                copy_big(entry, &mut f, &mut self.buf)
                    .map_err(|e| Error::Other(format!("writing: {e}")))?;
                self.meta(dir.as_fd(), &name, entry, false)?;
            }
            tar::EntryType::Directory => {
                match nix::sys::stat::mkdirat(
                    &dir,
                    cname.as_c_str(),
                    Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::sys("mkdir", e)),
                }
                self.meta(dir.as_fd(), &name, entry, false)?;
                if self.owners == Owners::Record && hdr_mode & 0o700 != 0o700 {
                    // Our own directory, which this and later layers must
                    // write into: it keeps its owner's rwx (the container's
                    // root, who ignores them anyway), as umoci's does.
                    nix::sys::stat::fchmodat(
                        &dir,
                        cname.as_c_str(),
                        Mode::from_bits_truncate(hdr_mode | 0o700),
                        FchmodatFlags::FollowSymlink,
                    )
                    .map_err(|e| Error::sys("chmod", e))?;
                }
                let t = mtime(entry);
                self.dir_times.insert(rel.clone(), t);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::Other("symlink without a target".into()))?
                    .into_owned();
                let target = CString::new(target)
                    .map_err(|_| Error::Other("symlink target contains a NUL byte".into()))?;
                nix::unistd::symlinkat(target.as_c_str(), &dir, cname.as_c_str())
                    .map_err(|e| Error::sys("symlink", e))?;
                self.meta(dir.as_fd(), &name, entry, true)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::Other(format!("bad link target: {e}")))?
                    .ok_or_else(|| Error::Other("hard link without a target".into()))?
                    .into_owned();
                let trel = clean_path(&target).map_err(|e| {
                    Error::Other(format!("hard link target {}: {e}", target.display()))
                })?;
                let (Some(tparent), Some(tname)) = (trel.parent(), trel.file_name()) else {
                    return Err(Error::Other("hard link to the rootfs itself".into()));
                };
                let tdir = open_in_root(self.root, tparent, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| Error::sys(format!("hard link target {}", target.display()), e))?;
                // No AT_SYMLINK_FOLLOW: a symlink target is linked as itself.
                nix::unistd::linkat(
                    &tdir,
                    cstr(tname)?.as_c_str(),
                    &dir,
                    cname.as_c_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| Error::sys(format!("hard link to {}", target.display()), e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    k => {
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        let f = if k == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (f, libc::makedev(major, minor))
                    }
                };
                match nix::sys::stat::mknodat(&dir, cname.as_c_str(), sflag, perm, dev) {
                    // A user namespace may make fifos, never devices: the
                    // runtime binds the ones a container needs.
                    Err(Errno::EPERM) if self.owners != Owners::Host && sflag != SFlag::S_IFIFO => {
                        self.skipped_devices += 1;
                        return Ok(());
                    }
                    other => other.map_err(|e| Error::sys("mknod", e))?,
                }
                self.meta(dir.as_fd(), &name, entry, false)?;
            }
            other => {
                return Err(Error::Unsupported(format!("tar entry type {other:?}")));
            }
        }
        Ok(())
    }

    /// The entry's parent directory, created (inside the root) if missing.
    fn parent_dir(&mut self, parent: &Path) -> Result<OwnedFd> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        match open_in_root(self.root, parent, flags) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) => {
                mkdir_all_in_root(self.root, parent, 0o755)?;
                open_in_root(self.root, parent, flags)
                    .map_err(|e| Error::sys(format!("opening {}", parent.display()), e))
            }
            Err(e) => Err(Error::sys(format!("opening {}", parent.display()), e)),
        }
    }

    /// Remembers the mtime `dir` has before this layer changes its contents.
    fn keep_time(&mut self, dir: &Path, fd: BorrowedFd) {
        if !self.dir_times.contains_key(dir) {
            if let Ok(st) = nix::sys::stat::fstat(fd) {
                let t = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
                self.dir_times.insert(dir.to_path_buf(), t);
            }
        }
    }

    /// Marks `rel` and its ancestors as this layer's.
    fn touch(&mut self, rel: &Path) {
        let mut p = rel.to_path_buf();
        while !p.as_os_str().is_empty() && self.touched.insert(p.clone()) {
            p.pop();
        }
    }

    /// `.wh..wh..opq` in `dir`: remove what lower layers put there.
    fn opaque(&mut self, dir: &Path) -> Result<()> {
        let fd = self.parent_dir(dir)?;
        self.keep_time(dir, fd.as_fd());
        self.touch(dir);
        self.clear_lower(fd.as_fd(), dir)
    }

    /// Removes everything under `dir` that this layer did not put there.
    fn clear_lower(&self, fd: BorrowedFd, dir: &Path) -> Result<()> {
        for n in list_dir(fd)? {
            let p = dir.join(OsStr::from_bytes(n.as_bytes()));
            if !self.touched.contains(&p) {
                remove_all_at(fd, &n)?;
                continue;
            }
            match nix::fcntl::openat(
                fd,
                n.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => self.clear_lower(sub.as_fd(), &p)?,
                Err(Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(e) => return Err(Error::sys(format!("opening {}", p.display()), e)),
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs and times of `name` in `dir`, never following it.
    fn meta<R: Read>(
        &self,
        dir: BorrowedFd,
        name: &OsStr,
        entry: &mut tar::Entry<R>,
        symlink: bool,
    ) -> Result<()> {
        let h = entry.header();
        let c = cstr(name)?;
        let uid = h.uid().map_err(|e| Error::Other(format!("bad uid: {e}")))?;
        let gid = h.gid().map_err(|e| Error::Other(format!("bad gid: {e}")))?;
        let (uid, gid) = pax_ids(entry).unwrap_or((uid, gid));
        let (uid, gid) = (uid as u32, gid as u32);
        let mut record = self.owners == Owners::Record;
        if !record {
            let chowned = nix::unistd::fchownat(
                dir,
                c.as_c_str(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            match chowned {
                // An id the user namespace does not map.
                Err(Errno::EINVAL) if self.owners == Owners::Namespace => record = true,
                other => other.map_err(|e| Error::sys("chown", e))?,
            }
        }
        // Symlinks take no user.* xattrs; their owner hardly matters.
        if record && !symlink && (uid, gid) != (0, 0) {
            set_xattr(dir, &c, ROOTLESS_XATTR, &rootless_owner_value(uid, gid))
                .map_err(|e| Error::sys(format!("setting xattr {ROOTLESS_XATTR}"), e))?;
        }
        let h = entry.header();
        if !symlink {
            // After chown, which clears setuid/setgid.
            let mode = h
                .mode()
                .map_err(|e| Error::Other(format!("bad mode: {e}")))?
                & 0o7777;
            nix::sys::stat::fchmodat(
                dir,
                c.as_c_str(),
                Mode::from_bits_truncate(mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| Error::sys("chmod", e))?;
        }
        // xattrs after chown too: chown drops security.capability.
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let Ok(key) = ext.key() else { continue };
                let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                match set_xattr(dir, &c, attr, ext.value_bytes()) {
                    // trusted.* and some security.* need real root.
                    Err(Errno::EPERM | Errno::EOPNOTSUPP) if self.owners != Owners::Host => {}
                    other => other.map_err(|e| Error::sys(format!("setting xattr {attr}"), e))?,
                }
            }
        }
        let t = mtime(entry);
        nix::sys::stat::utimensat(dir, c.as_c_str(), &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Error::sys("setting times", e))?;
        Ok(())
    }

    /// Directory times last, once nothing more is created.
    fn finish(&mut self) -> Result<()> {
        if self.skipped_devices > 0 {
            crate::logging::debug(&format!(
                "unprivileged: {} device node(s) of the layer not made",
                self.skipped_devices
            ));
        }
        for (p, t) in &self.dir_times {
            let fd = match open_in_root(self.root, p, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::ENOENT | Errno::ENOTDIR) => continue, // whited out later
                Err(e) => return Err(Error::sys(format!("opening {}", p.display()), e)),
            };
            nix::sys::stat::futimens(&fd, t, t)
                .map_err(|e| Error::sys(format!("setting times of {}", p.display()), e))?;
        }
        Ok(())
    }
}

/// io::copy with a caller's (large) buffer, filled as far as the reader
/// goes before each write.
fn copy_big(r: &mut impl Read, w: &mut impl io::Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// The entry's mtime: a PAX "mtime" record (seconds with a fraction, as
/// GNU tar --format=posix writes) over the header's whole seconds.
fn mtime<R: Read>(entry: &mut tar::Entry<R>) -> TimeSpec {
    let pax = entry.pax_extensions().ok().flatten().and_then(|exts| {
        exts.flatten()
            .find(|e| e.key().ok() == Some("mtime"))
            .and_then(|e| e.value().ok().and_then(parse_pax_time))
    });
    pax.unwrap_or_else(|| TimeSpec::new(entry.header().mtime().unwrap_or(0) as i64, 0))
}

/// "1500000000.5" or "-1.25" as a TimeSpec; None if malformed.
fn parse_pax_time(v: &str) -> Option<TimeSpec> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    // Nanoseconds: the first nine digits of the fraction, padded.
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(if neg && nanos > 0 {
        TimeSpec::new(-secs - 1, 1_000_000_000 - nanos)
    } else if neg {
        TimeSpec::new(-secs, 0)
    } else {
        TimeSpec::new(secs, nanos)
    })
}

/// uid and gid from PAX records, which override the header's when present.
fn pax_ids<R: Read>(entry: &mut tar::Entry<R>) -> Option<(u64, u64)> {
    let exts = entry.pax_extensions().ok().flatten()?;
    let (mut uid, mut gid) = (None, None);
    for ext in exts.flatten() {
        match ext.key() {
            Ok("uid") => uid = ext.value().ok().and_then(|v| v.parse().ok()),
            Ok("gid") => gid = ext.value().ok().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    match (uid, gid) {
        (None, None) => None,
        (u, g) => Some((u.unwrap_or(0), g.unwrap_or(0))),
    }
}

fn set_xattr(dir: BorrowedFd, name: &CString, attr: &str, value: &[u8]) -> nix::Result<()> {
    // Through the directory's fd: the lookup of `name` does not follow it.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let attr = CString::new(attr).map_err(|_| Errno::EINVAL)?;
    // SAFETY: lsetxattr reads two valid C strings and `value.len()` bytes of `value`.
    let r = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            attr.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

pub(crate) fn list_dir(dir: BorrowedFd) -> Result<Vec<CString>> {
    let fd = nix::fcntl::openat(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("opening directory", e))?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(|e| Error::sys("reading directory", e))?;
    let mut out = Vec::new();
    for ent in d.iter() {
        let ent = ent.map_err(|e| Error::sys("reading directory", e))?;
        let n = ent.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// rm -rf of `name` in `dir`, without following symlinks.
pub(crate) fn remove_all_at(dir: BorrowedFd, name: &CString) -> Result<()> {
    match nix::unistd::unlinkat(dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => {
            return Err(Error::sys(
                format!("removing {}", name.to_string_lossy()),
                e,
            ))
        }
    }
    let sub = nix::fcntl::openat(
        dir,
        name.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("opening {}", name.to_string_lossy()), e))?;
    for n in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &n)?;
    }
    nix::unistd::unlinkat(dir, name.as_c_str(), UnlinkatFlags::RemoveDir)
        .map_err(|e| Error::sys(format!("removing {}", name.to_string_lossy()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = |v| parse_pax_time(v).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("1500000000.5"), Some((1_500_000_000, 500_000_000)));
        assert_eq!(t("12"), Some((12, 0)));
        assert_eq!(t("1.0000000019"), Some((1, 1)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t(".5"), None);
    }
}

//! A build step's changes as an OCI layer: the upper directory of the
//! overlay the step ran on, tarred in the OCI layer format and stored.
//!
//! Overlayfs and OCI say "deleted" and "replaced" differently: overlay
//! leaves a 0:0 character device where a lower file was removed and marks a
//! directory that hides its lower contents with the `trusted.overlay.opaque`
//! xattr (`user.overlay.opaque` on a `userxattr` mount); a layer says both
//! with empty marker files, `.wh.NAME` and `.wh..wh..opq`. Overlay's own
//! xattrs never reach the layer.
//!
//! The same tree always gives the same bytes, so the same step gives the
//! same digest: entries in a fixed order, numeric owners only, mtimes in
//! whole seconds (clamped to SOURCE_DATE_EPOCH when one is given), and a
//! gzip header with no name and no time.

use crate::error::{Error, IoContext, Result};
use crate::image::layout::Descriptor;
use crate::image::store::Store;
use nix::errno::Errno;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use tar::{EntryType, Header};

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// gzip's default: the level other tools' layers are made with. Fixed, so
/// that the same tar always compresses to the same blob.
const GZIP_LEVEL: u32 = 6;
/// The largest values the octal fields of a ustar header hold; bigger ones
/// go in PAX records.
const USTAR_ID_MAX: u64 = 0o7777777;
const USTAR_SIZE_MAX: u64 = 0o77777777777;

/// xattrs as (name, value), sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A layer made by [`commit`].
#[derive(Debug, Clone)]
pub struct Committed {
    /// The gzip blob, in the store.
    pub desc: Descriptor,
    /// The sha256 of the uncompressed tar, for the config's rootfs.diff_ids.
    pub diff_id: String,
}

/// A writer that hashes and counts what goes through it.
pub(crate) struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Tars `upper` (the upper directory of an overlay whose lowers are the
/// image's layers) into a gzip layer and stores it in `store`. `epoch`
/// (SOURCE_DATE_EPOCH) caps every mtime. The tar is made, hashed and
/// compressed in one pass into the store's tmp/, then renamed into blobs/
/// under its digest.
///
/// The caller holds [`Store::lock_shared`] until the layer is part of a
/// tagged image: until then gc would see an unreferenced blob.
pub fn commit(store: &Store, upper: &Path, epoch: Option<i64>) -> Result<Committed> {
    let ctx = |e: Error| Error::Other(format!("committing {}: {e}", upper.display()));
    let md = fs::symlink_metadata(upper).at(upper).map_err(ctx)?;
    if !md.is_dir() {
        return Err(ctx(Error::Other("not a directory".into())));
    }
    let tmp = store.tmp_path("layer");
    let r = (|| -> Result<Committed> {
        let file = File::create(&tmp).at(&tmp)?;
        let blob = Hashing::new(BufWriter::with_capacity(256 << 10, file));
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255) // "unknown": the same bytes on any host
            .write(blob, flate2::Compression::new(GZIP_LEVEL));
        let mut w = LayerWriter {
            tar: tar::Builder::new(Hashing::new(gz)),
            epoch,
            links: HashMap::new(),
        };
        w.walk(upper, b"")?;
        let io_err = |e: io::Error| Error::io(&tmp, e);
        let (gz, diff_id, _) = w.tar.into_inner().map_err(io_err)?.finish();
        let (buffered, digest, size) = gz.finish().map_err(io_err)?.finish();
        let file = buffered.into_inner().map_err(|e| io_err(e.into_error()))?;
        drop(file);
        let desc = Descriptor {
            media_type: LAYER_GZIP.to_string(),
            digest,
            size,
            platform: None,
            annotations: Default::default(),
        };
        // The digest was computed over exactly the bytes written, so the
        // file can be renamed into blobs/ as it is. An existing blob has
        // the same content: the same step was committed before.
        let dest = store.layout().blob_path(&desc.digest)?;
        if dest.exists() {
            fs::remove_file(&tmp).at(&tmp)?;
        } else {
            fs::rename(&tmp, &dest).at(&dest)?;
        }
        Ok(Committed { desc, diff_id })
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(ctx)
}

struct LayerWriter<W: Write> {
    tar: tar::Builder<W>,
    epoch: Option<i64>,
    /// (dev, ino) of files with more than one link -> the first path
    /// written, which later paths become hard links to.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// What an entry's header says besides its type and name.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl<W: Write> LayerWriter<W> {
    fn meta(&self, md: &Metadata) -> Meta {
        let mut t = md.mtime();
        if let Some(e) = self.epoch {
            t = t.min(e);
        }
        Meta {
            mode: md.mode() & 0o7777,
            uid: md.uid().into(),
            gid: md.gid().into(),
            // ustar has no negative times; 1970 is as early as a layer goes.
            mtime: t.max(0) as u64,
        }
    }

    /// Depth first, each directory's entries sorted by name bytewise: a
    /// directory comes before what it holds, and the order depends only on
    /// the tree.
    fn walk(&mut self, dir: &Path, rel: &[u8]) -> Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        for e in fs::read_dir(dir).at(dir)? {
            names.push(e.at(dir)?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            let path = dir.join(&n);
            let md = fs::symlink_metadata(&path).at(&path)?;
            self.entry(&path, &join(rel, n.as_bytes()), &md)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &[u8], md: &Metadata) -> Result<()> {
        let ft = md.file_type();
        let meta = self.meta(md);
        if ft.is_char_device() && md.rdev() == 0 {
            // Overlay's whiteout: the lower file is gone.
            let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&b""[..], rel),
            };
            let marker = join(parent, &[WHITEOUT, name].concat());
            return self.append(EntryType::Regular, &marker, b"", &meta, &[], 0, io::empty());
        }
        if ft.is_socket() {
            // A socket is a running program's, not content; tar has no type
            // for it and Docker leaves them out too.
            return Ok(());
        }
        let (xattrs, opaque) = xattrs(path)?;
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                return self.append(EntryType::Link, rel, &first, &meta, &xattrs, 0, io::empty());
            }
            self.links.insert(key, rel.to_vec());
        }
        if ft.is_dir() {
            let name = [rel, b"/"].concat();
            self.append(
                EntryType::Directory,
                &name,
                b"",
                &meta,
                &xattrs,
                0,
                io::empty(),
            )?;
            if opaque {
                // Right after its directory, as Docker writes it: appliers
                // that clear the lower contents when they meet the marker
                // then cannot remove what this layer puts there.
                let marker = join(rel, OPAQUE);
                self.append(EntryType::Regular, &marker, b"", &meta, &[], 0, io::empty())?;
            }
            return self.walk(path, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).at(path)?;
            let target = target.as_os_str().as_bytes();
            return self.append(
                EntryType::Symlink,
                rel,
                target,
                &meta,
                &xattrs,
                0,
                io::empty(),
            );
        }
        if ft.is_file() {
            let f = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .at(path)?;
            let size = md.len();
            let data = Exact {
                inner: f.take(size),
                left: size,
            };
            return self
                .append(EntryType::Regular, rel, b"", &meta, &xattrs, size, data)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())));
        }
        let kind = if ft.is_fifo() {
            EntryType::Fifo
        } else if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            return Err(Error::Other(format!(
                "{}: a file of unknown type",
                path.display()
            )));
        };
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        if kind != EntryType::Fifo {
            let dev = md.rdev();
            let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
            let too_big = |_| Error::Other(format!("{}: device number too big", path.display()));
            h.set_device_major(u32::try_from(major).map_err(too_big)?)
                .map_err(|e| Error::io(path, e))?;
            h.set_device_minor(u32::try_from(minor).map_err(too_big)?)
                .map_err(|e| Error::io(path, e))?;
        }
        self.append_with(h, rel, b"", &meta, &xattrs, 0, io::empty())
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        size: u64,
        data: impl Read,
    ) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        self.append_with(h, name, link, meta, xattrs, size, data)
    }

    /// Appends an entry, preceded by a PAX header for what ustar cannot
    /// hold: long names and link targets, big ids and sizes, xattrs.
    #[allow(clippy::too_many_arguments)]
    fn append_with(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: &[u8],
        meta: &Meta,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        size: u64,
        data: impl Read,
    ) -> Result<()> {
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let short = |b: &[u8]| b.len() <= 100;
        if !short(name) {
            pax.push((b"path".to_vec(), name.to_vec()));
        }
        if !short(link) {
            pax.push((b"linkpath".to_vec(), link.to_vec()));
        }
        let (uid, gid) = (meta.uid, meta.gid);
        if uid > USTAR_ID_MAX {
            pax.push((b"uid".to_vec(), uid.to_string().into_bytes()));
        }
        if gid > USTAR_ID_MAX {
            pax.push((b"gid".to_vec(), gid.to_string().into_bytes()));
        }
        if size > USTAR_SIZE_MAX {
            pax.push((b"size".to_vec(), size.to_string().into_bytes()));
        }
        for (k, v) in xattrs {
            pax.push(([b"SCHILY.xattr.", k.as_slice()].concat(), v.clone()));
        }
        let io_err = |e: io::Error| Error::Other(format!("writing the layer: {e}"));
        if !pax.is_empty() {
            let body = pax_records(&pax);
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            set_bytes(&mut ph.as_old_mut().name, b"PaxHeader");
            ph.set_mode(0o644);
            ph.set_mtime(meta.mtime);
            ph.set_size(body.len() as u64);
            ph.set_cksum();
            self.tar.append(&ph, body.as_slice()).map_err(io_err)?;
        }
        // Raw names: the PAX record has the whole name, the header as much
        // as fits (set_path would refuse long or non-UTF-8 names).
        set_bytes(&mut h.as_old_mut().name, name);
        set_bytes(&mut h.as_old_mut().linkname, link);
        h.set_mode(meta.mode);
        h.set_uid(if uid > USTAR_ID_MAX { 0 } else { uid });
        h.set_gid(if gid > USTAR_ID_MAX { 0 } else { gid });
        h.set_mtime(meta.mtime);
        // Above 8 GiB tar writes the size field in base-256 as GNU tar
        // does; the PAX record says it for readers that know only POSIX.
        h.set_size(size);
        h.set_cksum();
        self.tar.append(&h, data).map_err(io_err)
    }
}

/// Copies `src` into the fixed-size field `dst`, cut at its length.
fn set_bytes(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    dst[n..].fill(0);
}

/// PAX extended header records: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_records(recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in recs {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// A file's content of exactly the size lstat gave: a file that shrinks
/// while it is read fails the commit instead of corrupting the tar (whose
/// header already holds the size); one that grows is cut at that size.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Whether overlay marked the upper directory `path` opaque (an unreadable
/// one counts as opaque: it is kept).
pub(crate) fn is_opaque(path: &Path) -> bool {
    xattrs(path).map(|(_, o)| o).unwrap_or(true)
}

/// The xattrs of `path` (not following a symlink) that belong in a layer,
/// sorted by name, and whether overlay marked it opaque. Overlay's own
/// (`trusted.overlay.*`, `user.overlay.*`) stay out; an upper that depends
/// on lower content through them (a metacopy file, a redirected directory)
/// cannot be a layer on its own and is refused.
fn xattrs(path: &Path) -> Result<(Xattrs, bool)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("{}: NUL in path", path.display())))?;
    let err = |what: &str, e: Errno| Error::sys(format!("{what} of {}", path.display()), e);
    let list = match read_sized(|buf| {
        // SAFETY: llistxattr writes at most `buf.len()` bytes into `buf`
        // (nothing when it is empty, asking for the size) and reads the
        // valid C string `c`.
        unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    }) {
        Ok(l) => l,
        // A file system without xattrs has none to copy.
        Err(Errno::ENOTSUP) => return Ok((Vec::new(), false)),
        Err(e) => return Err(err("listing xattrs", e)),
    };
    let mut names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
    names.sort();
    let mut out = Vec::new();
    let mut opaque = false;
    for n in names {
        let overlay = n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay.");
        let cn = CString::new(n).map_err(|_| Error::Other("xattr name with NUL".into()))?;
        let value = match read_sized(|buf| {
            // SAFETY: as above; `cn` is a valid C string too.
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
        }) {
            Ok(v) => v,
            // Removed since it was listed.
            Err(Errno::ENODATA) => continue,
            Err(e) => {
                return Err(err(
                    &format!("reading xattr {}", String::from_utf8_lossy(n)),
                    e,
                ))
            }
        };
        if overlay {
            let key = n.rsplit(|&b| b == b'.').next().unwrap_or_default();
            match key {
                b"opaque" => opaque |= value == b"y",
                b"metacopy" | b"redirect" => {
                    return Err(Error::Other(format!(
                        "{}: overlay {} upper entry: its content is in a lower layer \
                         (mount the overlay with metacopy=off,redirect_dir=off)",
                        path.display(),
                        String::from_utf8_lossy(key)
                    )))
                }
                _ => {}
            }
            continue;
        }
        out.push((n.to_vec(), value));
    }
    Ok((out, opaque))
}

/// Calls a size-then-fill syscall (llistxattr, lgetxattr) until the buffer
/// is big enough: the value may grow between the two calls.
fn read_sized(mut call: impl FnMut(&mut [u8]) -> libc::ssize_t) -> nix::Result<Vec<u8>> {
    loop {
        let size = Errno::result(call(&mut []))?;
        let mut buf = vec![0u8; size as usize];
        match Errno::result(call(&mut buf)) {
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_lengths_count_themselves() {
        let r = pax_records(&[(b"path".to_vec(), vec![b'a'; 95])]);
        // 3 digits + ' ' + "path" + '=' + 95 + '\n' = 105
        assert!(
            r.starts_with(b"105 path="),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert_eq!(r.len(), 105);
        let r = pax_records(&[(b"k".to_vec(), b"v".to_vec())]);
        assert_eq!(r, b"6 k=v\n");
    }

    #[test]
    fn joins_relative_paths() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a/b", b".wh.c"), b"a/b/.wh.c");
    }
}

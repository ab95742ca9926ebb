//! hoist's local content store: an OCI image layout whose index names every
//! image by its full reference, with blobs shared across images.
//!
//! ```text
//! STORE/oci-layout, index.json   the layout; ref.name = docker.io/library/x:tag
//! STORE/blobs/sha256/HEX          manifests, configs, layers: verified on arrival
//! STORE/layers/sha256/CHAINID/    layers unpacked once, for `unpack --overlay`
//! STORE/tmp/                      blobs and layers on their way in
//! STORE/lock                      shared by pulls and unpacks, exclusive for gc
//! STORE/index.lock                held while index.json is rewritten
//! ```
//!
//! A blob is renamed into blobs/ only after its size and digest check out,
//! so blobs/ never holds a partial or wrong blob; index.json is replaced
//! atomically, so a reader sees an image whole or not at all.
//!
//! A hoist killed mid-pull (Ctrl-C, SIGKILL, a crash) leaves at most files
//! in tmp/ (and an `index.json.tmp-*`): its blobs were not renamed, its
//! image not named. Every name made for those carries the maker's pid
//! (`WHAT-PID-N`), so whoever opens the store next removes the ones whose
//! process is gone, unless something is mounted under them (a build's
//! overlay whose container outlived hoist: that is for a human or `gc` to
//! take down, removing through a mount would write into it). A pid reused
//! by another process only delays the cleanup; hoists sharing a store from
//! different pid namespaces are not supported (each would see the other's
//! files as stale).

use super::layout::{Descriptor, Index, Layout, Manifest, OCI_INDEX};
use crate::error::{Error, IoContext, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where the store lives unless `--store` or `$HOIST_STORE` say otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/hoist";

pub struct Store {
    pub dir: PathBuf,
    layout: Layout,
}

/// A flock held on the store; released when dropped.
pub struct StoreLock(#[allow(dead_code)] Flock<File>);

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// The store at `dir`, made if it does not exist yet.
    pub fn open(dir: &Path) -> Result<Store> {
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).at(&p)?;
        }
        // Absolute: store paths end up in overlay options and in the
        // config.json of build containers, far from our cwd.
        let dir = &fs::canonicalize(dir).at(dir)?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = dir.join("index.json");
        if !index.exists() {
            write_atomic(
                &index,
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
            )?;
        }
        clean_stale(dir);
        Ok(Store {
            dir: dir.to_path_buf(),
            layout: Layout::open(dir)?,
        })
    }

    /// `--store`, else `$HOIST_STORE`, else /var/lib/hoist (for an
    /// unprivileged user `$XDG_DATA_HOME/hoist`, else ~/.local/share/hoist).
    pub fn dir_from(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("HOIST_STORE").map(PathBuf::from))
            .unwrap_or_else(default_dir)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Held by pulls and unpacks: gc waits until they are done.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.flock("lock", FlockArg::LockShared)
    }

    fn flock(&self, name: &str, how: FlockArg) -> Result<StoreLock> {
        let path = self.dir.join(name);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        Flock::lock(f, how)
            .map(StoreLock)
            .map_err(|(_, e)| Error::sys(format!("flock {}", path.display()), e))
    }

    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        Ok(self.layout.blob_path(digest)?.exists())
    }

    /// A fresh path under tmp/ for something on its way in.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Stores the blob `desc` from `r`, checking size and digest as it is
    /// read; `seen` is told how many bytes arrived. Returns false when the
    /// store already had it (and `r` is not read).
    pub fn write_blob(
        &self,
        desc: &Descriptor,
        r: impl Read,
        seen: &mut dyn FnMut(u64),
    ) -> Result<bool> {
        let dest = self.layout.blob_path(&desc.digest)?;
        if dest.exists() {
            return Ok(false);
        }
        let tmp = self.tmp_path("blob");
        let result = (|| {
            let mut out = File::create(&tmp).at(&tmp)?;
            let mut r = super::layout::BlobReader::new(r, desc);
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Other(format!("blob {}: {e}", desc.digest))),
                };
                out.write_all(&buf[..n]).at(&tmp)?;
                seen(n as u64);
            }
            r.finish()?;
            fs::rename(&tmp, &dest).at(&dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| true)
    }

    /// Stores `bytes` (a manifest or config) and describes them.
    pub fn write_bytes(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            size: bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        self.write_blob(&desc, bytes, &mut |_| {})?;
        Ok(desc)
    }

    fn read_index(&self) -> Result<(Value, Vec<Descriptor>)> {
        let path = self.dir.join("index.json");
        let text = fs::read(&path).at(&path)?;
        let bad = |e: serde_json::Error| Error::Config {
            path: path.clone(),
            msg: format!("invalid store index: {e}"),
        };
        let raw: Value = serde_json::from_slice(&text).map_err(bad)?;
        let index: Index = serde_json::from_value(raw.clone()).map_err(bad)?;
        Ok((raw, index.manifests))
    }

    fn write_index(&self, mut raw: Value, manifests: &[Descriptor]) -> Result<()> {
        raw["schemaVersion"] = json!(2);
        raw["mediaType"] = json!(OCI_INDEX);
        raw["manifests"] =
            serde_json::to_value(manifests).map_err(|e| Error::Other(e.to_string()))?;
        let text = serde_json::to_vec_pretty(&raw).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.dir.join("index.json"), &text)
    }

    /// Every image in the store: (full name, manifest descriptor), by name.
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>> {
        let (_, manifests) = self.read_index()?;
        let mut out: Vec<(String, Descriptor)> = manifests
            .into_iter()
            .filter_map(|d| d.annotations.get(REF_NAME).cloned().map(|n| (n, d)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The image stored under the full name `name`.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .images()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d))
    }

    /// Names the manifest `desc` `name`, replacing what the name meant.
    pub fn tag(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let _l = self.flock("index.lock", FlockArg::LockExclusive)?;
        let (raw, mut manifests) = self.read_index()?;
        manifests.retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(name));
        let mut d = desc.clone();
        d.annotations.insert(REF_NAME.to_string(), name.to_string());
        manifests.push(d);
        self.write_index(raw, &manifests)
    }

    /// Drops the name `name`; the blobs stay until [`Store::gc`].
    pub fn untag(&self, name: &str) -> Result<Descriptor> {
        let _l = self.flock("index.lock", FlockArg::LockExclusive)?;
        let (raw, mut manifests) = self.read_index()?;
        let pos = manifests
            .iter()
            .position(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(name))
            .ok_or_else(|| Error::Other(format!("image \"{name}\" is not in the store")))?;
        let d = manifests.remove(pos);
        self.write_index(raw, &manifests)?;
        Ok(d)
    }

    /// The manifest stored under `desc` (an image manifest, not an index).
    pub fn manifest(&self, desc: &Descriptor) -> Result<Manifest> {
        self.layout.json_blob(desc)
    }

    /// Removes blobs and unpacked layers no image refers to, and whatever a
    /// crashed hoist left in tmp/. Waits for running pulls and unpacks.
    /// Returns the digests removed.
    pub fn gc(&self) -> Result<Vec<String>> {
        let _l = self.flock("lock", FlockArg::LockExclusive)?;
        let mut keep_blobs = HashSet::new();
        let mut keep_layers = HashSet::new();
        for (_, d) in self.images()? {
            self.reachable(&d, &mut keep_blobs, &mut keep_layers, 0)?;
        }
        let mut removed = Vec::new();
        let blobs = self.dir.join("blobs/sha256");
        for e in fs::read_dir(&blobs).at(&blobs)? {
            let e = e.at(&blobs)?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep_blobs.contains(&digest) {
                fs::remove_file(e.path()).at(e.path())?;
                removed.push(digest);
            }
        }
        // A layer under a mounted bundle stays even when its image is gone:
        // the overlay still reads it.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let layers = self.dir.join("layers/sha256");
        for e in fs::read_dir(&layers).at(&layers)? {
            let e = e.at(&layers)?;
            let chain_id = format!("sha256:{}", e.file_name().to_string_lossy());
            let in_use = mounts.contains(&*e.path().to_string_lossy());
            if !keep_layers.contains(&chain_id) && !in_use {
                remove_any(&e.path())?;
            }
        }
        let tmp = self.dir.join("tmp");
        let mounted = mount_points();
        for e in fs::read_dir(&tmp).at(&tmp)? {
            let e = e.at(&tmp)?;
            // Removing through a mount would write into what is mounted.
            if !has_mount_under(&mounted, &e.path()) {
                remove_any(&e.path())?;
            }
        }
        Ok(removed)
    }

    /// Removes those of `digests` no image refers to: what a failed pull
    /// brought. Skipped while other pulls run (they may be about to name
    /// them).
    pub fn discard(&self, digests: &[String]) -> Result<()> {
        if digests.is_empty() {
            return Ok(());
        }
        // Not waiting: the caller may itself hold a shared lock (a build
        // importing its base), and a flock of ours on another open file
        // would wait for it forever. Busy, the blobs are left to gc.
        let _l = match self.flock("lock", FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err(_) => return Ok(()),
        };
        let mut keep = HashSet::new();
        let mut layers = HashSet::new();
        for (_, d) in self.images()? {
            self.reachable(&d, &mut keep, &mut layers, 0)?;
        }
        for d in digests.iter().filter(|d| !keep.contains(*d)) {
            let p = self.layout.blob_path(d)?;
            match fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
                _ => {}
            }
        }
        Ok(())
    }

    fn reachable(
        &self,
        d: &Descriptor,
        blobs: &mut HashSet<String>,
        layers: &mut HashSet<String>,
        depth: usize,
    ) -> Result<()> {
        if depth > 4 || !blobs.insert(d.digest.clone()) {
            return Ok(());
        }
        let v: Value = self.layout.json_blob(d)?;
        if let Some(children) = v.get("manifests").and_then(Value::as_array) {
            for c in children {
                if let Ok(c) = serde_json::from_value::<Descriptor>(c.clone()) {
                    if self.has_blob(&c.digest)? {
                        self.reachable(&c, blobs, layers, depth + 1)?;
                    }
                }
            }
            return Ok(());
        }
        let m: Manifest = serde_json::from_value(v)
            .map_err(|e| Error::Other(format!("manifest {}: {e}", d.digest)))?;
        blobs.insert(m.config.digest.clone());
        for l in &m.layers {
            blobs.insert(l.digest.clone());
        }
        if let Ok(cfg) = self.layout.json_blob::<Value>(&m.config) {
            let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            layers.extend(super::overlay::chain_ids(&diff_ids));
        }
        Ok(())
    }
}

/// The pid in a name made by [`Store::tmp_path`] (`WHAT-PID-N`) or
/// [`write_atomic`] (`NAME.tmp-PID-N`).
fn owner_pid(name: &str) -> Option<i32> {
    let mut it = name.rsplitn(3, '-');
    it.next()?.parse::<u64>().ok()?;
    let pid = it.next()?.parse::<i32>().ok().filter(|p| *p > 0)?;
    it.next().filter(|w| !w.is_empty())?;
    Some(pid)
}

/// Whether `pid` names a process (kill with no signal: ESRCH says none;
/// EPERM says one we may not signal, which is alive).
fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// Mount points as /proc/self/mountinfo spells them, unescaped (`\040`
/// is a space).
fn mount_points() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            let b = m.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let oct = b
                    .get(i + 1..i + 4)
                    .and_then(|o| std::str::from_utf8(o).ok())
                    .and_then(|o| u8::from_str_radix(o, 8).ok());
                match (b[i], oct) {
                    (b'\\', Some(c)) => {
                        out.push(c);
                        i += 4;
                    }
                    (c, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
        })
        .collect()
}

/// Whether `path` or anything below it is a mount point.
fn has_mount_under(mounts: &[PathBuf], path: &Path) -> bool {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mounts.iter().any(|m| m.starts_with(&path))
}

/// Removes what dead hoists left in tmp/ and as `index.json.tmp-*` (see
/// the module doc). Best effort and quiet: a store that cannot be tidied
/// still works, and two hoists may tidy at once.
fn clean_stale(dir: &Path) {
    let tmp = dir.join("tmp");
    let in_tmp = fs::read_dir(&tmp).into_iter().flatten().flatten();
    let in_root = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"));
    let stale: Vec<(i32, PathBuf)> = in_tmp
        .chain(in_root)
        .filter_map(|e| {
            let pid = owner_pid(&e.file_name().to_string_lossy())?;
            (!alive(pid)).then(|| (pid, e.path()))
        })
        .collect();
    if stale.is_empty() {
        return;
    }
    // A dead hoist with a mount left under any of its entries may have a
    // container still running there; all of its entries stay.
    let mounts = mount_points();
    let busy: HashSet<i32> = stale
        .iter()
        .filter(|(_, p)| has_mount_under(&mounts, p))
        .map(|(pid, _)| *pid)
        .collect();
    for (pid, p) in stale {
        if !busy.contains(&pid) {
            let _ = remove_any(&p);
        }
    }
}

fn remove_any(p: &Path) -> Result<()> {
    let md = fs::symlink_metadata(p).at(p)?;
    if md.is_dir() {
        fs::remove_dir_all(p).at(p)
    } else {
        fs::remove_file(p).at(p)
    }
}

/// Writes `path` so readers see the old or the new content, never half.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(name);
    let r = fs::write(&tmp, data)
        .at(&tmp)
        .and_then(|()| fs::rename(&tmp, path).at(path));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Where the store is when nothing says: root's in /var/lib, a user's in
/// its XDG data directory (as podman keeps ~/.local/share/containers).
fn default_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from(DEFAULT_DIR);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    data.map(|d| d.join("hoist"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("hoist-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn blobs_are_verified_and_names_replaced_atomically() {
        let dir = scratch("blobs");
        let s = Store::open(&dir).unwrap();
        let d = s.write_bytes(b"{}", "application/json").unwrap();
        assert!(s.has_blob(&d.digest).unwrap());
        // A wrong digest never lands in blobs/ and leaves nothing in tmp/.
        let mut bad = d.clone();
        bad.digest = format!("sha256:{}", "0".repeat(64));
        let err = s.write_blob(&bad, &b"{}"[..], &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(!s.has_blob(&bad.digest).unwrap());
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);

        s.tag("docker.io/library/x:1", &d).unwrap();
        s.tag("docker.io/library/x:1", &d).unwrap();
        assert_eq!(s.images().unwrap().len(), 1);
        assert!(s.lookup("docker.io/library/x:1").unwrap().is_some());
        s.untag("docker.io/library/x:1").unwrap();
        assert!(s.untag("docker.io/library/x:1").is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn stale_tmp_of_dead_processes_goes_at_open() {
        let dir = scratch("stale");
        let s = Store::open(&dir).unwrap();
        // A child that has exited and been reaped: its pid names no
        // process (until reused, which only keeps the file).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!("tmp/blob-{dead}-0"));
        let stale_dir = dir.join(format!("tmp/step-{dead}-3"));
        let stale_index = dir.join(format!("index.json.tmp-{dead}-7"));
        fs::write(&stale, b"partial").unwrap();
        fs::create_dir_all(stale_dir.join("upper/x")).unwrap();
        fs::write(&stale_index, b"{").unwrap();
        let mine = s.tmp_path("blob");
        fs::write(&mine, b"in flight").unwrap();
        let odd = dir.join("tmp/not-a-tmp-name");
        fs::write(&odd, b"").unwrap();
        Store::open(&dir).unwrap();
        assert!(!stale.exists() && !stale_dir.exists() && !stale_index.exists());
        assert!(mine.exists(), "a live process's file was removed");
        assert!(odd.exists(), "a name without a pid was removed");
        assert_eq!(owner_pid("blob-12-3"), Some(12));
        assert_eq!(owner_pid("index.json.tmp-12-3"), Some(12));
        assert_eq!(owner_pid("12-3"), None);
        assert_eq!(owner_pid("blob-x-3"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}

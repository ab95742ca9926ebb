//! Helpers shared by the image tests (tests/hoist.rs, tests/hoist_umoci.rs,
//! tests/registry.rs): scratch dirs, digests, test layers and OCI layouts,
//! running hoist and brig, overlay mounts, xattrs, and the tree walk and
//! comparison of the differential tests (hoist_umoci, build_buildah).
#![allow(dead_code)] // each test crate uses its own subset of these helpers

pub mod build;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use tar::{EntryType, Header};

/// A fresh directory for one test, named after the test crate; removed when
/// dropped (also on panic).
pub struct Scratch(PathBuf);

pub fn scratch(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{name}-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create scratch dir");
    Scratch(d)
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Runs `cmd`, which must succeed; returns its stdout.
#[track_caller]
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn hoist() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
}

/// The outcome of a command that may fail.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(cmd: &mut Command) -> Run {
        let out = cmd.output().expect("run hoist");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `hoist --store STORE ARGS...`
pub fn hoist_in(store: &Path, args: &[&str]) -> Run {
    Run::of(hoist().arg("--store").arg(store).args(args))
}

/// `brig run` of a bundle, which must succeed; returns its stdout.
pub fn brig_run(state: &Path, bundle: &Path, id: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_brig"))
        .arg("--root")
        .arg(state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .output()
        .expect("run brig");
    assert!(
        out.status.success(),
        "brig run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `path` is a mount point (its own line in mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Unmounts a bundle's overlay rootfs when the test ends, passed or not.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mounted(&self.0.join("rootfs")) {
            let _ = hoist().arg("unmount").arg(&self.0).status();
        }
    }
}

/// The value of xattr `name` of `path` (not following a symlink), if set.
pub fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C strings and a buffer of the length passed.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

/// One tar entry of a test layer. Names and link targets of up to 100 bytes
/// go into the header as they are, so hostile ones ("../../escape",
/// absolute paths) get through; longer ones go in PAX path / linkpath
/// records.
pub struct Ent<'a> {
    kind: EntryType,
    path: &'a str,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    dev: (u32, u32),
    /// PAX records written before the entry (xattrs as SCHILY.xattr.*).
    pax: Vec<(String, Vec<u8>)>,
}

impl<'a> Ent<'a> {
    pub fn new(kind: EntryType, path: &'a str, mode: u32) -> Ent<'a> {
        Ent {
            kind,
            path,
            link: "",
            data: b"",
            mode,
            uid: 0,
            gid: 0,
            mtime: 1000,
            dev: (0, 0),
            pax: vec![],
        }
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, t: u64) -> Self {
        self.mtime = t;
        self
    }
    pub fn xattr(self, k: &str, v: &[u8]) -> Self {
        self.pax(&format!("SCHILY.xattr.{k}"), v)
    }
    pub fn pax(mut self, k: &str, v: &[u8]) -> Self {
        self.pax.push((k.to_string(), v.to_vec()));
        self
    }
}

pub fn dir(p: &str, mode: u32) -> Ent<'_> {
    Ent::new(EntryType::Directory, p, mode)
}
pub fn file<'a>(p: &'a str, data: &'a [u8], mode: u32) -> Ent<'a> {
    let mut e = Ent::new(EntryType::Regular, p, mode);
    e.data = data;
    e
}
pub fn sym<'a>(p: &'a str, target: &'a str) -> Ent<'a> {
    let mut e = Ent::new(EntryType::Symlink, p, 0o777);
    e.link = target;
    e
}
pub fn hard<'a>(p: &'a str, target: &'a str) -> Ent<'a> {
    let mut e = Ent::new(EntryType::Link, p, 0o644);
    e.link = target;
    e
}
pub fn fifo(p: &str, mode: u32) -> Ent<'_> {
    Ent::new(EntryType::Fifo, p, mode)
}
pub fn chr(p: &str, major: u32, minor: u32) -> Ent<'_> {
    let mut e = Ent::new(EntryType::Char, p, 0o666);
    e.dev = (major, minor);
    e
}
/// A whiteout marker: an empty regular file.
pub fn wh(p: &str) -> Ent<'_> {
    Ent::new(EntryType::Regular, p, 0o644)
}

fn pax_records(recs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in recs {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    data
}

pub fn layer_tar(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        // Names too long for the header go in PAX path / linkpath records.
        let mut pax: Vec<(&str, &[u8])> = e
            .pax
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let (mut path, mut link) = (e.path, e.link);
        if path.len() > 100 {
            pax.push(("path", path.as_bytes()));
            path = "long-name-in-pax";
        }
        if link.len() > 100 {
            pax.push(("linkpath", link.as_bytes()));
            link = "long-link-in-pax";
        }
        if !pax.is_empty() {
            let data = pax_records(&pax);
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::XHeader);
            h.set_path("PaxHeaders/x").expect("pax name");
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data.as_slice()).expect("append pax");
        }
        // Raw names: set_path would refuse the hostile ones.
        let mut h = Header::new_ustar();
        h.set_entry_type(e.kind);
        {
            let old = h.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(e.data.len() as u64);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(e.dev.0).expect("major");
            h.set_device_minor(e.dev.1).expect("minor");
        }
        h.set_cksum();
        b.append(&h, e.data).expect("append entry");
    }
    b.into_inner().expect("finish tar")
}

/// How a layer blob of [`write_layout`] is compressed.
#[derive(Clone, Copy)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// Writes an OCI layout at `dir`: the layers, the image config, a manifest,
/// and index.json tagging it "v1"; returns the layer descriptors' digests.
pub fn write_layout(dir: &Path, layers: &[(Vec<u8>, Comp)], config: Value) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |b: &[u8]| -> (String, u64) {
        let d = sha256(b);
        fs::write(blobs.join(&d[7..]), b).expect("write blob");
        (d, b.len() as u64)
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, c) in layers {
        diff_ids.push(sha256(tar));
        let (bytes, mt) = match c {
            Comp::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                (
                    e.finish().expect("gzip"),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Comp::Zstd => (
                zstd::encode_all(tar.as_slice(), 3).expect("zstd"),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        let (d, s) = put(&bytes);
        descs.push(json!({"mediaType": mt, "digest": d, "size": s}));
    }
    let mut config = config;
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    config["os"] = json!("linux");
    config["architecture"] = json!("amd64");
    let (cd, cs) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    descs
        .iter()
        .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// What the comparison sees of one entry.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: Option<u64>,
    /// seconds, nanoseconds
    pub mtime: (i64, i64),
    pub target: Option<String>,
    pub rdev: Option<(u32, u32)>,
    pub content: Option<String>,
    pub xattrs: BTreeMap<String, String>,
}

pub fn llistxattr(path: &Path) -> Vec<String> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C string; a null buffer of length 0 asks for the size.
    let n = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if n <= 0 {
        return vec![];
    }
    let mut buf = vec![0u8; n as usize];
    // SAFETY: a buffer of the length passed.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return vec![];
    }
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The tree under `root`: relative path ("." for the root) -> Node, and the
/// hard-link groups (paths of one inode, when it has more than one).
pub fn walk(root: &Path) -> (BTreeMap<String, Node>, BTreeSet<Vec<String>>) {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let md = fs::symlink_metadata(&path).expect("lstat");
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "socket"
        };
        let name = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            rel.to_string_lossy().into_owned()
        };
        let xattrs = llistxattr(&path)
            .into_iter()
            .map(|k| {
                let v = lgetxattr(&path, &k)
                    .unwrap_or_else(|| panic!("lgetxattr {} {k}", path.display()));
                (k, hex::encode(v))
            })
            .collect();
        let node = Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: (kind == "file" || kind == "symlink").then(|| md.size()),
            mtime: (md.mtime(), md.mtime_nsec()),
            target: ft.is_symlink().then(|| {
                fs::read_link(&path)
                    .expect("readlink")
                    .display()
                    .to_string()
            }),
            rdev: (ft.is_char_device() || ft.is_block_device())
                .then(|| (libc::major(md.rdev()), libc::minor(md.rdev()))),
            content: ft
                .is_file()
                .then(|| sha256(&fs::read(&path).expect("read file"))),
            xattrs,
        };
        if ft.is_file() {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(name.clone());
        }
        nodes.insert(name, node);
        if ft.is_dir() {
            for e in fs::read_dir(&path).expect("read_dir") {
                let e = e.expect("dir entry");
                stack.push(rel.join(e.file_name()));
            }
        }
    }
    let groups = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    (nodes, groups)
}

/// A known difference that a differential test prints instead of failing
/// on: (path, field, why). The path is exact, or a prefix when it ends in
/// `*`; the field is one of [`Node`]'s, or "missing" for an entry that only
/// one tree has.
pub type Excuse = (&'static str, &'static str, &'static str);

fn excused<'a>(excuses: &'a [Excuse], path: &str, field: &str) -> Option<&'a Excuse> {
    excuses.iter().find(|e| {
        e.1 == field
            && match e.0.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => e.0 == path,
            }
    })
}

/// The differences between two walked trees, `a` and `b` named by
/// `names`, one line each, and the excused ones (see [`Excuse`]). The
/// fields in `skip` (e.g. "mtime") are not compared.
pub fn diff_trees(
    (a, ag): &(BTreeMap<String, Node>, BTreeSet<Vec<String>>),
    (b, bg): &(BTreeMap<String, Node>, BTreeSet<Vec<String>>),
    (an, bn): (&str, &str),
    excuses: &[Excuse],
    skip: &[&str],
) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut excused_seen = Vec::new();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for n in names {
        let only = |who: &str, x: &Node| {
            let line = format!("{n}: only in {who}'s ({})", x.kind);
            match excused(excuses, n, "missing") {
                Some(e) => (None, Some(format!("{line}: {}", e.2))),
                None => (Some(line), None),
            }
        };
        match (a.get(n), b.get(n)) {
            (Some(x), None) | (None, Some(x)) => {
                let who = if a.contains_key(n) { an } else { bn };
                let (o, e) = only(who, x);
                out.extend(o);
                excused_seen.extend(e);
            }
            (Some(x), Some(y)) if x != y => {
                // Name the fields that differ.
                let mut f = Vec::new();
                macro_rules! cmp {
                    ($field:ident, $fmt:literal) => {
                        let field = stringify!($field);
                        if x.$field != y.$field && !skip.contains(&field) {
                            let line = format!(
                                concat!("{} ", $fmt, " vs ", $fmt),
                                field, x.$field, y.$field
                            );
                            match excused(excuses, n, field) {
                                Some(e) => excused_seen.push(format!("{n}: {line}: {}", e.2)),
                                None => f.push(line),
                            }
                        }
                    };
                }
                cmp!(kind, "{}");
                cmp!(mode, "{:04o}");
                cmp!(uid, "{}");
                cmp!(gid, "{}");
                cmp!(size, "{:?}");
                cmp!(mtime, "{:?}");
                cmp!(target, "{:?}");
                cmp!(rdev, "{:?}");
                cmp!(content, "{:?}");
                cmp!(xattrs, "{:?}");
                if !f.is_empty() {
                    out.push(format!("{n}: {} ({an} vs {bn})", f.join(", ")));
                }
            }
            _ => {}
        }
    }
    // Hard-link groups, less the names that only one tree has or that are
    // excused as missing.
    let keep = |g: &Vec<String>| -> Vec<String> {
        g.iter()
            .filter(|p| a.contains_key(*p) && b.contains_key(*p))
            .cloned()
            .collect()
    };
    let norm = |gs: &BTreeSet<Vec<String>>| -> BTreeSet<Vec<String>> {
        gs.iter().map(keep).filter(|g| g.len() > 1).collect()
    };
    let (ag, bg) = (norm(ag), norm(bg));
    for g in ag.difference(&bg) {
        out.push(format!("hard links only in {an}'s: {g:?}"));
    }
    for g in bg.difference(&ag) {
        out.push(format!("hard links only in {bn}'s: {g:?}"));
    }
    (out, excused_seen)
}

/// Whether `tool` is on PATH.
pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tools (command, Debian package) a test needs, installing missing
/// ones with apt-get. False when one cannot be had: the caller skips and
/// says so, except under CI=true, where that fails the test instead.
pub fn need_tools(tools: &[(&str, &str)], why: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(_, p)| *p)
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("missing for {why}: apt-get install {}", missing.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_else(|e| e.to_string())
    };
    let _ = apt(&["update", "-qq"]);
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    let err = apt(&args);
    let still: Vec<&str> = tools
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(t, _)| *t)
        .collect();
    if still.is_empty() {
        return true;
    }
    let msg = format!(
        "{why} needs {still:?} (Debian packages {missing:?}) and apt-get install failed: {}",
        err.trim()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Debian's docker-registry on a loopback port with its own storage,
/// killed when dropped (also on a panic). The caller has its tools.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    pub dir: Scratch,
}

impl Registry {
    /// `extra(dir)` is appended to config.yml, whose last section is
    /// `http:` (indented lines continue it: tls; unindented start another:
    /// auth).
    pub fn start(name: &str, extra: impl FnOnce(&Path) -> String) -> Registry {
        use std::time::{Duration, Instant};
        let dir = scratch(name);
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: brig-test-secret\n",
            dir.join("data").display()
        );
        cfg += &extra(&dir);
        let cfg_path = dir.join("config.yml");
        fs::write(&cfg_path, cfg).expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return reg;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

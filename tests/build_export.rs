//! Layers committed from an overlay upper directory, and stored images
//! written out and pushed, checked with real tools: hoist unpacks the
//! committed layers, skopeo reads the exported layouts and archives,
//! podman (with a private storage) loads the docker-archive, and Debian's
//! docker-registry takes a push that skopeo and hoist then read back.
//! Runs as root (mknod, trusted.* xattrs).

mod image_common;

use brig::build::{commit, export};
use brig::image::layout::Descriptor;
use brig::image::push;
use brig::image::registry::Options;
use brig::image::store::Store;
use image_common::{free_port, hoist_in, layer_tar, need_tools, run, scratch, sha256, Registry};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TOOLS: &[(&str, &str)] = &[
    ("skopeo", "skopeo"),
    ("podman", "podman"),
    ("docker-registry", "docker-registry"),
    ("busybox", "busybox-static"),
];

/// Installs what is missing, once; a tool that cannot be had fails the test.
fn tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            need_tools(TOOLS, "the export tests"),
            "the export tests cannot run without {TOOLS:?}"
        );
    });
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: valid C strings and a value of the length passed.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn set_mtime(path: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 123_456_789);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
}

const LONG: &str = "a-file-whose-name-is-much-longer-than-the-hundred-bytes-a-ustar-header-has-room-for-so-it-goes-in-pax.txt";

/// An upper directory as overlayfs leaves one after a step that changed
/// files, deleted `gone` and `etc/old` (whiteouts), replaced `opq`
/// (opaque), and made one of everything else.
fn make_upper(upper: &Path) {
    let p = |s: &str| upper.join(s);
    for d in ["etc", "bin", "hl", "opq", "dev", "deep/er"] {
        fs::create_dir_all(p(d)).expect("mkdir");
    }
    fs::write(p("etc/conf"), "hello\n").expect("write");
    setxattr(&p("etc/conf"), "user.test", b"value");
    // Overlay's bookkeeping on a copied-up file: never in the layer.
    setxattr(&p("etc/conf"), "trusted.overlay.origin", b"\x00\xfb");
    fs::write(p("bin/su"), "#!/bin/sh\n").expect("write");
    fs::set_permissions(p("bin/su"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::create_dir(p("tmp")).expect("mkdir");
    fs::set_permissions(p("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    symlink("etc/conf", p("link")).expect("symlink");
    fs::write(p("hl/a"), "linked\n").expect("write");
    fs::hard_link(p("hl/a"), p("hl/b")).expect("link");
    nix::unistd::mkfifo(&p("fifo"), Mode::from_bits_truncate(0o640)).expect("mkfifo");
    let chr = |path: &Path, major, minor, mode| {
        mknod(
            path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(mode),
            makedev(major, minor),
        )
        .expect("mknod")
    };
    chr(&p("gone"), 0, 0, 0o000);
    chr(&p("etc/old"), 0, 0, 0o000);
    chr(&p("dev/null"), 1, 3, 0o666);
    setxattr(&p("opq"), "trusted.overlay.opaque", b"y");
    fs::write(p("opq/new"), "new\n").expect("write");
    fs::write(p(&format!("deep/er/{LONG}")), "long\n").expect("write");
    nix::unistd::chown(&p("etc/conf"), Some(1000.into()), Some(2000.into())).expect("chown");
    set_mtime(&p("etc/conf"), 1_600_000_000);
    set_mtime(&p("bin/su"), 1_000_000_000);
}

/// A tar entry as read back.
#[derive(Debug, Clone, PartialEq)]
struct Ent {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: String,
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    dev: (u32, u32),
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// The entries of a tar, in order.
fn entries(tar_bytes: &[u8]) -> Vec<(String, Ent)> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in ar.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for x in exts {
                let x = x.expect("pax record");
                if let Some(k) = x.key().expect("pax key").strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        let h = e.header().clone();
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let link = e
            .link_name()
            .expect("link")
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("data");
        assert!(
            h.username_bytes().is_none_or(|u| u.is_empty()),
            "{path}: uname"
        );
        out.push((
            path,
            Ent {
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                uid: h.uid().expect("uid"),
                gid: h.gid().expect("gid"),
                mtime: h.mtime().expect("mtime"),
                link,
                data,
                xattrs,
                dev: (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                ),
            },
        ));
    }
    out
}

fn blob(store: &Store, d: &Descriptor) -> Vec<u8> {
    fs::read(store.layout().blob_path(&d.digest).expect("blob path")).expect("read blob")
}

#[test]
fn commit_makes_an_oci_layer_of_an_upper_dir() {
    let s = scratch("commit");
    let upper = s.join("upper");
    make_upper(&upper);
    let store = Store::open(&s.join("store")).expect("store");
    let c = commit::commit(&store, &upper, None).expect("commit");
    assert_eq!(c.desc.media_type, commit::LAYER_GZIP);
    let gz = blob(&store, &c.desc);
    assert_eq!(sha256(&gz), c.desc.digest);
    assert_eq!(gz.len() as u64, c.desc.size);
    // No name, no time in the gzip header.
    assert_eq!(gz[3] & 0x08, 0, "FNAME set");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime");
    let tar_bytes = gunzip(&gz);
    assert_eq!(sha256(&tar_bytes), c.diff_id);
    let ents = entries(&tar_bytes);
    let names: Vec<&str> = ents.iter().map(|(n, _)| n.as_str()).collect();
    let get = |n: &str| {
        ents.iter()
            .find(|(p, _)| p == n)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no entry {n} in {names:?}"))
    };
    // Parents before children, each directory sorted, the opaque marker
    // right after its directory.
    let want_order = [
        "bin/",
        "bin/su",
        "deep/",
        "deep/er/",
        &format!("deep/er/{LONG}"),
        "dev/",
        "dev/null",
        "etc/",
        "etc/conf",
        "etc/.wh.old",
        "fifo",
        ".wh.gone",
        "hl/",
        "hl/a",
        "hl/b",
        "link",
        "opq/",
        "opq/.wh..wh..opq",
        "opq/new",
        "tmp/",
    ];
    assert_eq!(names, want_order);

    let conf = get("etc/conf");
    assert_eq!(conf.kind, tar::EntryType::Regular);
    assert_eq!(conf.data, b"hello\n");
    assert_eq!((conf.uid, conf.gid), (1000, 2000));
    assert_eq!(conf.mtime, 1_600_000_000, "sub-second part dropped");
    assert_eq!(
        conf.xattrs.keys().collect::<Vec<_>>(),
        ["user.test"],
        "overlay xattrs stay out"
    );
    assert_eq!(conf.xattrs["user.test"], b"value");
    for wh in ["etc/.wh.old", ".wh.gone", "opq/.wh..wh..opq"] {
        let e = get(wh);
        assert_eq!(e.kind, tar::EntryType::Regular, "{wh}");
        assert!(e.data.is_empty(), "{wh}");
        assert!(e.xattrs.is_empty(), "{wh}: {:?}", e.xattrs);
    }
    assert!(get("opq/").xattrs.is_empty(), "opaque xattr copied");
    assert_eq!(get("bin/su").mode, 0o4755);
    assert_eq!(get("tmp/").mode, 0o1777);
    assert_eq!(get("tmp/").kind, tar::EntryType::Directory);
    let link = get("link");
    assert_eq!(
        (link.kind, link.link.as_str()),
        (tar::EntryType::Symlink, "etc/conf")
    );
    let b = get("hl/b");
    assert_eq!((b.kind, b.link.as_str()), (tar::EntryType::Link, "hl/a"));
    assert_eq!(get("hl/a").data, b"linked\n");
    let fifo = get("fifo");
    assert_eq!((fifo.kind, fifo.mode), (tar::EntryType::Fifo, 0o640));
    let null = get("dev/null");
    assert_eq!((null.kind, null.dev), (tar::EntryType::Char, (1, 3)));
    assert_eq!(get(&format!("deep/er/{LONG}")).data, b"long\n");

    // The same tree gives the same blob.
    let again = commit::commit(&store, &upper, None).expect("commit again");
    assert_eq!(again.desc.digest, c.desc.digest);
    assert_eq!(again.diff_id, c.diff_id);
    assert_eq!(
        fs::read_dir(s.join("store/tmp")).expect("tmp").count(),
        0,
        "tmp/ left behind"
    );

    // SOURCE_DATE_EPOCH caps mtimes; older ones stay.
    let clamped = commit::commit(&store, &upper, Some(1_500_000_000)).expect("commit epoch");
    assert_ne!(clamped.desc.digest, c.desc.digest);
    let ents = entries(&gunzip(&blob(&store, &clamped.desc)));
    for (n, e) in &ents {
        assert!(e.mtime <= 1_500_000_000, "{n}: {}", e.mtime);
    }
    let m = |n: &str| ents.iter().find(|(p, _)| p == n).map(|(_, e)| e.mtime);
    assert_eq!(m("etc/conf"), Some(1_500_000_000));
    assert_eq!(m("bin/su"), Some(1_000_000_000));
}

#[test]
fn commit_refuses_what_needs_a_lower_layer() {
    let s = scratch("metacopy");
    let upper = s.join("upper");
    fs::create_dir_all(&upper).expect("mkdir");
    fs::write(upper.join("f"), "").expect("write");
    setxattr(&upper.join("f"), "trusted.overlay.metacopy", b"");
    let store = Store::open(&s.join("store")).expect("store");
    let err = commit::commit(&store, &upper, None)
        .expect_err("metacopy upper committed")
        .to_string();
    assert!(err.contains("metacopy") && !err.contains('\n'), "{err}");
    assert_eq!(fs::read_dir(s.join("store/tmp")).expect("tmp").count(), 0);
    let err = commit::commit(&store, &s.join("nope"), None)
        .expect_err("missing upper")
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

/// What a tree holds, path by path, for comparing two trees: type, mode,
/// owner, mtime, content, link target, device, user xattrs, and which
/// paths share an inode.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>, inos: &mut Vec<u64>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            let md = fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                continue; // a whiteout: not a file of the image
            }
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink {}", fs::read_link(&p).expect("readlink").display())
            } else if ft.is_file() {
                format!("file {}", sha256(&fs::read(&p).expect("read")))
            } else {
                format!("node rdev {}", md.rdev())
            };
            let link_group = if !ft.is_dir() && md.nlink() > 1 {
                let i = inos.iter().position(|&x| x == md.ino()).unwrap_or_else(|| {
                    inos.push(md.ino());
                    inos.len() - 1
                });
                format!(" linkgroup {i}")
            } else {
                String::new()
            };
            let mut xattrs = String::new();
            for k in ["user.test"] {
                if let Some(v) = image_common::lgetxattr(&p, k) {
                    xattrs += &format!(" {k}={}", String::from_utf8_lossy(&v));
                }
            }
            // Directory mtimes are whatever the last change in them made
            // them; the layer cannot carry those of the files' own writes.
            let mtime = if ft.is_dir() { 0 } else { md.mtime() };
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} {}:{} mtime {mtime}{link_group}{xattrs}",
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out, inos);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut Vec::new());
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// Stores an image of `layers` (gzip blob, diff_id) under `name`.
fn store_image(store: &Store, name: &str, layers: &[(Descriptor, String)]) -> Descriptor {
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.1).collect::<Vec<_>>()},
    });
    let cdesc = store
        .write_bytes(
            config.to_string().as_bytes(),
            "application/vnd.oci.image.config.v1+json",
        )
        .expect("config");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": layers.iter().map(|l| &l.0).collect::<Vec<_>>(),
    });
    let mdesc = store
        .write_bytes(
            manifest.to_string().as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .expect("manifest");
    store.tag(name, &mdesc).expect("tag");
    mdesc
}

/// commit -> store -> export -> `hoist unpack`: the rootfs is the lower
/// layer with the upper's changes, file for file.
#[test]
fn committed_layer_round_trips_through_hoist_unpack() {
    use image_common::{dir, file};
    let s = scratch("roundtrip");
    let store = Store::open(&s.join("store")).expect("store");
    // The lower layer: what the whiteouts and the opaque dir hide, and
    // something that stays.
    let base = layer_tar(&[
        file("gone", b"x", 0o644),
        dir("etc", 0o755),
        file("etc/old", b"x", 0o644),
        dir("opq", 0o755),
        file("opq/lower", b"x", 0o644),
        file("keep", b"kept\n", 0o600).mtime(1234),
    ]);
    let base_gz = gzip(&base);
    let base_desc = store
        .write_bytes(&base_gz, commit::LAYER_GZIP)
        .expect("base layer");
    let upper = s.join("upper");
    make_upper(&upper);
    let c = commit::commit(&store, &upper, None).expect("commit");
    let name = "localhost/roundtrip:1";
    let mdesc = store_image(
        &store,
        name,
        &[(base_desc, sha256(&base)), (c.desc, c.diff_id)],
    );

    let out = s.join("layout");
    export::to_oci_layout(&store, &mdesc, name, &out).expect("export");
    let bundle = s.join("bundle");
    let r = hoist_in(
        &s.join("unused-store"),
        &[
            "unpack",
            "-q",
            &format!("oci:{}:1", out.display()),
            &bundle.display().to_string(),
        ],
    );
    assert!(r.ok, "hoist unpack: {}", r.stderr);
    let got = snapshot(&bundle.join("rootfs"));
    let mut want = snapshot(&upper);
    want.insert(
        "keep".into(),
        "file ".to_string() + &sha256(b"kept\n") + " mode 600 0:0 mtime 1234",
    );
    assert_eq!(got, want);
}

/// The busybox image of hack/mkimage, pulled into `store` by hoist.
fn busybox_in(store: &Path) -> (String, Descriptor) {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    let tar = TAR.get_or_init(|| {
        tools();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("build-export-busybox.tar");
        run(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkimage"))
                .arg(&out)
                .arg("busybox:latest"),
        );
        out
    });
    let r = hoist_in(
        store,
        &["pull", "-q", &format!("oci-archive:{}", tar.display())],
    );
    assert!(r.ok, "hoist pull: {}", r.stderr);
    let name = "docker.io/library/busybox:latest".to_string();
    let d = Store::open(store)
        .expect("store")
        .lookup(&name)
        .expect("lookup")
        .expect("busybox in the store");
    (name, d)
}

fn skopeo_inspect(what: &str) -> Value {
    let out = run(Command::new("skopeo").args(["inspect", what]));
    serde_json::from_slice(&out).expect("skopeo inspect JSON")
}

fn skopeo_config(what: &str) -> Value {
    let out = run(Command::new("skopeo").args(["inspect", "--config", what]));
    serde_json::from_slice(&out).expect("skopeo inspect --config JSON")
}

#[test]
fn export_to_oci_layout_and_archive() {
    let s = scratch("oci");
    let (name, mdesc) = busybox_in(&s.join("store"));
    let store = Store::open(&s.join("store")).expect("store");
    let dir = s.join("layout");
    export::to_oci_layout(&store, &mdesc, &name, &dir).expect("to_oci_layout");
    let v = skopeo_inspect(&format!("oci:{}:latest", dir.display()));
    assert_eq!(v["Digest"], json!(mdesc.digest));

    // A second name in the same layout; exporting a name again replaces
    // its entry.
    export::to_oci_layout(&store, &mdesc, "docker.io/library/busybox:2", &dir).expect("again");
    export::to_oci_layout(&store, &mdesc, &name, &dir).expect("replace");
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index")).expect("json");
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 2, "{index}");
    let latest = entries
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("latest entry");
    assert_eq!(
        latest["annotations"]["io.containerd.image.name"],
        json!(name)
    );
    assert_eq!(latest["platform"]["os"], json!("linux"));
    skopeo_inspect(&format!("oci:{}:2", dir.display()));
    // hoist itself reads it back, name included.
    let r = hoist_in(
        &s.join("store2"),
        &[
            "pull",
            "-q",
            &format!("oci:{}:latest", dir.display()),
            "--name",
            "busybox:back",
        ],
    );
    assert!(r.ok, "hoist pull oci: {}", r.stderr);

    let file = s.join("busybox.oci.tar");
    export::to_oci_archive(&store, &mdesc, &name, &file).expect("to_oci_archive");
    let v = skopeo_inspect(&format!("oci-archive:{}:latest", file.display()));
    assert_eq!(v["Digest"], json!(mdesc.digest));
    let leftovers: Vec<_> = fs::read_dir(&*s)
        .expect("read scratch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp") || n.contains(".layout-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A directory with a short path, removed when dropped.
struct ShortDir(PathBuf);

impl ShortDir {
    fn new() -> ShortDir {
        let d = PathBuf::from(format!("/tmp/brig-be-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir short dir");
        ShortDir(d)
    }
}

impl Drop for ShortDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A private podman: storage, run root, tmp and config in `dir`, and the
/// blob-info cache containers/image keeps in /var/lib/containers/cache for
/// root kept off the host by a private mount namespace where /var/lib and
/// /var/cache are empty tmpfs.
fn podman(dir: &Path, args: &str) -> String {
    fs::create_dir_all(dir.join("tmp")).expect("mkdir");
    fs::write(
        dir.join("containers.conf"),
        format!(
            "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{0}/events.log\"\n\
             tmp_dir = \"{0}/tmp\"\nstatic_dir = \"{0}/root/libpod\"\nvolume_path = \"{0}/root/volumes\"\n",
            dir.display()
        ),
    )
    .expect("containers.conf");
    fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            dir.display()
        ),
    )
    .expect("storage.conf");
    let cli = format!(
        "podman --root {0}/root --runroot {0}/run --tmpdir {0}/tmp --storage-driver vfs \
         --events-backend file --cgroup-manager cgroupfs",
        dir.display()
    );
    let script =
        format!("mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /var/cache && {cli} {args}");
    let out = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
        .env("TMPDIR", dir.join("tmp")));
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn export_to_docker_archive_loads_in_podman() {
    tools();
    let s = scratch("docker");
    let (name, mdesc) = busybox_in(&s.join("store"));
    let store = Store::open(&s.join("store")).expect("store");
    let file = s.join("busybox.docker.tar");
    let tags = vec![name.clone(), "localhost:5000/x/y:t".to_string()];
    export::to_docker_archive(&store, &mdesc, &tags, &file).expect("to_docker_archive");

    // The layout docker save writes.
    let ents = entries(&fs::read(&file).expect("read archive"));
    let get = |n: &str| {
        ents.iter()
            .find(|(p, _)| p == n)
            .map(|(_, e)| e.data.clone())
            .unwrap_or_else(|| panic!("no {n}"))
    };
    let manifest: Value = serde_json::from_slice(&get("manifest.json")).expect("manifest.json");
    assert_eq!(
        manifest[0]["RepoTags"],
        json!(["busybox:latest", "localhost:5000/x/y:t"])
    );
    let m = store.manifest(&mdesc).expect("manifest");
    let config: Value = store.layout().json_blob(&m.config).expect("config");
    let layer = manifest[0]["Layers"][0].as_str().expect("layer name");
    assert_eq!(
        sha256(&get(layer)),
        config["rootfs"]["diff_ids"][0].as_str().expect("diff_id"),
        "layer.tar is the uncompressed layer"
    );
    let repos: Value = serde_json::from_slice(&get("repositories")).expect("repositories");
    assert!(repos["busybox"]["latest"].is_string(), "{repos}");

    let v = skopeo_config(&format!("docker-archive:{}", file.display()));
    assert_eq!(v["rootfs"]["diff_ids"], config["rootfs"]["diff_ids"]);
    // hoist reads it back too.
    let r = hoist_in(
        &s.join("store2"),
        &[
            "pull",
            "-q",
            &format!("docker-archive:{}:busybox:latest", file.display()),
        ],
    );
    assert!(r.ok, "hoist pull docker-archive: {}", r.stderr);

    // podman wants a run root of at most 50 characters: a short dir in
    // /tmp, removed when the test ends.
    let p = ShortDir::new();
    let p = &p.0;
    podman(p, &format!("load -q -i {}", file.display()));
    let images = podman(p, "images --format '{{.Repository}}:{{.Tag}} {{.ID}}'");
    let cfg_hex = &m.config.digest["sha256:".len()..];
    // Podman 4 names a docker-archive's short "busybox:latest" as its own
    // localhost/busybox:latest, where Docker says docker.io/library/...
    let wants: [&[&str]; 2] = [
        &[
            "docker.io/library/busybox:latest",
            "localhost/busybox:latest",
        ],
        &["localhost:5000/x/y:t"],
    ];
    for want in wants {
        assert!(
            images.lines().any(|l| {
                let (n, id) = l.split_once(' ').unwrap_or((l, "-"));
                want.contains(&n) && cfg_hex.starts_with(id)
            }),
            "podman images lacks {want:?} with image id {cfg_hex}: {images}"
        );
    }
}

#[test]
fn push_to_a_registry_and_pull_back() {
    let reg = {
        tools();
        Registry::start("registry", |_| String::new())
    };
    let s = scratch("push");
    let (name, mdesc) = busybox_in(&s.join("store"));
    let store = Store::open(&s.join("store")).expect("store");
    let dest = format!("docker://127.0.0.1:{}/x:1", reg.port);
    let opts = Options::default(); // loopback: plain HTTP allowed
    let digest = push::push(&store, &name, &dest, &opts, true).expect("push");
    assert_eq!(digest, mdesc.digest);
    let v = skopeo_inspect_registry(&format!("127.0.0.1:{}/x:1", reg.port));
    assert_eq!(v["Digest"], json!(mdesc.digest));
    // Again, and under a second tag: the blobs are there already.
    let dest2 = format!("127.0.0.1:{}/x:2", reg.port);
    assert_eq!(
        push::push(&store, &name, &dest2, &opts, true).expect("push again"),
        digest
    );

    let r = hoist_in(&s.join("store2"), &["pull", "-q", &dest]);
    assert!(r.ok, "hoist pull: {}", r.stderr);
    let back = Store::open(&s.join("store2"))
        .expect("store2")
        .lookup(&format!("127.0.0.1:{}/x:1", reg.port))
        .expect("lookup")
        .expect("pulled image");
    assert_eq!(back.digest, mdesc.digest);

    // Failures are one line naming what failed.
    let err = push::push(&store, "docker.io/library/nope:1", &dest, &opts, true)
        .expect_err("pushed a missing image")
        .to_string();
    assert!(err.contains("nope") && !err.contains('\n'), "{err}");
    let dead = format!("docker://127.0.0.1:{}/x:1", free_port());
    let err = push::push(&store, &name, &dead, &opts, true)
        .expect_err("pushed to nowhere")
        .to_string();
    assert!(
        err.contains("127.0.0.1") && err.contains("x") && !err.contains('\n'),
        "{err}"
    );
}

fn skopeo_inspect_registry(image: &str) -> Value {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}")));
    serde_json::from_slice(&out).expect("skopeo inspect JSON")
}

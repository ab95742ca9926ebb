//! Layer application: an uncompressed layer tar applied to a fresh, empty
//! rootfs. Every entry is untrusted, so after each input nothing outside
//! the rootfs may have changed. The scratch dir (fixed, so that seed
//! layers can aim absolute symlinks and hard links at it) holds:
//!
//!   canary/       an empty dir that must stay empty and untouched
//!   canary-file   a file whose bytes, mode, owner, times and link count
//!                 must not change
//!   rootfs/       made anew for each input, removed after it
//!
//! Run as root: layers make device nodes and chown.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CANARY_BYTES: &[u8] = b"canary\n";

struct Scratch {
    base: PathBuf,
    /// Held for the life of the process: one fuzzer per scratch dir.
    _lock: File,
    canary_dir: Snapshot,
    canary_file: Snapshot,
    base_meta: (u32, u32, u32),
}

/// What must not change about a path outside the rootfs.
#[derive(Debug, PartialEq)]
struct Snapshot {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn snapshot(p: &Path) -> Snapshot {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Snapshot {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    }
}

fn base_meta(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mode(), m.uid(), m.gid())
}

fn setup(base: PathBuf) -> Option<Scratch> {
    fs::create_dir_all(&base).unwrap();
    let lock = File::create(base.join(".lock")).unwrap();
    if lock.try_lock().is_err() {
        return None; // another fuzzer has it
    }
    remove_tree(&base.join("rootfs"));
    remove_tree(&base.join("canary"));
    let _ = fs::remove_file(base.join("canary-file"));
    fs::create_dir(base.join("canary")).unwrap();
    fs::write(base.join("canary-file"), CANARY_BYTES).unwrap();
    fs::set_permissions(base.join("canary-file"), fs::Permissions::from_mode(0o644)).unwrap();
    Some(Scratch {
        canary_dir: snapshot(&base.join("canary")),
        canary_file: snapshot(&base.join("canary-file")),
        base_meta: base_meta(&base),
        base,
        _lock: lock,
    })
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let fixed = std::env::var_os("BRIG_FUZZ_LAYER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/brig-fuzz-layer"));
        setup(fixed.clone())
            .or_else(|| {
                let mut own = fixed.into_os_string();
                own.push(format!("-{}", std::process::id()));
                setup(own.into())
            })
            .expect("no scratch dir")
    })
}

/// remove_dir_all, after making every directory writable again should a
/// non-root run have left one it cannot empty.
fn remove_tree(p: &Path) {
    if fs::symlink_metadata(p).is_err() || fs::remove_dir_all(p).is_ok() {
        return;
    }
    fn open_up(p: &Path) {
        let Ok(m) = fs::symlink_metadata(p) else { return };
        if m.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(p);
    fs::remove_dir_all(p).unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    let rootfs = s.base.join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    let root = File::open(&rootfs).unwrap();

    let res = brig::image::layer::apply_layer(root.as_fd(), data, brig::image::layer::Compression::None);
    if let Ok((rest, diff_id)) = &res {
        assert!(rest.is_empty(), "apply_layer left {} bytes unread", rest.len());
        let want = format!("sha256:{}", hex(&Sha256::digest(data)));
        assert_eq!(diff_id, &want, "diff_id is not the sha256 of the layer");
    }
    drop(root);

    // Nothing outside rootfs/ changed, whatever the layer did.
    let mut names: Vec<_> = fs::read_dir(&s.base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".lock", "canary", "canary-file", "rootfs"], "scratch dir changed: {res:?}");
    assert_eq!(base_meta(&s.base), s.base_meta, "scratch dir's mode/owner changed: {res:?}");
    assert!(
        fs::read_dir(s.base.join("canary")).unwrap().next().is_none(),
        "something was written into the canary dir: {res:?}"
    );
    assert_eq!(snapshot(&s.base.join("canary")), s.canary_dir, "canary dir changed: {res:?}");
    assert_eq!(snapshot(&s.base.join("canary-file")), s.canary_file, "canary file changed (or hard-linked): {res:?}");
    assert_eq!(fs::read(s.base.join("canary-file")).unwrap(), CANARY_BYTES, "canary file rewritten: {res:?}");
    assert!(fs::symlink_metadata(&rootfs).unwrap().is_dir(), "rootfs replaced: {res:?}");

    remove_tree(&rootfs);
});

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

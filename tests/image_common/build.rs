//! Helpers of the `hoist build` tests (tests/build*.rs): the busybox
//! image of hack/mkimage in a store, contexts, builds, and the checks that
//! a failed build left nothing behind.

use super::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The busybox OCI archive, made once per test run.
pub fn busybox() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("build-busybox.tar");
        run(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkimage"))
                .arg(&out)
                .arg("localhost/busybox:latest"),
        );
        out
    })
}

/// A store with the busybox image in it as localhost/busybox:latest.
pub fn store_with_busybox(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let r = hoist_in(
        &store,
        &[
            "pull",
            "-q",
            &format!("oci-archive:{}", busybox().display()),
        ],
    );
    assert!(r.ok, "import busybox: {}", r.stderr);
    store
}

/// Writes the context: `files` (path, content) and the Dockerfile.
pub fn context(dir: &Path, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (p, c) in files {
        let p = ctx.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    }
    ctx
}

pub fn build(store: &Path, ctx: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["build"];
    args.extend(extra);
    let c = ctx.to_string_lossy().into_owned();
    args.push(&c);
    hoist_in(store, &args)
}

/// Unpacks NAME and runs it with brig; returns what it printed.
pub fn run_image(dir: &Path, store: &Path, name: &str, args: &[&str]) -> String {
    let b = dir.join(format!("bundle-{}", name.replace(['/', ':'], "-")));
    let _ = fs::remove_dir_all(&b);
    let mut a = vec!["unpack", name, b.to_str().unwrap()];
    for x in args {
        a.push("--args");
        a.push(x);
    }
    let r = hoist_in(store, &a);
    assert!(r.ok, "unpack {name}: {}", r.stderr);
    let id = format!("build-{}-{}", std::process::id(), name.len() + args.len());
    brig_run(&dir.join("state"), &b, &id)
}

/// Unpacks the stored image `name` into a fresh bundle under `dir`;
/// returns its rootfs.
pub fn unpacked(dir: &Path, store: &Path, name: &str) -> PathBuf {
    let b = dir.join(format!("unpacked-{}", name.replace(['/', ':'], "-")));
    let _ = fs::remove_dir_all(&b);
    let r = hoist_in(store, &["unpack", "-q", name, b.to_str().unwrap()]);
    assert!(r.ok, "unpack {name}: {}", r.stderr);
    b.join("rootfs")
}

/// The text of `file` in the stored image `name`.
pub fn read_in_image(dir: &Path, store: &Path, name: &str, file: &str) -> String {
    let p = unpacked(dir, store, name).join(file);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}:/{file}: {e}"))
}

pub fn inspect(store: &Path, name: &str) -> Value {
    let r = hoist_in(store, &["inspect", name]);
    assert!(r.ok, "inspect: {}", r.stderr);
    serde_json::from_str(&r.stdout).expect("inspect JSON")
}

pub fn no_step_left(store: &Path) {
    let tmp: Vec<_> = fs::read_dir(store.join("tmp"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*store.to_string_lossy()),
        "a mount of the build is left"
    );
}

/// The build failed with one `hoist:` line holding each of `wants`, the
/// store names only busybox, and nothing of the build is left.
pub fn assert_build_failed(store: &Path, r: &Run, wants: &[&str]) {
    assert_build_failed_leaving(store, r, wants, "localhost/busybox:latest\n")
}

/// As [`assert_build_failed`], with `images` (what `images -q` printed
/// before the build) still the store's names.
pub fn assert_build_failed_leaving(store: &Path, r: &Run, wants: &[&str], images: &str) {
    assert!(!r.ok, "build succeeded: {}", r.stdout);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("hoist:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line: {}", r.stderr);
    for w in wants {
        assert!(lines[0].contains(w), "error lacks {w:?}: {}", lines[0]);
    }
    assert_eq!(
        hoist_in(store, &["images", "-q"]).stdout,
        images,
        "a tag was left"
    );
    no_step_left(store);
}

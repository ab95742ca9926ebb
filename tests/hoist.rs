//! hoist unpack: OCI layouts built here, layer by layer, unpacked into
//! bundles; hostile layers that try to write outside the rootfs; and an
//! end-to-end run of an unpacked busybox image with brig. Needs root.

mod image_common;

use image_common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use tar::{EntryType, Header};

fn unpack(source: &str, bundle: &Path, extra: &[&str]) -> Run {
    Run::of(hoist().arg("unpack").args(extra).arg(source).arg(bundle))
}

/// Names in `dir` other than `keep`: leftovers of a failed unpack.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read scratch dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

/// The three-layer image of the layer tests: whiteouts, an opaque
/// directory, hard links across layers, every node type, owners, setuid,
/// xattrs, and a config with every field the conversion reads.
fn write_layered_image(layout: &Path) {
    let l1 = layer_tar(&[
        dir("etc", 0o755),
        file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            0o644,
        ),
        file(
            "etc/group",
            b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
            0o644,
        ),
        dir("data", 0o755),
        file("data/keep", b"kept", 0o644),
        file("data/gone", b"gone", 0o644),
        dir("opq", 0o755),
        file("opq/old", b"old", 0o644),
        dir("opq/sub", 0o755),
        file("opq/sub/old", b"old", 0o644),
        file("bin/tool", b"#!/bin/sh\n", 0o755),
        file("replaced", b"a file", 0o644),
    ]);
    let l2 = layer_tar(&[
        file("data/.wh.gone", b"", 0o644),
        dir("opq", 0o750),
        file("opq/.wh..wh..opq", b"", 0o644),
        file("opq/new", b"new", 0o644),
        hard("data/hard", "data/keep"),
        sym("data/sym", "keep"),
        file("usr/bin/su", b"su", 0o4755),
        file("home/app/owned", b"", 0o640).owner(1000, 1000),
        fifo("run/fifo", 0o600),
        chr("dev/null2", 1, 3),
        file("data/xattr", b"x", 0o600).xattr("user.hoist", b"yes"),
        dir("replaced", 0o700),
    ]);
    let l3 = layer_tar(&[file("data/third", b"3", 0o644)]);
    write_layout(
        layout,
        &[(l1, Comp::Gzip), (l2, Comp::Zstd), (l3, Comp::None)],
        json!({"config": {
            "Entrypoint": ["/bin/tool"], "Cmd": ["--flag"],
            "Env": ["FOO=bar"], "WorkingDir": "/data", "User": "app",
            "Labels": {"com.example.a": "b"}, "StopSignal": "SIGINT",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/var/lib/data": {}, "/cache": {}}
        }}),
    );
}

/// Asserts the bundle unpacked from [`write_layered_image`].
fn check_layered_bundle(bundle: &Path) {
    let root = bundle.join("rootfs");

    assert_eq!(fs::read(root.join("data/keep")).unwrap(), b"kept");
    assert!(!root.join("data/gone").exists(), "whiteout ignored");
    assert!(
        !root.join("data/.wh.gone").exists(),
        "whiteout marker written"
    );
    assert!(root.join("opq/new").exists());
    assert!(!root.join("opq/old").exists(), "opaque dir kept opq/old");
    assert!(!root.join("opq/sub").exists(), "opaque dir kept opq/sub");
    assert!(!root.join("opq/.wh..wh..opq").exists());
    assert_eq!(
        fs::metadata(root.join("opq")).unwrap().mode() & 0o7777,
        0o750
    );
    let keep = fs::metadata(root.join("data/keep")).unwrap();
    let hard = fs::metadata(root.join("data/hard")).unwrap();
    assert_eq!(keep.ino(), hard.ino(), "hard link across layers");
    assert_eq!(keep.nlink(), 2);
    assert_eq!(
        fs::read_link(root.join("data/sym")).unwrap(),
        Path::new("keep")
    );
    let su = fs::metadata(root.join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid kept");
    let owned = fs::metadata(root.join("home/app/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1000, 1000, 0o640)
    );
    assert!(fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null2 = fs::symlink_metadata(root.join("dev/null2")).unwrap();
    assert!(null2.file_type().is_char_device());
    assert_eq!(null2.rdev(), libc::makedev(1, 3));
    assert_eq!(keep.mtime(), 1000);
    assert_eq!(fs::metadata(root.join("data")).unwrap().mtime(), 1000);
    assert_eq!(
        lgetxattr(&root.join("data/xattr"), "user.hoist").as_deref(),
        Some(&b"yes"[..])
    );
    assert!(root.join("replaced").is_dir(), "file replaced by a dir");
    assert_eq!(fs::read(root.join("data/third")).unwrap(), b"3");
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o755);

    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    let p = &cfg["process"];
    assert_eq!(p["args"], json!(["/bin/tool", "--flag"]));
    assert_eq!(p["terminal"], json!(false));
    assert_eq!(p["cwd"], json!("/data"));
    assert_eq!(
        p["user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]})
    );
    let env = p["env"].as_array().unwrap();
    assert!(env.contains(&json!("FOO=bar")));
    assert!(env.iter().any(|e| e.as_str().unwrap().starts_with("PATH=")));
    let a = &cfg["annotations"];
    assert_eq!(a["com.example.a"], json!("b"));
    assert_eq!(a["org.opencontainers.image.stopSignal"], json!("SIGINT"));
    assert_eq!(
        a["org.opencontainers.image.exposedPorts"],
        json!("53/udp,80/tcp")
    );
    assert_eq!(cfg["root"]["path"], json!("rootfs"));
    assert_eq!(
        a["org.opencontainers.image.volumes"],
        json!("/cache,/var/lib/data")
    );
}

#[test]
fn layers_apply_in_order_with_whiteouts_links_and_metadata() {
    let dir = scratch("layers");
    let layout = dir.join("layout");
    write_layered_image(&layout);
    let bundle = dir.join("bundle");
    let r = unpack(&format!("oci:{}:v1", layout.display()), &bundle, &[]);
    assert!(r.ok, "unpack failed: {}", r.stderr);
    assert_eq!(leftovers(&dir, &["layout", "bundle"]), Vec::<String>::new());
    check_layered_bundle(&bundle);

    // Overrides, and an unknown tag.
    let b2 = dir.join("b2");
    let r = unpack(
        &format!("oci:{}", layout.display()),
        &b2,
        &["--args", "sh", "--args", "-c", "--env", "FOO=baz"],
    );
    assert!(r.ok, "{}", r.stderr);
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(b2.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], json!(["sh", "-c"]));
    assert!(cfg["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&json!("FOO=baz")));
    let r = unpack(
        &format!("oci:{}:v2", layout.display()),
        &dir.join("b3"),
        &[],
    );
    assert!(!r.ok && r.stderr.contains("v2"), "{}", r.stderr);
    // A bundle that exists is not overwritten.
    let r = unpack(&format!("oci:{}", layout.display()), &bundle, &[]);
    assert!(!r.ok && r.stderr.contains("not empty"), "{}", r.stderr);
    let _ = fs::remove_dir_all(&dir);
}

/// Unpacks a one-image layout of `layers`; returns the scratch dir, the
/// bundle path and the result.
fn unpack_layers(name: &str, layers: Vec<Vec<u8>>) -> (Scratch, PathBuf, Run) {
    let dir = scratch(name);
    let layout = dir.join("layout");
    let layers: Vec<_> = layers.into_iter().map(|l| (l, Comp::Gzip)).collect();
    write_layout(&layout, &layers, json!({"config": {"Cmd": ["sh"]}}));
    let bundle = dir.join("bundle");
    let r = unpack(&format!("oci:{}", layout.display()), &bundle, &[]);
    (dir, bundle, r)
}

#[track_caller]
fn assert_failed_cleanly(dir: &Path, r: &Run, what: &str) {
    assert!(!r.ok, "{what}: unpack succeeded: {}", r.stdout);
    assert!(
        r.stderr.trim().lines().count() == 1 && r.stderr.contains(what),
        "{what}: want one line naming it, got: {}",
        r.stderr
    );
    assert_eq!(
        leftovers(dir, &["layout"]),
        Vec::<String>::new(),
        "{what}: left behind"
    );
}

#[test]
fn dotdot_entry_is_rejected() {
    let (dir, _, r) = unpack_layers(
        "dotdot",
        vec![layer_tar(&[
            file("ok", b"1", 0o644),
            file("../../escape", b"x", 0o644),
        ])],
    );
    assert_failed_cleanly(&dir, &r, "../../escape");
    assert!(!dir.parent().unwrap().join("escape").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn whiteout_of_dot_or_dotdot_is_rejected() {
    for (i, name) in ["sub/.wh..", "sub/.wh...", ".wh..."]
        .into_iter()
        .enumerate()
    {
        let (dir, _, r) = unpack_layers(
            &format!("whdot{i}"),
            vec![
                layer_tar(&[file("sub/f", b"1", 0o644)]),
                layer_tar(&[file(name, b"", 0o644)]),
            ],
        );
        assert_failed_cleanly(&dir, &r, name);
        assert!(
            dir.join("layout/index.json").exists(),
            "{name} removed files outside"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn absolute_entry_is_rejected() {
    let target = format!("/tmp/hoist-abs-{}", std::process::id());
    let (dir, _, r) = unpack_layers("absolute", vec![layer_tar(&[file(&target, b"x", 0o644)])]);
    assert_failed_cleanly(&dir, &r, &target);
    assert!(!Path::new(&target).exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn symlinked_parent_stays_inside_the_rootfs() {
    let outside = format!("/tmp/hoist-evil-{}", std::process::id());
    let _ = fs::remove_dir_all(&outside);
    fs::create_dir_all(&outside).unwrap();
    let (dir, bundle, r) = unpack_layers(
        "symparent",
        vec![
            layer_tar(&[
                sym("evil", &outside),
                sym("up", "../../../../../../.."),
                file("evil/file", b"x", 0o644),
            ]),
            // Through symlinks of an earlier layer too.
            layer_tar(&[
                file("evil/file2", b"x", 0o644),
                file("up/tmp/file3", b"x", 0o644),
            ]),
        ],
    );
    assert!(r.ok, "contained, so allowed: {}", r.stderr);
    assert!(!Path::new(&outside).join("file").exists(), "wrote outside");
    assert!(!Path::new(&outside).join("file2").exists(), "wrote outside");
    assert!(!Path::new("/tmp/file3").exists() || fs::read("/tmp/file3").unwrap() != b"x");
    let root = bundle.join("rootfs");
    let inside = root.join(outside.trim_start_matches('/'));
    assert!(inside.join("file").exists() && inside.join("file2").exists());
    assert!(root.join("tmp/file3").exists());
    let _ = fs::remove_dir_all(&outside);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn symlink_is_replaced_not_followed() {
    let outside = PathBuf::from(format!("/tmp/hoist-target-{}", std::process::id()));
    fs::write(&outside, "orig").unwrap();
    let (dir, bundle, r) = unpack_layers(
        "symreplace",
        vec![
            layer_tar(&[sym("f", outside.to_str().unwrap())]),
            layer_tar(&[file("f", b"pwned", 0o644), file(".wh.nothing", b"", 0o644)]),
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(fs::read(&outside).unwrap(), b"orig");
    assert_eq!(fs::read(bundle.join("rootfs/f")).unwrap(), b"pwned");
    let _ = fs::remove_file(&outside);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn hardlinks_out_of_the_rootfs_fail() {
    let before = fs::metadata("/etc/passwd").unwrap().nlink();
    for (i, (entries, what)) in [
        (vec![hard("pw", "/etc/passwd")], "/etc/passwd"),
        (
            vec![hard("pw", "../../../../etc/passwd")],
            "../../../../etc/passwd",
        ),
        (
            vec![sym("etcl", "/etc"), hard("pw", "etcl/passwd")],
            "etcl/passwd",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (dir, _, r) = unpack_layers(&format!("hardlink{i}"), vec![layer_tar(&entries)]);
        assert_failed_cleanly(&dir, &r, what);
        let _ = fs::remove_dir_all(&dir);
    }
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), before);
}

#[test]
fn corrupt_and_truncated_blobs_fail_cleanly() {
    let dir = scratch("corrupt");
    let layout = dir.join("layout");
    let tar = layer_tar(&[file("a", &[7u8; 100_000], 0o644)]);
    let digests = write_layout(
        &layout,
        &[(tar, Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let blob = layout.join("blobs/sha256").join(&digests[0][7..]);
    let good = fs::read(&blob).unwrap();

    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 9] ^= 0xff; // in the gzip trailer: the tar reads fine, the digest does not
    fs::write(&blob, &bad).unwrap();
    let r = unpack(
        &format!("oci:{}", layout.display()),
        &dir.join("bundle"),
        &[],
    );
    assert_failed_cleanly(&dir, &r, &digests[0]);

    fs::write(&blob, &good[..good.len() / 2]).unwrap();
    let r = unpack(
        &format!("oci:{}", layout.display()),
        &dir.join("bundle"),
        &[],
    );
    assert_failed_cleanly(&dir, &r, &digests[0]);

    // Same size, still a valid tar: only the digest can tell.
    let _ = fs::remove_dir_all(&layout);
    let tar = layer_tar(&[file("a", b"hello", 0o644)]);
    let digests = write_layout(
        &layout,
        &[(tar, Comp::None)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let blob = layout.join("blobs/sha256").join(&digests[0][7..]);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[512] = b'j'; // "hello" -> "jello"
    fs::write(&blob, &bytes).unwrap();
    let r = unpack(
        &format!("oci:{}", layout.display()),
        &dir.join("bundle"),
        &[],
    );
    assert_failed_cleanly(&dir, &r, &digests[0]);
    assert!(r.stderr.contains("digest mismatch"), "{}", r.stderr);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn busybox_archive_unpacks_and_runs_with_brig() {
    let dir = scratch("e2e");
    let image = dir.join("busybox.tar");
    let st = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/mkimage"))
        .arg(&image)
        .status()
        .expect("run hack/mkimage");
    assert!(st.success(), "hack/mkimage failed");

    // The image's own config first.
    let plain = dir.join("plain");
    let r = unpack(&format!("oci-archive:{}", image.display()), &plain, &[]);
    assert!(r.ok, "{}", r.stderr);
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(plain.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], json!(["sh"]));
    assert!(plain.join("rootfs/bin/busybox").exists());

    let bundle = dir.join("bundle");
    let r = unpack(
        &format!("oci-archive:{}:latest", image.display()),
        &bundle,
        &[
            "--args",
            "sh",
            "--args",
            "-c",
            "--args",
            "echo hello from $(id -u) in $PWD",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        leftovers(&dir, &["busybox.tar", "plain", "bundle"]),
        Vec::<String>::new()
    );
    let id = format!("hoist-e2e-{}", std::process::id());
    assert_eq!(
        brig_run(&dir.join("state"), &bundle, &id),
        "hello from 0 in /\n"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rootfs_mode_is_0755() {
    let (dir, bundle, r) = unpack_layers("mode", vec![layer_tar(&[file("a", b"", 0o644)])]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        fs::metadata(bundle.join("rootfs"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn overlay_bundles_share_layers_unpacked_once() {
    let dir = scratch("overlay");
    let layout = dir.join("layout");
    write_layered_image(&layout);
    let store = dir.join("store");
    let source = format!("oci:{}:v1", layout.display());
    let store_arg = format!("--store={}", store.display());

    let b1 = dir.join("b1");
    let _u1 = Unmount(b1.clone());
    let r = unpack(&source, &b1, &["--overlay", &store_arg]);
    assert!(r.ok, "unpack --overlay: {}", r.stderr);
    assert!(is_mounted(&b1.join("rootfs")), "rootfs is not a mount");
    check_layered_bundle(&b1);
    let layers: Vec<_> = fs::read_dir(store.join("layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layers.len(), 3, "one directory per layer: {layers:?}");
    // The layer directories hold overlay whiteouts, not OCI ones.
    let l2_whiteouts: Vec<_> = layers
        .iter()
        .filter_map(|l| fs::symlink_metadata(l.join("data/gone")).ok())
        .collect();
    assert!(
        l2_whiteouts
            .iter()
            .any(|m| m.file_type().is_char_device() && m.rdev() == 0),
        "no overlay whiteout for data/gone"
    );

    // A second bundle mounts the same layers; writes stay in each bundle.
    let b2 = dir.join("b2");
    let _u2 = Unmount(b2.clone());
    let r = unpack(&source, &b2, &["--overlay", &store_arg]);
    assert!(r.ok, "second unpack --overlay: {}", r.stderr);
    check_layered_bundle(&b2);
    fs::write(b1.join("rootfs/data/keep"), b"changed").unwrap();
    assert_eq!(fs::read(b2.join("rootfs/data/keep")).unwrap(), b"kept");
    assert_eq!(
        fs::read_dir(store.join("layers/sha256")).unwrap().count(),
        3
    );

    // gc keeps layers a mounted bundle reads, even of no stored image.
    let layer_count = || fs::read_dir(store.join("layers/sha256")).unwrap().count();
    let r = hoist_in(&store, &["pull", "--name", "a/b:1", &source]);
    assert!(r.ok, "{}", r.stderr);
    let r = hoist_in(&store, &["rmi", "a/b:1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(layer_count(), 3, "gc removed layers under a mount");

    let st = hoist().arg("unmount").arg(&b1).status().unwrap();
    assert!(st.success());
    assert!(!is_mounted(&b1.join("rootfs")));
    assert!(!b1.join(".hoist").exists(), "unmount left BUNDLE/.hoist");
    // Again: it says the rootfs is not mounted, not EINVAL.
    let r = Run::of(hoist().arg("unmount").arg(&b1));
    assert!(!r.ok, "a second unmount succeeded");
    assert!(
        r.stderr.contains("rootfs: not mounted") && !r.stderr.contains("EINVAL"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    let st = hoist().arg("unmount").arg(&b2).status().unwrap();
    assert!(st.success());
    // Unmounted, they stay while a stored image has them, and go with it.
    for n in ["a/b:1", "c/d:1"] {
        let r = hoist_in(&store, &["pull", "--name", n, &source]);
        assert!(r.ok, "{}", r.stderr);
    }
    let r = hoist_in(&store, &["rmi", "c/d:1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(layer_count(), 3, "gc removed layers of a/b:1");
    let r = hoist_in(&store, &["rmi", "a/b:1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(layer_count(), 0, "gc kept unused layers");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn overlay_layer_with_a_wrong_diff_id_leaves_nothing() {
    let dir = scratch("overlay-diffid");
    let layout = dir.join("layout");
    let tar = layer_tar(&[file("a", b"hello", 0o644)]);
    write_layout(
        &layout,
        &[(tar, Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    // Point the config's diff_id elsewhere and re-digest the config.
    corrupt_diff_id(&layout);
    let store = dir.join("store");
    let b = dir.join("bundle");
    let _u = Unmount(b.clone());
    let r = unpack(
        &format!("oci:{}", layout.display()),
        &b,
        &["--overlay", &format!("--store={}", store.display())],
    );
    assert!(!r.ok && r.stderr.contains("diff_id"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(leftovers(&dir, &["layout", "store"]), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(store.join("layers/sha256")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    // The plain unpack checks it too.
    let r = unpack(&format!("oci:{}", layout.display()), &b, &[]);
    assert!(!r.ok && r.stderr.contains("diff_id"), "{}", r.stderr);
    assert_eq!(leftovers(&dir, &["layout", "store"]), Vec::<String>::new());
    let _ = fs::remove_dir_all(&dir);
}

/// Rewrites the only image of `layout` so its config's first diff_id is
/// wrong (the blobs' digests stay right: only the diff_id check can tell).
fn corrupt_diff_id(layout: &Path) {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(&d[7..]);
    let md = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut m: Value = serde_json::from_slice(&fs::read(blob(&md)).unwrap()).unwrap();
    let cd = m["config"]["digest"].as_str().unwrap().to_string();
    let mut c: Value = serde_json::from_slice(&fs::read(blob(&cd)).unwrap()).unwrap();
    c["rootfs"]["diff_ids"][0] = json!(format!("sha256:{}", "1".repeat(64)));
    let cb = c.to_string().into_bytes();
    fs::write(blob(&sha256(&cb)), &cb).unwrap();
    m["config"]["digest"] = json!(sha256(&cb));
    m["config"]["size"] = json!(cb.len());
    let mb = m.to_string().into_bytes();
    fs::write(blob(&sha256(&mb)), &mb).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = json!(sha256(&mb));
    index["manifests"][0]["size"] = json!(mb.len());
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// A `docker save` archive: manifest.json, the config and one layer.tar
/// per layer, as Docker writes them.
fn write_docker_archive(file: &Path, layers: &[Vec<u8>], config: Value, tags: &[&str]) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("append");
    };
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("layer{i}/layer.tar");
        add(&n, l);
        names.push(n);
        diff_ids.push(sha256(l));
    }
    let mut config = config;
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    config["os"] = json!("linux");
    config["architecture"] = json!("amd64");
    let cb = config.to_string().into_bytes();
    let cname = format!("{}.json", &sha256(&cb)[7..]);
    add(&cname, &cb);
    let manifest = json!([{"Config": cname, "RepoTags": tags, "Layers": names}]);
    add("manifest.json", manifest.to_string().as_bytes());
    fs::write(file, b.into_inner().expect("tar")).expect("write archive");
}

#[test]
fn docker_archive_unpacks_by_name_or_alone() {
    let dir = scratch("docker-archive");
    let ar = dir.join("saved.tar");
    write_docker_archive(
        &ar,
        &[
            layer_tar(&[file("a", b"1", 0o644), file("b", b"2", 0o644)]),
            layer_tar(&[file(".wh.b", b"", 0o644)]),
        ],
        json!({"config": {"Cmd": ["/a"]}}),
        &["example.com/app:1"],
    );
    for (i, src) in [
        format!("docker-archive:{}", ar.display()),
        format!("docker-archive:{}:example.com/app:1", ar.display()),
    ]
    .iter()
    .enumerate()
    {
        let b = dir.join(format!("b{i}"));
        let r = unpack(src, &b, &[]);
        assert!(r.ok, "{src}: {}", r.stderr);
        assert_eq!(fs::read(b.join("rootfs/a")).unwrap(), b"1");
        assert!(!b.join("rootfs/b").exists());
        let cfg: Value = serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["process"]["args"], json!(["/a"]));
    }
    let r = unpack(
        &format!("docker-archive:{}:other:1", ar.display()),
        &dir.join("b3"),
        &[],
    );
    assert!(
        !r.ok && r.stderr.contains("no image tagged"),
        "{}",
        r.stderr
    );
    assert_eq!(
        leftovers(&dir, &["saved.tar", "b0", "b1"]),
        Vec::<String>::new()
    );
    let _ = fs::remove_dir_all(&dir);
}

fn blob_count(store: &Path) -> usize {
    fs::read_dir(store.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn store_pull_images_inspect_unpack_rmi() {
    let dir = scratch("store");
    let store = dir.join("store");
    let layout = dir.join("layout");
    write_layered_image(&layout);
    let s = store.to_str().unwrap();
    let _ = s;

    // A layout whose tag is not a full name needs --name.
    let src = format!("oci:{}:v1", layout.display());
    let r = hoist_in(&store, &["pull", &src]);
    assert!(!r.ok && r.stderr.contains("--name"), "{}", r.stderr);
    assert_eq!(blob_count(&store), 0);
    let r = hoist_in(&store, &["pull", "--name", "example.com/layered:v1", &src]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "example.com/layered:v1");
    assert_eq!(blob_count(&store), 5, "3 layers, config, manifest");
    // Pulling again brings nothing new; a second name shares the blobs.
    let r = hoist_in(&store, &["pull", "--name", "example.com/layered:v2", &src]);
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stderr.contains("already present"), "{}", r.stderr);
    assert_eq!(blob_count(&store), 5);

    let r = hoist_in(&store, &["images", "-q"]);
    assert_eq!(r.stdout, "example.com/layered:v1\nexample.com/layered:v2\n");
    let r = hoist_in(&store, &["images", "--format", "json"]);
    let rows: Value = serde_json::from_str(&r.stdout).expect("images json");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    let r = hoist_in(&store, &["images"]);
    assert!(r.stdout.starts_with("NAME"), "{}", r.stdout);

    let r = hoist_in(&store, &["inspect", "example.com/layered:v1"]);
    assert!(r.ok, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("inspect json");
    assert_eq!(v["config"]["config"]["User"], json!("app"));
    assert_eq!(v["manifest"]["layers"].as_array().map(Vec::len), Some(3));

    // A stored image unpacks by name, with the plain reference source.
    let b = dir.join("bundle");
    let r = hoist_in(
        &store,
        &["unpack", "example.com/layered:v1", b.to_str().unwrap()],
    );
    assert!(r.ok, "{}", r.stderr);
    check_layered_bundle(&b);

    let r = hoist_in(&store, &["rmi", "example.com/layered:v1"]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(blob_count(&store), 5, "v2 still uses every blob");
    let r = hoist_in(
        &store,
        &["rmi", "example.com/layered:v2", "example.com/nope:1"],
    );
    assert!(
        !r.ok && r.stderr.contains("example.com/nope:1"),
        "{}",
        r.stderr
    );
    assert_eq!(blob_count(&store), 0, "gc left blobs");
    assert_eq!(hoist_in(&store, &["images", "-q"]).stdout, "");
    let r = hoist_in(&store, &["inspect", "example.com/layered:v1"]);
    assert!(
        !r.ok && r.stderr.contains("not in the store"),
        "{}",
        r.stderr
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn failed_import_leaves_no_blob_and_no_name() {
    let dir = scratch("store-fail");
    let store = dir.join("store");
    let layout = dir.join("layout");
    let tar = layer_tar(&[file("a", &[7u8; 10_000], 0o644)]);
    let digests = write_layout(
        &layout,
        &[(tar, Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let blob = layout.join("blobs/sha256").join(&digests[0][7..]);
    let mut bytes = fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    fs::write(&blob, &bytes).unwrap();
    let r = hoist_in(
        &store,
        &[
            "pull",
            "--name",
            "x/y:1",
            &format!("oci:{}", layout.display()),
        ],
    );
    assert!(!r.ok, "pull of a corrupt layer succeeded");
    assert!(r.stderr.contains(&digests[0]), "{}", r.stderr);
    assert!(r.stderr.contains("x/y:1"), "{}", r.stderr);
    assert_eq!(blob_count(&store), 0, "the config stayed");
    assert_eq!(hoist_in(&store, &["images", "-q"]).stdout, "");
    assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn unknown_layer_media_type_is_named() {
    let dir = scratch("mediatype");
    let layout = dir.join("layout");
    let tar = layer_tar(&[file("a", b"1", 0o644)]);
    write_layout(
        &layout,
        &[(tar, Comp::None)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    // Rewrite the manifest's layer media type.
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mpath = layout.join("blobs/sha256").join(&md[7..]);
    let mut m: Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
    m["layers"][0]["mediaType"] = json!("application/x-unknown");
    let mb = m.to_string().into_bytes();
    fs::write(layout.join("blobs/sha256").join(&sha256(&mb)[7..]), &mb).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = json!(sha256(&mb));
    index["manifests"][0]["size"] = json!(mb.len());
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let r = unpack(&format!("oci:{}", layout.display()), &dir.join("b"), &[]);
    assert_failed_cleanly(&dir, &r, "application/x-unknown");
    let _ = fs::remove_dir_all(&dir);
}

/// Runs the shell command `cmd`, which must succeed, with a pty for its
/// stdio (script(1)); returns what it wrote.
fn on_a_pty(cmd: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .env("SHELL", "/bin/bash")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn pull_draws_bars_on_a_terminal_and_lines_otherwise() {
    let dir = scratch("progress");
    let layout = dir.join("layout");
    let tar = layer_tar(&[file("a", &[1u8; 50_000], 0o644)]);
    write_layout(
        &layout,
        &[(tar, Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let store = dir.join("store");
    let cmd = format!(
        "exec {} --store {} pull --name x/bars:1 oci:{}",
        env!("CARGO_BIN_EXE_hoist"),
        store.display(),
        layout.display()
    );
    let text = on_a_pty(&cmd);
    assert!(
        text.contains("\x1b[2K") && text.contains("[====="),
        "no bars: {text:?}"
    );
    let r = hoist_in(&store, &["rmi", "x/bars:1"]);
    assert!(r.ok, "{}", r.stderr);
    let r = hoist_in(
        &store,
        &[
            "pull",
            "--name",
            "x/bars:1",
            &format!("oci:{}", layout.display()),
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(
        !r.stderr.contains('\x1b'),
        "escape codes on a pipe: {:?}",
        r.stderr
    );
    assert!(
        r.stderr.contains("layer ") && r.stderr.contains(": done"),
        "{}",
        r.stderr
    );
    let _ = fs::remove_dir_all(&dir);
}

/// `hoist unpack FILE` of a file that is there, without a transport,
/// names the transports instead of asking a registry for it.
#[test]
fn a_local_file_without_a_transport_is_named_not_pulled() {
    let dir = scratch("notransport");
    let layout = dir.join("layout");
    write_layout(
        &layout,
        &[(layer_tar(&[file("a", b"a", 0o644)]), Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let archive = dir.join("image.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg("."));
    let store = dir.join("store");
    for src in [&archive, &layout] {
        let r = Run::of(
            hoist()
                .current_dir(&dir)
                .arg("--store")
                .arg(&store)
                .args(["unpack", "-q"])
                .arg(src.file_name().unwrap())
                .arg(dir.join("bundle")),
        );
        assert!(!r.ok, "unpack of a bare path succeeded");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
        for want in ["oci:DIR", "oci-archive:FILE", "docker-archive:FILE"] {
            assert!(r.stderr.contains(want), "no {want}: {}", r.stderr);
        }
        assert!(
            !r.stderr.contains("docker.io"),
            "asked a registry: {}",
            r.stderr
        );
        assert!(!dir.join("bundle").exists());
    }
}

/// `hoist unpack oci:...` draws a bar per layer on a terminal.
#[test]
fn unpack_draws_bars_on_a_terminal() {
    let dir = scratch("unpackbars");
    let layout = dir.join("layout");
    write_layout(
        &layout,
        &[(layer_tar(&[file("a", &[1u8; 50_000], 0o644)]), Comp::Gzip)],
        json!({"config": {"Cmd": ["sh"]}}),
    );
    let cmd = format!(
        "exec {} --store {} unpack oci:{} {}",
        env!("CARGO_BIN_EXE_hoist"),
        dir.join("store").display(),
        layout.display(),
        dir.join("bundle").display()
    );
    let text = on_a_pty(&cmd);
    assert!(
        text.contains("\x1b[2K") && text.contains("unpacked"),
        "no bars: {text:?}"
    );
    // On a pipe, nothing but errors.
    let r = hoist_in(
        &dir.join("store"),
        &[
            "unpack",
            &format!("oci:{}", layout.display()),
            dir.join("bundle2").to_str().unwrap(),
        ],
    );
    assert!(r.ok && r.stderr.is_empty(), "{}", r.stderr);
}

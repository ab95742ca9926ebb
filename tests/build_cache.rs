//! Cache export and import (`--cache-to`, `--cache-from`, BuildKit's flags;
//! buildah 1.28 has neither): a second machine, here a second store that
//! starts empty but for its base image, reuses the first one's steps from
//! an OCI layout or from a registry (Debian's docker-registry on a
//! loopback port), runs only what changed, and a missing or broken cache
//! is a warning, not a failed build. Needs root.

mod image_common;

use image_common::build::*;
use image_common::*;
use std::fs;
use std::path::Path;

const DOCKERFILE: &str = "FROM localhost/busybox:latest\n\
    COPY a /a\n\
    RUN cat /proc/sys/kernel/random/uuid > /stamp\n\
    COPY b /b\n\
    RUN cat /proc/sys/kernel/random/uuid > /stamp2\n";

fn build_ok(store: &Path, ctx: &Path, extra: &[&str]) -> Run {
    let r = build(store, ctx, extra);
    assert!(r.ok, "build {extra:?} failed:\n{}{}", r.stdout, r.stderr);
    r
}

fn layers(store: &Path, name: &str) -> serde_json::Value {
    inspect(store, name)["manifest"]["layers"].clone()
}

/// A build that took all `hits` of its steps from the cache, and `second`'s
/// image has `first`'s layers and the same `file` (made by a RUN).
fn reused(dir: &Path, r: &Run, hits: usize, (first, second): (&Path, &Path), file: &str) {
    let cached = r.stdout.matches("--> Using cache").count();
    assert_eq!(cached, hits, "{}", r.stdout);
    assert_eq!(layers(second, "x/app:1"), layers(first, "x/app:1"));
    assert_eq!(
        read_in_image(dir, second, "x/app:1", file),
        read_in_image(dir, first, "x/app:1", file),
        "the RUN ran again"
    );
}

#[test]
fn a_local_cache_moves_to_an_empty_store() {
    let dir = scratch("local");
    let first = store_with_busybox(&dir.join("one"));
    let ctx = context(&dir, DOCKERFILE, &[("a", "a\n"), ("b", "b\n")]);
    let cache = dir.join("cache");
    let to = format!("type=local,dest={}", cache.display());
    build_ok(&first, &ctx, &["-t", "x/app:1", "--cache-to", &to]);
    assert!(cache.join("index.json").is_file() && cache.join("oci-layout").is_file());
    // skopeo or anything that reads OCI layouts can read it: each entry is
    // an image manifest whose blobs are all there.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(cache.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "one entry per RUN/COPY: {index}");
    for e in entries {
        assert!(
            e["annotations"]["io.hoist.build.cache-key"].is_string(),
            "{e}"
        );
        let m = e["digest"].as_str().unwrap();
        assert!(cache.join("blobs/sha256").join(&m[7..]).is_file());
    }

    let second = store_with_busybox(&dir.join("two"));
    let from = format!("type=local,src={}", cache.display());
    let r = build_ok(&second, &ctx, &["-t", "x/app:1", "--cache-from", &from]);
    reused(&dir, &r, 4, (&first, &second), "stamp");
    // A changed file: its COPY and what follows run, what precedes is reused.
    let third = store_with_busybox(&dir.join("three"));
    fs::write(ctx.join("b"), "b2\n").unwrap();
    let r = build_ok(&third, &ctx, &["-t", "x/app:2", "--cache-from", &from]);
    assert_eq!(
        r.stdout.matches("--> Using cache").count(),
        2,
        "{}",
        r.stdout
    );
    assert_eq!(
        read_in_image(&dir, &third, "x/app:2", "stamp"),
        read_in_image(&dir, &first, "x/app:1", "stamp")
    );

    // A cache layout whose blob is corrupt: a warning, and the step runs.
    for blob in fs::read_dir(cache.join("blobs/sha256")).unwrap().flatten() {
        if fs::metadata(blob.path()).unwrap().len() > 100_000 {
            continue; // busybox's own layer
        }
        let mut data = fs::read(blob.path()).unwrap();
        if data.first() == Some(&0x1f) {
            data[20] ^= 0xff; // a gzip layer
            fs::write(blob.path(), data).unwrap();
        }
    }
    let fourth = store_with_busybox(&dir.join("four"));
    let r = build_ok(&fourth, &ctx, &["-t", "x/app:3", "--cache-from", &from]);
    assert!(
        r.stderr.contains("hoist: warning: --cache-from"),
        "{}",
        r.stderr
    );
    no_step_left(&fourth);
}

#[test]
fn a_registry_cache_is_pushed_and_reused() {
    if !need_tools(
        &[("docker-registry", "docker-registry")],
        "the registry cache test",
    ) {
        return;
    }
    let reg = Registry::start("cachereg", |_| String::new());
    let dir = scratch("registry");
    let ctx = context(&dir, DOCKERFILE, &[("a", "a\n"), ("b", "b\n")]);
    let cache_ref = format!("{}/app/cache:main", reg.host());
    let to = format!("type=registry,ref={cache_ref}");
    // A first build: nothing to import yet (a missing tag is no error).
    let first = store_with_busybox(&dir.join("one"));
    let r = build_ok(
        &first,
        &ctx,
        &[
            "-t",
            "x/app:1",
            "--cache-from",
            &cache_ref,
            "--cache-to",
            &to,
        ],
    );
    assert_eq!(r.stdout.matches("--> Using cache").count(), 0);
    let second = store_with_busybox(&dir.join("two"));
    let r = build_ok(&second, &ctx, &["-t", "x/app:1", "--cache-from", &to]);
    reused(&dir, &r, 4, (&first, &second), "stamp2");
}

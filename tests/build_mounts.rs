//! RUN --mount where buildah 1.28 cannot show the result (see
//! tests/build_buildah.rs `run_mounts` for what it can): BuildKit's
//! documented behaviour. A cache mount persists from build to build in the
//! store, in no layer and no cache key, with its sharing, owner, mode and
//! first content; a secret is in no layer, history or key, and a missing
//! required one is one clear line before anything runs; a bind's content
//! is in the key, rw writes are thrown away, .dockerignore holds, and the
//! source stays inside its root; bad mounts are one line and leave
//! nothing. Needs root.

mod image_common;

use image_common::build::*;
use image_common::*;
use sha2::{Digest, Sha256};
use std::fs;

fn ok(r: &Run) {
    assert!(r.ok, "build failed:\n{}{}", r.stdout, r.stderr);
}

fn steps_cached(r: &Run) -> usize {
    r.stdout.matches("--> Using cache").count()
}

#[test]
fn cache_mounts_persist_outside_layers_and_keys() {
    let dir = scratch("cache");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest AS seed\n\
         RUN mkdir /out && echo seeded > /out/x\n\
         FROM localhost/busybox:latest\n\
         ARG N=0\n\
         RUN --mount=type=cache,target=/var/cache/app echo $N >> /var/cache/app/log \
             && wc -l < /var/cache/app/log > /count\n\
         RUN --mount=type=cache,target=/c,id=owned,uid=1000,gid=1001,mode=0700 \
             stat -c '%u %g %a' /c > /owned\n\
         RUN --mount=type=cache,target=/s,id=seeded,from=seed,source=/out cat /s/x > /seeded\n\
         RUN --mount=type=cache,target=/s,id=seeded,ro touch /s/y 2>/dev/null \
             && echo writable > /ro || echo read-only > /ro\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/c:1"]);
    ok(&r);
    assert_eq!(read_in_image(&dir, &store, "x/c:1", "count"), "1\n");
    assert_eq!(
        read_in_image(&dir, &store, "x/c:1", "owned"),
        "1000 1001 700\n"
    );
    assert_eq!(read_in_image(&dir, &store, "x/c:1", "seeded"), "seeded\n");
    assert_eq!(read_in_image(&dir, &store, "x/c:1", "ro"), "read-only\n");
    // The cache's contents are no input of the key: all cached.
    let r = build(&store, &ctx, &["-t", "x/c:2"]);
    ok(&r);
    assert_eq!(steps_cached(&r), 5, "{}", r.stdout);
    // A step that runs again finds what the first run left.
    let r = build(&store, &ctx, &["-t", "x/c:3", "--build-arg", "N=1"]);
    ok(&r);
    assert_eq!(read_in_image(&dir, &store, "x/c:3", "count"), "2\n");
    // In no layer: the image has no /var/cache/app/log, not even the dir.
    let b = unpacked(&dir, &store, "x/c:3");
    assert!(!b.join("var/cache/app").exists() && !b.join("c").exists());
    // sharing=private while another build holds the cache: a fresh one.
    let id_hash = hex::encode(Sha256::digest(b"/var/cache/app"));
    let lock = fs::File::open(store.join(format!("cache-mounts/{id_hash}.lock"))).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockShared).unwrap();
    let private = context(
        &dir.join("p"),
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=cache,target=/var/cache/app,sharing=private \
             wc -l < /var/cache/app/log > /count 2>/dev/null || echo fresh > /count\n",
        &[],
    );
    let r = build(&store, &private, &["-t", "x/p:1"]);
    ok(&r);
    assert_eq!(read_in_image(&dir, &store, "x/p:1", "count"), "fresh\n");
    drop(held);
    let r = build(&store, &private, &["-t", "x/p:2", "--no-cache"]);
    ok(&r);
    assert_eq!(read_in_image(&dir, &store, "x/p:2", "count"), "2\n");
    no_step_left(&store);
}

#[test]
fn secrets_stay_out_and_missing_ones_are_named() {
    let dir = scratch("secret");
    let store = store_with_busybox(&dir);
    let file = dir.join("token");
    fs::write(&file, "first-secret").unwrap();
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=secret,id=tok,required=true,uid=1000,mode=0440,target=/etc/tok \
             stat -c '%u %a %s' /etc/tok > /seen\n\
         RUN --mount=type=secret,id=env wc -c < /run/secrets/env > /from-env\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo none > /absent\n",
        &[],
    );
    let tok = format!("id=tok,src={}", file.display());
    let run_build = |tag: &str, extra: &[&str]| {
        let mut args = vec!["-t", tag, "--secret", &tok];
        args.extend_from_slice(extra);
        let c = ctx.to_string_lossy().into_owned();
        let mut a = vec!["build"];
        a.extend(args);
        a.push(&c);
        Run::of(
            hoist()
                .env("HOIST_TEST_ENV_SECRET", "from-the-env")
                .arg("--store")
                .arg(&store)
                .args(&a),
        )
    };
    let r = run_build("x/s:1", &["--secret", "id=env,env=HOIST_TEST_ENV_SECRET"]);
    ok(&r);
    assert_eq!(
        read_in_image(&dir, &store, "x/s:1", "seen"),
        "1000 440 12\n"
    );
    assert_eq!(
        read_in_image(&dir, &store, "x/s:1", "from-env").trim(),
        "12"
    );
    // The secret's mount point in /etc is not in the step's layer, nor is
    // /etc itself (copied up only to make it).
    let img = inspect(&store, "x/s:1");
    let layer = img["manifest"]["layers"][1]["digest"].as_str().unwrap();
    let listing = run(std::process::Command::new("tar")
        .arg("-tzf")
        .arg(store.join("blobs/sha256").join(&layer[7..])));
    assert_eq!(String::from_utf8_lossy(&listing), "seen\n");
    assert_eq!(read_in_image(&dir, &store, "x/s:1", "absent"), "none\n");
    let inspect_text = hoist_in(&store, &["inspect", "x/s:1"]).stdout;
    assert!(!inspect_text.contains("first-secret") && !inspect_text.contains("from-the-env"));
    for blob in fs::read_dir(store.join("blobs/sha256")).unwrap().flatten() {
        let data = fs::read(blob.path()).unwrap();
        let plain = std::process::Command::new("gzip")
            .arg("-dcf")
            .arg(blob.path())
            .output()
            .map(|o| o.stdout)
            .unwrap_or(data);
        for s in [&b"first-secret"[..], b"from-the-env"] {
            assert!(
                !plain.windows(s.len()).any(|w| w == s),
                "a secret is in blob {}",
                blob.path().display()
            );
        }
    }
    // A changed secret is no input of the key.
    fs::write(&file, "other-secret").unwrap();
    let r = run_build("x/s:2", &["--secret", "id=env,env=HOIST_TEST_ENV_SECRET"]);
    ok(&r);
    assert_eq!(steps_cached(&r), 3, "{}", r.stdout);

    // A required secret not given: one line before any step runs.
    let before = hoist_in(&store, &["images", "-q"]).stdout;
    let r = build(&store, &ctx, &["-t", "x/s:3"]);
    let want = "Dockerfile:2: RUN --mount: secret \"tok\" is required";
    assert_build_failed_leaving(&store, &r, &[want], &before);
    assert!(!r.stdout.contains("STEP 2/"), "a step ran: {}", r.stdout);
    // A --secret whose file is missing fails at once.
    let r = build(&store, &ctx, &["--secret", "id=tok,src=/nonexistent/tok"]);
    assert!(
        !r.ok && r.stderr.contains("/nonexistent/tok"),
        "{}",
        r.stderr
    );
}

#[test]
fn binds_key_on_content_discard_writes_and_stay_inside() {
    let dir = scratch("bind");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\n\
         RUN --mount=type=bind,source=src,target=/src cat /src/a > /a; ls -a /src > /listed\n\
         RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/src/a && rm /ctx/src/b && cat /ctx/src/a > /rw\n\
         RUN --mount=type=bind,from=localhost/busybox:latest,source=/bin,target=/other ls /other | grep -c . > /n\n",
        &[("src/a", "one\n"), ("src/b", "b\n"), ("src/secret.key", "k\n"), (".dockerignore", "src/*.key\n")],
    );
    let r = build(&store, &ctx, &["-t", "x/b:1"]);
    ok(&r);
    assert_eq!(read_in_image(&dir, &store, "x/b:1", "a"), "one\n");
    assert_eq!(
        read_in_image(&dir, &store, "x/b:1", "listed"),
        ".\n..\na\nb\n",
        ".dockerignore'd files are not in a bind of the context"
    );
    assert_eq!(read_in_image(&dir, &store, "x/b:1", "rw"), "scribble\n");
    assert_eq!(
        fs::read_to_string(ctx.join("src/a")).unwrap(),
        "one\n",
        "rw wrote through"
    );
    assert!(ctx.join("src/b").exists(), "rw removed a context file");
    assert!(
        read_in_image(&dir, &store, "x/b:1", "n")
            .trim()
            .parse::<u32>()
            .unwrap()
            > 10
    );
    // Same content: cached. A changed source file: the steps that bind it
    // run again.
    let r = build(&store, &ctx, &["-t", "x/b:2"]);
    ok(&r);
    assert_eq!(steps_cached(&r), 3, "{}", r.stdout);
    fs::write(ctx.join("src/a"), "two\n").unwrap();
    let r = build(&store, &ctx, &["-t", "x/b:3"]);
    ok(&r);
    assert_eq!(steps_cached(&r), 0, "{}", r.stdout);
    assert_eq!(read_in_image(&dir, &store, "x/b:3", "a"), "two\n");

    // A source that climbs out of the context, or a symlink that points out.
    let before = hoist_in(&store, &["images", "-q"]).stdout;
    for (i, src) in ["../outside", "out/hostname"].iter().enumerate() {
        let bad = context(
            &dir.join(format!("bad{i}")),
            &format!("FROM localhost/busybox:latest\nRUN --mount=type=bind,source={src},target=/x cat /x\n"),
            &[],
        );
        if i == 1 {
            std::os::unix::fs::symlink("/etc", bad.join("out")).unwrap();
        }
        let r = build(&store, &bad, &["-t", "x/bad:1"]);
        assert_build_failed_leaving(&store, &r, &["Dockerfile:2: RUN --mount:"], &before);
    }
}

#[test]
fn bad_mounts_are_one_line_and_leave_nothing() {
    let dir = scratch("badmount");
    let store = store_with_busybox(&dir);
    for (i, (flag, want)) in [
        (
            "--mount=type=foo,target=/x",
            "Dockerfile:3: RUN --mount: unknown type \"foo\"",
        ),
        (
            "--mount=type=cache",
            "Dockerfile:3: RUN --mount: type=cache needs a target",
        ),
        (
            "--mount=type=bind,target=/x,from=nosuchstage",
            "Dockerfile:3: RUN --mount: ",
        ),
        (
            "--mount=type=tmpfs,target=/x,sharing=locked",
            "sharing does not apply to type=tmpfs",
        ),
    ]
    .iter()
    .enumerate()
    {
        let ctx = context(
            &dir.join(format!("c{i}")),
            &format!("FROM localhost/busybox:latest\nRUN true\nRUN {flag} true\n"),
            &[],
        );
        let r = build(&store, &ctx, &["-t", "x/bad:1"]);
        assert_build_failed(&store, &r, &[want]);
    }
}

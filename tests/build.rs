//! hoist build: Dockerfiles built from the busybox image of hack/mkimage,
//! run with brig, checked from inside the container; the cache; bad input.
//! Needs root (RUN steps are brig containers on overlay mounts).

mod image_common;

use image_common::build::*;
use image_common::*;
use serde_json::Value;
use std::fs;

use std::process::Command;

#[test]
fn every_instruction_lands_in_the_image() {
    let dir = scratch("all");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        r#"# syntax=docker/dockerfile:1
ARG BASE=localhost/busybox:latest
FROM ${BASE} AS base
ARG GREETING=hello
ENV APP_HOME=/srv/app \
    MODE="two words"
ENV LEGACY value with spaces
LABEL org.example.name="demo" version=1
WORKDIR $APP_HOME
WORKDIR sub
COPY --chmod=0755 run.sh ./
COPY conf/ /etc/app/
COPY --chown=1000:1000 data*.txt /data/
ADD files.tar.gz /unpacked/
RUN echo "$GREETING from $(pwd) as $(id -u)" > /greeting \
 && rm /etc/app/drop.conf \
 && mkdir -p /home/user && chown 1000:1000 /home/user
RUN <<EOF
echo heredoc-ran > /heredoc
echo "greeting=$GREETING" >> /heredoc
EOF
EXPOSE 8080 53/udp
VOLUME /var/data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD test -f /greeting
ONBUILD RUN echo child
USER 1000:1000
SHELL ["/bin/sh", "-c"]
ENTRYPOINT ["/srv/app/sub/run.sh"]
CMD ["default-arg"]
"#,
        &[
            ("run.sh", "#!/bin/sh\necho \"run.sh $* in $PWD as $(id -u):$(id -g) MODE=$MODE\"\ncat /greeting /heredoc\n"),
            ("conf/a.conf", "a=1\n"),
            ("conf/drop.conf", "gone\n"),
            ("data1.txt", "one\n"),
            ("data2.txt", "two\n"),
            ("notdata.log", "no\n"),
        ],
    );
    // A local tar for ADD to extract.
    let tgz = ctx.join("files.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&ctx)
        .args(["conf/a.conf"]));
    let r = build(
        &store,
        &ctx,
        &["-t", "example.com/all:1", "--build-arg", "GREETING=hi"],
    );
    assert!(r.ok, "build: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("STEP 1/"), "no step lines: {}", r.stdout);
    no_step_left(&store);

    let out = run_image(&dir, &store, "example.com/all:1", &[]);
    assert_eq!(
        out,
        "run.sh default-arg in /srv/app/sub as 1000:1000 MODE=two words\n\
         hi from /srv/app/sub as 0\n\
         heredoc-ran\ngreeting=hi\n"
    );

    // What the container sees of COPY, ADD and RUN.
    let check = run_image(
        &dir,
        &store,
        "example.com/all:1",
        &[
            "sh",
            "-c",
            "stat -c '%n %a %u:%g' /srv/app/sub/run.sh /data/data1.txt /data/data2.txt /home/user; \
             ls /etc/app; ls /data; ls /unpacked/conf; echo LEGACY=$LEGACY",
        ],
    );
    assert_eq!(
        check,
        "/srv/app/sub/run.sh 755 0:0\n/data/data1.txt 644 1000:1000\n\
         /data/data2.txt 644 1000:1000\n/home/user 755 1000:1000\n\
         a.conf\ndata1.txt\ndata2.txt\na.conf\nLEGACY=value with spaces\n"
    );

    let v = inspect(&store, "example.com/all:1");
    let c = &v["config"]["config"];
    assert_eq!(c["WorkingDir"], "/srv/app/sub");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/srv/app/sub/run.sh"]));
    assert_eq!(c["Cmd"], serde_json::json!(["default-arg"]));
    assert_eq!(c["Labels"]["org.example.name"], "demo");
    assert_eq!(c["Labels"]["version"], "1");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object(), "{c}");
    assert!(c["ExposedPorts"]["53/udp"].is_object(), "{c}");
    assert!(c["Volumes"]["/var/data"].is_object(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /greeting"])
    );
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"APP_HOME=/srv/app"), "{env:?}");
    assert!(env.contains(&"MODE=two words"), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("GREETING")),
        "an ARG leaked into Env"
    );
    // History: one entry per instruction of the stage, layers marked.
    let history = v["config"]["history"].as_array().unwrap();
    let layers = v["manifest"]["layers"].as_array().unwrap().len();
    let non_empty = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(non_empty, layers, "history vs layers: {history:?}");
    assert_eq!(
        v["config"]["rootfs"]["diff_ids"].as_array().unwrap().len(),
        layers
    );
    // busybox's own layer, 2 WORKDIR (BuildKit makes the directory), 4
    // COPY/ADD, 2 RUN.
    assert_eq!(layers, 1 + 2 + 4 + 2, "{history:?}");

    // ONBUILD fires in a child.
    let ctx2 = context(
        &dir.join("child"),
        "FROM example.com/all:1\nUSER 0\nENTRYPOINT []\nCMD [\"cat\", \"/child\"]\n",
        &[],
    );
    let r = build(&store, &ctx2, &["-t", "example.com/child:1"]);
    assert!(r.ok, "child build: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("\nchild\n"),
        "the ONBUILD RUN did not run: {}",
        r.stdout
    );
    let v = inspect(&store, "example.com/child:1");
    assert!(
        v["config"]["config"]["OnBuild"].is_null(),
        "triggers are consumed"
    );
}

#[test]
fn multi_stage_copy_from_and_target() {
    let dir = scratch("stages");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest AS builder\n\
         RUN mkdir /out && echo built > /out/artifact && echo junk > /junk\n\
         FROM localhost/busybox:latest AS unused\n\
         RUN echo unused > /unused\n\
         FROM scratch AS final\n\
         COPY --from=builder /bin/busybox /bin/busybox\n\
         COPY --from=builder /out/ /app/\n\
         CMD [\"/bin/busybox\", \"cat\", \"/app/artifact\"]\n\
         FROM final AS extra\n\
         CMD [\"/bin/busybox\", \"echo\", \"extra\"]\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/final:1", "--target", "final"]);
    assert!(r.ok, "build: {}{}", r.stdout, r.stderr);
    assert_eq!(run_image(&dir, &store, "x/final:1", &[]), "built\n");
    let v = inspect(&store, "x/final:1");
    assert_eq!(v["manifest"]["layers"].as_array().unwrap().len(), 2);
    let r = build(&store, &ctx, &["-t", "x/extra:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(run_image(&dir, &store, "x/extra:1", &[]), "extra\n");
    no_step_left(&store);
}

#[test]
fn dockerignore_keeps_files_out_but_exceptions_in() {
    let dir = scratch("ignore");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort\"]\n",
        &[
            (".dockerignore", "# comment\n*.log\nsecret/\n!keep.log\nDockerfile\n"),
            ("a.txt", "a"),
            ("b.log", "b"),
            ("keep.log", "k"),
            ("secret/key", "s"),
            ("sub/c.txt", "c"),
        ],
    );
    let r = build(&store, &ctx, &["-t", "x/ign:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        run_image(&dir, &store, "x/ign:1", &[]),
        "./.dockerignore\n./a.txt\n./keep.log\n./sub/c.txt\n"
    );
    // An ignored file cannot be named as a source either.
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:latest\nCOPY secret/key /k\n",
    )
    .unwrap();
    let r = build(&store, &ctx, &[]);
    assert!(!r.ok && r.stderr.contains("secret/key"), "{}", r.stderr);
}

#[test]
fn second_build_is_all_cache_and_a_changed_file_reruns_from_its_copy() {
    let dir = scratch("cache");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\n\
         COPY a.txt /a.txt\n\
         RUN cat /a.txt > /from-a\n\
         COPY b.txt /b.txt\n\
         RUN cat /b.txt > /from-b\n\
         CMD [\"cat\", \"/from-a\", \"/from-b\"]\n",
        &[("a.txt", "a1\n"), ("b.txt", "b1\n")],
    );
    let r = build(&store, &ctx, &["-t", "x/c:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("Using cache").count(), 0, "{}", r.stdout);
    let first = inspect(&store, "x/c:1")["digest"].clone();

    let r = build(&store, &ctx, &["-t", "x/c:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("Using cache").count(), 4, "{}", r.stdout);
    assert_eq!(
        inspect(&store, "x/c:1")["manifest"]["layers"],
        inspect(&store, "x/c:1")["manifest"]["layers"]
    );

    // b.txt changes: its COPY and the RUN after it run again, not the rest.
    fs::write(ctx.join("b.txt"), "b2\n").unwrap();
    let r = build(&store, &ctx, &["-t", "x/c:2"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("Using cache").count(), 2, "{}", r.stdout);
    assert_eq!(run_image(&dir, &store, "x/c:2", &[]), "a1\nb2\n");
    assert_ne!(inspect(&store, "x/c:2")["digest"], first);

    // --no-cache runs everything.
    let r = build(&store, &ctx, &["-t", "x/c:3", "--no-cache"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("Using cache").count(), 0, "{}", r.stdout);
    no_step_left(&store);
}

#[test]
fn same_inputs_give_the_same_layers() {
    let dir = scratch("determinism");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nCOPY . /src/\nRUN echo fixed > /f && touch -d @5 /f\n",
        &[("x", "1"), ("y/z", "2")],
    );
    let layers = |extra: &str| {
        let r = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("--store")
            .arg(&store)
            .args(["build", "--no-cache", "-q", "-t", extra])
            .arg(&ctx)
            .env("SOURCE_DATE_EPOCH", "1000")
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        inspect(&store, extra)["manifest"]["layers"].clone()
    };
    assert_eq!(layers("x/d:1"), layers("x/d:2"));
}

#[test]
fn outputs_oci_layout_and_bundle() {
    let dir = scratch("outputs");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nRUN echo out > /out\nCMD [\"cat\", \"/out\"]\n",
        &[],
    );
    let oci = dir.join("oci");
    let bundle = dir.join("bundle");
    let r = build(
        &store,
        &ctx,
        &[
            "-t",
            "x/out:1",
            "--output",
            &format!("type=oci,dest={}", oci.display()),
            "--output",
            &format!("type=bundle,dest={}", bundle.display()),
        ],
    );
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        brig_run(
            &dir.join("state"),
            &bundle,
            &format!("out-{}", std::process::id())
        ),
        "out\n"
    );
    // The layout unpacks with hoist too.
    let b2 = dir.join("b2");
    let r = hoist_in(
        &store,
        &[
            "unpack",
            &format!("oci:{}:1", oci.display()),
            b2.to_str().unwrap(),
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(fs::read_to_string(b2.join("rootfs/out")).unwrap(), "out\n");
}

/// A failed build: one line naming the place, a non-zero exit, no tag, no
/// temporary directory, mount or container left.
#[track_caller]
#[test]
fn bad_dockerfiles_and_failing_steps_stop_cleanly() {
    let dir = scratch("bad");
    let store = store_with_busybox(&dir);
    let cases: &[(&str, &[&str])] = &[
        (
            "FROM localhost/busybox:latest\nCOPPY a b\n",
            &["Dockerfile:2", "COPPY"],
        ),
        ("RUN true\n", &["Dockerfile:1"]),
        (
            "FROM localhost/busybox:latest\nCOPY missing.txt /x\n",
            &["Dockerfile:2", "COPY", "missing.txt"],
        ),
        (
            "FROM localhost/busybox:latest\nCOPY ../outside /x\n",
            &["Dockerfile:2", "outside"],
        ),
        (
            "FROM localhost/busybox:latest\nRUN echo some output && echo more output && exit 3\n",
            &["Dockerfile:2", "RUN", "exited with code 3", "more output"],
        ),
        ("FROM localhost/nosuch:1\n", &["Dockerfile:1", "nosuch"]),
    ];
    for (i, (text, wants)) in cases.iter().enumerate() {
        let ctx = context(&dir.join(format!("c{i}")), text, &[]);
        let r = build(&store, &ctx, &["-t", "x/bad:1"]);
        assert_build_failed(&store, &r, wants);
    }
}

#[test]
fn context_symlink_cannot_read_outside() {
    let dir = scratch("symlink");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nCOPY link /copied\nCMD [\"cat\", \"/copied\"]\n",
        &[],
    );
    std::os::unix::fs::symlink("/etc/hostname", ctx.join("link")).unwrap();
    let r = build(&store, &ctx, &["-t", "x/link:1"]);
    // Resolved inside the context, /etc/hostname does not exist there.
    assert!(!r.ok, "COPY read a file outside the context: {}", r.stdout);
    assert!(r.stderr.contains("link"), "{}", r.stderr);
    no_step_left(&store);
}

#[test]
fn run_network_and_copy_from_an_image() {
    let dir = scratch("network");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM scratch\n\
         COPY --from=localhost/busybox:latest /bin/busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox ls /sys/class/net > /nets\"]\n\
         CMD [\"/bin/busybox\", \"cat\", \"/nets\"]\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/none:1", "--network", "none"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(run_image(&dir, &store, "x/none:1", &[]), "lo\n");
    let r = build(
        &store,
        &ctx,
        &["-t", "x/host:1", "--network", "host", "--no-cache"],
    );
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    let host = run_image(&dir, &store, "x/host:1", &[]);
    let mut want: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    assert_eq!(host.lines().collect::<Vec<_>>(), want, "host network");
    let r = build(&store, &ctx, &["--network", "bridge"]);
    assert!(!r.ok && r.stderr.contains("bridge"), "{}", r.stderr);
}

#[test]
fn heredocs_in_run_and_copy() {
    let dir = scratch("heredoc");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\n\
         ARG WHO=world\n\
         COPY <<EOF /etc/greeting\n\
         hello $WHO\n\
         EOF\n\
         COPY <<'EOF' /etc/literal\n\
         kept $WHO\n\
         EOF\n\
         RUN cat <<EOF > /from-shell\n\
         shell says $WHO\n\
         EOF\n\
         CMD [\"cat\", \"/etc/greeting\", \"/etc/literal\", \"/from-shell\"]\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/hd:1", "--build-arg", "WHO=you"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        run_image(&dir, &store, "x/hd:1", &[]),
        "hello you\nkept $WHO\nshell says you\n"
    );
}

/// CVE-2019-5736: RUN steps enter containers, so `hoist build` must run from
/// a handle on its binary that cannot be opened for writing, even after it
/// exits (which is when a container process holding /proc/PID/exe would try).
/// Runs a copy of hoist, so that a failure harms nothing.
#[test]
fn build_runs_from_a_write_protected_binary() {
    use std::os::fd::AsRawFd;
    let dir = scratch("sealed");
    let store = store_with_busybox(&dir);
    let ctx = context(&dir, "FROM localhost/busybox:latest\nRUN sleep 1\n", &[]);
    let copy = dir.join("hoist-copy");
    // cp, not fs::copy: a write fd of ours on the copy would reach the
    // children other test threads fork meanwhile, and exec would fail
    // with ETXTBSY until they exec too.
    run(Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_hoist"))
        .arg(&copy));
    let mut child = Command::new(&copy)
        .arg("--store")
        .arg(&store)
        .arg("build")
        .arg(&ctx)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn hoist build");
    let exe = format!("/proc/{}/exe", child.id());
    // Until it has executed itself afresh, the link names the copy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let handle = loop {
        let target = fs::read_link(&exe)
            .unwrap_or_else(|e| panic!("hoist ended while still running from {copy:?}: {e}"));
        if target != copy {
            break fs::File::open(&exe).expect("open the build's exe");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hoist never left {copy:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(child.wait().expect("wait hoist").success(), "build failed");
    let again = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let write = fs::OpenOptions::new().append(true).open(&again);
    assert!(
        write.is_err(),
        "the exited build's binary opened for writing through /proc/PID/exe"
    );
}

/// A relative `--store` and context: the store's paths reach overlay
/// options and the RUN container's config.json, which must not depend on
/// the cwd.
#[test]
fn relative_store_and_context_paths() {
    let dir = scratch("relative");
    store_with_busybox(&dir);
    context(
        &dir,
        "FROM localhost/busybox:latest\nRUN echo hi >/hi\n",
        &[],
    );
    let r = Run::of(hoist().current_dir(&*dir).args([
        "--store",
        "store",
        "build",
        "-q",
        "-t",
        "localhost/rel:1",
        "ctx",
    ]));
    assert!(r.ok, "build with relative paths: {}", r.stderr);
    assert_eq!(
        run_image(&dir, &dir.join("store"), "localhost/rel:1", &["cat", "/hi"]),
        "hi\n"
    );
}

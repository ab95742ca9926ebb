//! hoist build where it follows one reference that buildah 1.28 does not
//! (BuildKit's documented results, since Docker's BuildKit cannot run
//! here), and hoist's own conduct: WORKDIR makes its directory, EXPOSE
//! takes only ports, RUN containers share one cgroup parent, ONBUILD
//! triggers show. Needs root.

mod image_common;

use image_common::build::*;
use image_common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// BuildKit creates each WORKDIR (llb.Mkdir with parents, 0755, owned by
/// the USER of the time) in a layer of its own; buildah 1.28 makes only
/// the one a later step uses. A WORKDIR that exists adds no layer.
#[test]
fn workdir_is_made_in_the_image_owned_by_the_user() {
    let dir = scratch("workdir");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nUSER 1000:1000\nWORKDIR /w/sub\nUSER root\n\
         WORKDIR /etc\nWORKDIR /\nCMD [\"sh\"]\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/wd:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    let root = unpacked(&dir, &store, "x/wd:1");
    for d in ["w", "w/sub"] {
        let md = fs::metadata(root.join(d)).unwrap_or_else(|e| panic!("/{d}: {e}"));
        assert!(md.is_dir());
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (1000, 1000, 0o755),
            "/{d}"
        );
    }
    let img = inspect(&store, "x/wd:1");
    let layers = img["manifest"]["layers"].as_array().unwrap().len();
    assert_eq!(layers, 2, "busybox's layer and WORKDIR /w/sub's only");
    let history = img["config"]["history"].as_array().unwrap();
    let wd: Vec<_> = history
        .iter()
        .filter(|h| h["created_by"].as_str().unwrap_or("").contains("WORKDIR"))
        .map(|h| (h["created_by"].as_str().unwrap(), h["empty_layer"] == true))
        .collect();
    assert_eq!(
        wd,
        [
            ("/bin/sh -c #(nop) WORKDIR /w/sub", false),
            ("/bin/sh -c #(nop) WORKDIR /etc", true),
            ("/bin/sh -c #(nop) WORKDIR /", true)
        ]
    );
    // Cached the second time, with the same image.
    let again = build(&store, &ctx, &["-t", "x/wd:2"]);
    assert!(
        again.ok && again.stdout.contains("--> Using cache"),
        "{}",
        again.stdout
    );
    assert_eq!(
        inspect(&store, "x/wd:2")["manifest"]["layers"],
        img["manifest"]["layers"]
    );
    no_step_left(&store);
}

/// EXPOSE takes what go-connections' nat.ParsePortSpecs takes (BuildKit):
/// a port or range, with tcp, udp or sctp. buildah 1.28 writes anything
/// into ExposedPorts.
#[test]
fn expose_rejects_what_is_not_a_port() {
    let dir = scratch("expose");
    let store = store_with_busybox(&dir);
    for (i, bad) in ["abc", "80/foo", "70000", "80-", "90-80", "127.0.0.1:80:80"]
        .iter()
        .enumerate()
    {
        let ctx = context(
            &dir.join(format!("c{i}")),
            &format!("FROM localhost/busybox:latest\nEXPOSE 8080 {bad}\n"),
            &[],
        );
        let r = build(&store, &ctx, &["-t", "x/bad:1"]);
        assert_build_failed(&store, &r, &["Dockerfile:2: EXPOSE:", "is not a port"]);
    }
    let ctx = context(
        &dir.join("ok"),
        "FROM localhost/busybox:latest\nARG P=53\nEXPOSE 80-90/UDP ${P}/sctp 0 443\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/ports:1"]);
    assert!(r.ok, "{}", r.stderr);
    let ports = &inspect(&store, "x/ports:1")["config"]["config"]["ExposedPorts"];
    assert_eq!(
        ports,
        &serde_json::json!({"80-90/UDP": {}, "53/sctp": {}, "0/tcp": {}, "443/tcp": {}})
    );
}

/// A RUN container's cgroup is hoist/build-PID-N in every hierarchy (not
/// a new cgroup at each root), and is gone after the step.
#[test]
fn run_containers_live_under_one_hoist_cgroup() {
    let dir = scratch("cgroup");
    let store = store_with_busybox(&dir);
    let ctx = context(
        &dir,
        "FROM localhost/busybox:latest\nRUN cat /proc/self/cgroup > /cg\n",
        &[],
    );
    let r = build(&store, &ctx, &["-t", "x/cg:1"]);
    assert!(r.ok, "{}", r.stderr);
    let cg = fs::read_to_string(unpacked(&dir, &store, "x/cg:1").join("cg")).unwrap();
    let paths: Vec<&str> = cg.lines().filter_map(|l| l.splitn(3, ':').nth(2)).collect();
    assert!(!paths.is_empty(), "{cg}");
    let name = paths[0]
        .strip_prefix("/hoist/")
        .unwrap_or_else(|| panic!("{cg}"));
    assert!(name.starts_with("build-"), "{cg}");
    for p in &paths {
        assert_eq!(*p, paths[0], "one cgroup in every hierarchy: {cg}");
    }
    let left: Vec<_> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join("hoist").join(name))
        .chain([Path::new("/sys/fs/cgroup/hoist").join(name)])
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}

/// ONBUILD triggers say so as they run in the child.
#[test]
fn onbuild_triggers_show_in_the_output() {
    let dir = scratch("onbuild");
    let store = store_with_busybox(&dir);
    let parent = context(
        &dir.join("p"),
        "FROM localhost/busybox:latest\nONBUILD RUN echo trigger-ran > /t\n",
        &[],
    );
    let r = build(&store, &parent, &["-t", "x/parent:1"]);
    assert!(r.ok, "{}", r.stderr);
    let child = context(
        &dir.join("c"),
        "FROM x/parent:1\nCMD [\"cat\", \"/t\"]\n",
        &[],
    );
    let r = build(&store, &child, &["-t", "x/child:1"]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("ONBUILD trigger: RUN echo trigger-ran > /t"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::read_to_string(unpacked(&dir, &store, "x/child:1").join("t")).unwrap(),
        "trigger-ran\n"
    );
}

/// `--build-context NAME=DIR|docker-image://REF` (BuildKit; buildah 1.28
/// has no such flag): COPY --from, RUN --mount from= and FROM read it
/// before any stage or image of that name, and a changed file of a
/// directory context runs the steps that read it again.
#[test]
fn build_contexts_name_directories_and_images() {
    let dir = scratch("contexts");
    let store = store_with_busybox(&dir);
    let extra = dir.join("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join("file"), "extra-1\n").unwrap();
    let ctx = context(
        &dir,
        "FROM base\n\
         COPY --from=extra /file /copied\n\
         RUN --mount=type=bind,from=extra,target=/e cat /e/file > /mounted\n\
         COPY --from=tools /bin/busybox /tools-busybox\n",
        &[],
    );
    let args = |tag: &'static str| {
        vec![
            "-t".to_string(),
            tag.to_string(),
            "--build-context".into(),
            "base=docker-image://localhost/busybox:latest".into(),
            "--build-context".into(),
            format!("extra={}", extra.display()),
            "--build-context".into(),
            format!("tools=oci-archive:{}", busybox().display()),
        ]
    };
    let run_with = |tag: &'static str| {
        let a = args(tag);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        build(&store, &ctx, &a)
    };
    let r = run_with("x/ctx:1");
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        read_in_image(&dir, &store, "x/ctx:1", "copied"),
        "extra-1\n"
    );
    assert_eq!(
        read_in_image(&dir, &store, "x/ctx:1", "mounted"),
        "extra-1\n"
    );
    assert!(unpacked(&dir, &store, "x/ctx:1")
        .join("tools-busybox")
        .is_file());
    let r = run_with("x/ctx:2");
    assert_eq!(
        r.stdout.matches("--> Using cache").count(),
        3,
        "{}",
        r.stdout
    );
    fs::write(extra.join("file"), "extra-2\n").unwrap();
    let r = run_with("x/ctx:3");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout.matches("--> Using cache").count(),
        0,
        "{}",
        r.stdout
    );
    assert_eq!(
        read_in_image(&dir, &store, "x/ctx:3", "mounted"),
        "extra-2\n"
    );

    // FROM a directory, and a context that is not there: one line each.
    let before = hoist_in(&store, &["images", "-q"]).stdout;
    let bad = context(&dir.join("bad"), "FROM extra\nRUN true\n", &[]);
    let extra_arg = format!("extra={}", extra.display());
    let r = build(&store, &bad, &["--build-context", &extra_arg]);
    assert_build_failed_leaving(
        &store,
        &r,
        &["Dockerfile:1: FROM:", "FROM needs an image"],
        &before,
    );
    let r = build(&store, &bad, &["--build-context", "extra=/nonexistent/dir"]);
    assert_build_failed_leaving(
        &store,
        &r,
        &["--build-context extra=/nonexistent/dir"],
        &before,
    );
}

/// Stages that do not read each other are built at the same time, as
/// BuildKit builds them (buildah 1.28 builds one stage after the other):
/// each RUN here waits (up to 30 s) for the other's mark in a shared cache
/// mount, which only a concurrent build can give. Their output comes
/// line by line with the stage's name; a stage the target does not need
/// is not built.
#[test]
fn independent_stages_build_concurrently_with_labelled_output() {
    let dir = scratch("concurrent");
    let store = store_with_busybox(&dir);
    let wait_for = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,target=/r,id=rendezvous touch /r/{me}; i=0; \
             while [ ! -e /r/{other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
             if [ -e /r/{other} ]; then echo met-{other} > /{me}; else echo alone > /{me}; fi; \
             echo said-by-{me}\n"
        )
    };
    // (The last FROM names its image through a global ARG: still no
    // stage of this file, so `unused` stays unbuilt.)
    let text = format!(
        "ARG BASE=localhost/busybox:latest\n\
         FROM localhost/busybox:latest AS a\n{}\
         FROM localhost/busybox:latest AS b\n{}\
         FROM localhost/busybox:latest AS unused\nRUN echo never-built\n\
         FROM ${{BASE}}\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        wait_for("a", "b"),
        wait_for("b", "a")
    );
    let ctx = context(&dir, &text, &[]);
    let r = build(&store, &ctx, &["-t", "x/conc:1"]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_eq!(read_in_image(&dir, &store, "x/conc:1", "a"), "met-b\n");
    assert_eq!(read_in_image(&dir, &store, "x/conc:1", "b"), "met-a\n");
    for want in [
        "[a] STEP 2/",
        "[a] said-by-a",
        "[b] STEP 4/",
        "[b] said-by-b",
    ] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(want)),
            "no line starting {want:?}:\n{}",
            r.stdout
        );
    }
    assert!(!r.stdout.contains("never-built"), "{}", r.stdout);

    // One failing stage stops the other and is the one error line.
    let fail = context(
        &dir.join("fail"),
        "FROM localhost/busybox:latest AS a\nRUN sleep 20\n\
         FROM localhost/busybox:latest AS b\nRUN echo broken && exit 4\n\
         FROM localhost/busybox:latest\nCOPY --from=a / /a\nCOPY --from=b / /b\n",
        &[],
    );
    let before = hoist_in(&store, &["images", "-q"]).stdout;
    let r = build(&store, &fail, &["-t", "x/fail:1"]);
    assert_build_failed_leaving(
        &store,
        &r,
        &["Dockerfile:4: RUN:", "exited with code 4"],
        &before,
    );
}

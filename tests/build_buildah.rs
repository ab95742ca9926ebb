//! Differential test of `hoist build`: the same Dockerfiles, from the same
//! base image (hack/mkimage's busybox OCI archive, `FROM oci-archive:...`),
//! built by hoist and by Debian's `buildah bud`; both images are exported
//! as OCI layouts, unpacked by `hoist unpack`, and compared:
//!
//! - the rootfs trees entry for entry: names, types, modes, owners, sizes,
//!   contents, link targets, device numbers, xattrs and hard-link groups
//!   (not timestamps: each tool stamps its own build time);
//! - the image configs: Env, Cmd, Entrypoint, WorkingDir, User,
//!   ExposedPorts, Volumes, Labels and StopSignal, exactly (a missing field
//!   and an empty one are the same; buildah's own io.buildah.version label
//!   aside);
//! - each image on its own: as many history entries without empty_layer as
//!   layers.
//!
//! buildah runs with everything private: storage (vfs) and run root in the
//! test's scratch dir, its own containers.conf, registries.conf,
//! storage.conf and signature policy, chroot isolation, and in a mount
//! namespace of its own where /var/lib is an empty tmpfs (containers/image
//! keeps a blob-info cache in /var/lib/containers/cache for root, with no
//! flag to move it). /etc/containers and /var/lib/containers are never
//! used.
//!
//! Needs root (RUN steps are containers, files keep their owners) and
//! buildah (installed with apt-get if missing; under CI=true a missing
//! buildah is a failure, elsewhere the test says so and passes).
//!
//! Known differences of buildah's, not hoist's, are in EXCUSED, printed
//! when seen.

mod image_common;

use image_common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Differences that are buildah's (or the two tools' legitimately own):
/// (path, field, why), printed when seen.
const EXCUSED: &[Excuse] = &[
    (
        "etc/hosts",
        "missing",
        "buildah 1.28 creates an empty /etc/hosts in a RUN step's rootfs to \
         bind-mount its own over, and commits it into the layer",
    ),
    (
        "etc/hostname",
        "missing",
        "buildah 1.28 creates an empty /etc/hostname for a RUN step's bind \
         mount and commits it",
    ),
    (
        "etc/resolv.conf",
        "missing",
        "buildah 1.28 creates an empty /etc/resolv.conf for a RUN step's bind \
         mount and commits it",
    ),
    // config_instructions_and_variables:
    (
        "data",
        "missing",
        "buildah makes each VOLUME path a directory of the image (as Docker's \
         classic builder did); BuildKit and hoist only record it in the config",
    ),
    (
        "logs",
        "missing",
        "buildah makes each VOLUME path a directory of the image",
    ),
    (
        "more",
        "missing",
        "buildah makes each VOLUME path a directory of the image",
    ),
    (
        "w/other*",
        "uid",
        "buildah creates a WORKDIR lazily, at the next RUN, as that RUN's USER \
         (1000 here, set after the WORKDIR); hoist makes it root's, the \
         USER at the time of the WORKDIR",
    ),
    (
        "w/other*",
        "gid",
        "buildah creates a WORKDIR lazily, as the next RUN's USER",
    ),
    (
        "run/.containerenv",
        "missing",
        "buildah/podman's marker file for a RUN step, committed by buildah",
    ),
    // run_mounts:
    (
        "run/secrets",
        "missing",
        "buildah 1.28 leaves the empty mount point of a secret in the layer; \
         hoist (as BuildKit) removes the mount points it had to make",
    ),
];

/// buildah's own label in every image it builds.
const BUILDAH_LABEL: &str = "io.buildah.version";

/// The config fields compared exactly.
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
];

fn root_needed() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (RUN steps are containers, files keep their owners): run it as root"
    );
}

/// buildah on PATH (see [`need_tools`]), checked once.
fn have_buildah() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| need_tools(&[("buildah", "buildah")], "the buildah differential test"))
}

/// hack/mkimage's busybox archive, in `dir`.
fn busybox_archive(dir: &Path) -> PathBuf {
    let out = dir.join("busybox.tar");
    if !out.exists() {
        run(
            Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/mkimage"))
                .arg(&out)
                .arg("busybox:latest"),
        );
    }
    out
}

/// A private buildah: storage, run root, configs, all under `dir`.
struct Buildah {
    dir: PathBuf,
}

impl Buildah {
    fn new(dir: &Path) -> Buildah {
        fs::create_dir_all(dir.join("tmp")).expect("mkdir buildah tmp");
        let d = dir.display();
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\nnetns = \"host\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
                 tmp_dir = \"{d}/tmp\"\nvolume_path = \"{d}/volumes\"\n"
            ),
        )
        .expect("containers.conf");
        fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"
            ),
        )
        .expect("storage.conf");
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .expect("registries.conf");
        fs::write(
            dir.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("policy.json");
        Buildah {
            dir: dir.to_path_buf(),
        }
    }

    /// `buildah --root .. --runroot .. --storage-driver vfs ARGS`, in a mount
    /// namespace of its own with an empty /var/lib.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs tmpfs /var/lib && exec "$@""#)
            .arg("sh")
            .arg("buildah")
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", self.dir.join("tmp"))
            .env_remove("BUILDAH_LAYERS")
            .env_remove("BUILDAH_FORMAT");
        c
    }

    /// Builds `dockerfile` in `context` and exports it to the OCI layout
    /// `out`, tagged "x"; returns the layout's source, oci:OUT:x.
    fn build(&self, dockerfile: &Path, context: &Path, extra: &[&str], out: &Path) -> String {
        let policy = self.dir.join("policy.json");
        let mut args = vec![
            "bud",
            "--signature-policy",
            policy.to_str().expect("utf-8 path"),
            "--isolation",
            "chroot",
            "--layers",
            "-f",
            dockerfile.to_str().expect("utf-8 path"),
            "-t",
            "x:1",
        ];
        args.extend_from_slice(extra);
        args.push(context.to_str().expect("utf-8 path"));
        run(&mut self.cmd(&args));
        let dest = format!("oci:{}:x", out.display());
        run(&mut self.cmd(&[
            "push",
            "--signature-policy",
            policy.to_str().expect("utf-8 path"),
            "x:1",
            &dest,
        ]));
        dest
    }
}

/// `hoist --store S build -f F -t x:1 EXTRA --output type=oci,dest=OUT CONTEXT`;
/// returns the layout's source, oci:OUT:TAG.
fn hoist_build(
    store: &Path,
    dockerfile: &Path,
    context: &Path,
    extra: &[&str],
    out: &Path,
) -> String {
    // A bounded wait: a hung RUN step fails the test instead of holding it.
    let r = Run::of(
        Command::new("timeout")
            .args(["-k", "10", "300"])
            .arg(env!("CARGO_BIN_EXE_hoist"))
            .arg("--store")
            .arg(store)
            .args(["build", "-q", "-f"])
            .arg(dockerfile)
            .args(["-t", "x:1"])
            .args(extra)
            .arg("--output")
            .arg(format!("type=oci,dest={}", out.display()))
            .arg(context),
    );
    assert!(
        r.ok,
        "hoist build -f {} {extra:?} failed (or hung past 300 s):\n{}{}",
        dockerfile.display(),
        r.stdout,
        r.stderr
    );
    let index = read_json(&out.join("index.json"));
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or_else(|| panic!("hoist's OCI output has no ref.name: {index}"))
        .to_string();
    format!("oci:{}:{tag}", out.display())
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// The manifest and config of the image tagged `src` (oci:DIR:TAG).
fn manifest_and_config(src: &str) -> (Value, Value) {
    let rest = src.strip_prefix("oci:").expect("oci: source");
    let (dir, tag) = rest.rsplit_once(':').expect("oci:DIR:TAG");
    let dir = Path::new(dir);
    let index = read_json(&dir.join("index.json"));
    let m = index["manifests"]
        .as_array()
        .expect("index.json manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("{src}: no manifest tagged {tag} in {index}"));
    let blob = |d: &Value| {
        let d = d.as_str().expect("digest");
        read_json(
            &dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
    };
    let manifest = blob(&m["digest"]);
    let config = blob(&manifest["config"]["digest"]);
    (manifest, config)
}

/// One side's image, built and unpacked.
struct Built {
    src: String,
    manifest: Value,
    config: Value,
    rootfs: PathBuf,
}

/// A build case: a Dockerfile and its context, built by both tools.
struct Case {
    s: Scratch,
    name: &'static str,
}

impl Case {
    fn new(name: &'static str) -> Option<Case> {
        root_needed();
        if !have_buildah() {
            return None;
        }
        let s = scratch(name);
        fs::create_dir_all(s.join("ctx")).expect("mkdir ctx");
        Some(Case { s, name })
    }

    /// A case of its own in a subdirectory (for several builds in one test).
    fn sub(&self, i: usize) -> Case {
        let s = scratch(&format!("{}{i}", self.name));
        fs::create_dir_all(s.join("ctx")).expect("mkdir ctx");
        Case { s, name: self.name }
    }

    fn ctx(&self) -> PathBuf {
        self.s.join("ctx")
    }

    /// Writes the Dockerfile (outside the context), with BASE replaced by
    /// the busybox archive's path.
    fn dockerfile(&self, text: &str) -> PathBuf {
        let p = self.s.join("Dockerfile");
        let base = busybox_archive(&self.s);
        fs::write(&p, text.replace("BASE", &base.display().to_string())).expect("Dockerfile");
        p
    }

    /// Builds with both tools (the same extra flags), unpacks both, and
    /// compares. Returns (hoist's, buildah's).
    fn both(&self, text: &str, extra: &[&str]) -> (Built, Built) {
        let df = self.dockerfile(text);
        let hsrc = hoist_build(
            &self.s.join("store"),
            &df,
            &self.ctx(),
            extra,
            &self.s.join("hoist-oci"),
        );
        let bsrc = Buildah::new(&self.s.join("buildah")).build(
            &df,
            &self.ctx(),
            extra,
            &self.s.join("buildah-oci"),
        );
        let unpack = |src: &str, who: &str| {
            let b = self.s.join(format!("{who}-bundle"));
            run(hoist()
                .arg("--store")
                .arg(self.s.join("unpack-store"))
                .args(["unpack", "-q", src])
                .arg(&b));
            let (manifest, config) = manifest_and_config(src);
            Built {
                src: src.to_string(),
                manifest,
                config,
                rootfs: b.join("rootfs"),
            }
        };
        let h = unpack(&hsrc, "hoist");
        let b = unpack(&bsrc, "buildah");
        self.compare(&h, &b);
        (h, b)
    }

    fn compare(&self, h: &Built, b: &Built) {
        let mut fails = Vec::new();
        // The trees.
        let ht = walk(&h.rootfs);
        let bt = walk(&b.rootfs);
        let (diffs, excused) = diff_trees(&ht, &bt, ("hoist", "buildah"), EXCUSED, &["mtime"]);
        if !excused.is_empty() {
            eprintln!(
                "{}: hoist vs buildah, differences excused (see EXCUSED):\n  {}",
                self.name,
                excused.join("\n  ")
            );
        }
        if !diffs.is_empty() {
            fails.push(format!(
                "rootfs trees differ ({} entries in hoist's, {} in buildah's):\n  {}",
                ht.0.len(),
                bt.0.len(),
                diffs.join("\n  ")
            ));
        }
        // The configs.
        for f in CONFIG_FIELDS {
            let hv = config_field(&h.config, f, false);
            let bv = config_field(&b.config, f, true);
            if hv != bv {
                fails.push(format!("config.{f}: hoist {hv} vs buildah {bv}"));
            }
        }
        let other = other_config_keys(&h.config, &b.config);
        if !other.is_empty() {
            eprintln!(
                "{}: other config differences, not asserted (hoist / buildah):",
                self.name
            );
            for (k, (hv, bv)) in other {
                eprintln!("  config.{k}: {hv} / {bv}");
            }
        }
        // Each image's history against its layers.
        for (who, img) in [("hoist", h), ("buildah", b)] {
            if let Some(e) = history_mismatch(img) {
                fails.push(format!("{who}'s image ({}): {e}", img.src));
            }
        }
        assert!(
            fails.is_empty(),
            "{}: hoist build vs buildah bud:\n{}\nhoist's config: {}\nbuildah's config: {}",
            self.name,
            fails.join("\n"),
            h.config["config"],
            b.config["config"]
        );
    }
}

/// config.FIELD, with a missing field, null, "", [] and {} all null, and
/// (for buildah's image) its own label left out.
fn config_field(config: &Value, field: &str, buildah: bool) -> Value {
    let mut v = config["config"][field].clone();
    if buildah && field == "Labels" {
        if let Some(m) = v.as_object_mut() {
            m.remove(BUILDAH_LABEL);
        }
    }
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        Value::Null
    } else {
        v
    }
}

/// None when the history has one non-empty entry per layer (and the
/// config's diff_ids match the manifest's layers in number).
fn history_mismatch(img: &Built) -> Option<String> {
    let layers = img.manifest["layers"].as_array().map_or(0, |l| l.len());
    let diff_ids = img.config["rootfs"]["diff_ids"]
        .as_array()
        .map_or(0, |l| l.len());
    let hist = img.config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let non_empty = hist
        .iter()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .count();
    if layers != diff_ids {
        return Some(format!("{layers} layers but {diff_ids} diff_ids"));
    }
    (non_empty != layers).then(|| {
        format!(
            "{layers} layers but {non_empty} history entries without empty_layer (of {}): {}",
            hist.len(),
            Value::Array(hist.clone())
        )
    })
}

fn write(p: &Path, data: &[u8], mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(p, data).expect("write context file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The value of `key` in a config's Env.
fn env_of(config: &Value, key: &str) -> Option<String> {
    config["config"]["Env"].as_array()?.iter().find_map(|e| {
        e.as_str()?
            .strip_prefix(key)?
            .strip_prefix('=')
            .map(str::to_string)
    })
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn config_instructions_and_variables() {
    let Some(c) = Case::new("config") else {
        return;
    };
    let (h, _) = c.both(
        r#"FROM oci-archive:BASE
ARG A1=default1
ARG A2
ARG UNSET
ENV E1=one E2="two words" E3=with\ space
ENV E4 the old form, with spaces
ENV E5=${E1}-${A1}-${A2:-none}-${UNSET:-unset}-${UNSET:+set} E6=$E1
RUN echo "A1=$A1 A2=$A2 UNSET=$UNSET E1=$E1 E2=$E2 E3=$E3 E4=$E4 E5=$E5 E6=$E6" > /vars
WORKDIR /w
WORKDIR sub
RUN pwd > here && echo sub > f
WORKDIR ../other/$E1
LABEL l1=v1 "l 2"="v 2"
LABEL multi=a other="b c" fromvar=$E1
EXPOSE 80 443/tcp 53/udp
EXPOSE 8080
VOLUME ["/data", "/logs"]
VOLUME /more
STOPSIGNAL SIGUSR1
USER 1000:1000
RUN id -u > /tmp/uid && id -g > /tmp/gid && echo mine > /tmp/mine
ENTRYPOINT ["/bin/echo", "e"]
CMD ["c1", "c2"]
"#,
        &["--build-arg", "A1=over", "--build-arg", "A2=given"],
    );
    // What the comparison saw, so that both agreeing on nothing cannot pass.
    assert_eq!(
        read(&h.rootfs.join("vars")),
        "A1=over A2=given UNSET= E1=one E2=two words E3=with space E4=the old form, with spaces \
         E5=one-over-given-unset- E6=one\n"
    );
    assert_eq!(read(&h.rootfs.join("w/sub/here")), "/w/sub\n");
    assert_eq!(read(&h.rootfs.join("tmp/uid")), "1000\n");
    assert_eq!(h.config["config"]["WorkingDir"], "/w/other/one");
    assert_eq!(h.config["config"]["User"], "1000:1000");
    assert_eq!(env_of(&h.config, "E2").as_deref(), Some("two words"));
    assert_eq!(env_of(&h.config, "A1"), None, "an ARG is not in Env");
}

#[test]
fn cmd_and_entrypoint() {
    let Some(c) = Case::new("cmdentry") else {
        return;
    };
    // (Dockerfile tail, what hoist's Entrypoint and Cmd must be)
    let cases: &[(&str, Value, Value)] = &[
        // ENTRYPOINT resets the base's Cmd ["sh"] when no CMD came in this stage.
        (
            r#"ENTRYPOINT ["/bin/echo"]"#,
            json!(["/bin/echo"]),
            Value::Null,
        ),
        (
            "CMD echo hi",
            Value::Null,
            json!(["/bin/sh", "-c", "echo hi"]),
        ),
        (
            "ENTRYPOINT echo a\nCMD [\"b\"]",
            json!(["/bin/sh", "-c", "echo a"]),
            json!(["b"]),
        ),
        // A CMD of this stage survives a later ENTRYPOINT.
        (
            "CMD [\"x\"]\nENTRYPOINT [\"/bin/y\"]",
            json!(["/bin/y"]),
            json!(["x"]),
        ),
        // Nothing set: the base's Cmd stays.
        ("LABEL only=label", Value::Null, json!(["sh"])),
    ];
    for (i, (tail, ep, cmd)) in cases.iter().enumerate() {
        let sub = c.sub(i);
        let (h, _) = sub.both(&format!("FROM oci-archive:BASE\n{tail}\n"), &[]);
        assert_eq!(
            (
                config_field(&h.config, "Entrypoint", false),
                config_field(&h.config, "Cmd", false)
            ),
            (ep.clone(), cmd.clone()),
            "hoist's Entrypoint and Cmd after {tail:?}"
        );
    }
}

/// RUN steps that add, change and remove files, links, modes and owners,
/// and remove or replace files and directories of the base and of earlier
/// steps (whiteouts, opaque directories).
///
/// Not here: changing one name of a hard-linked file of an earlier layer
/// (`echo two >> /a/hard` in a later RUN). hoist runs RUN on overlayfs,
/// where a copy-up breaks the link (index=off), and commits the upper dir,
/// so the other name keeps the old content and the image loses the link,
/// as with Docker's overlay2 and BuildKit; buildah on vfs diffs whole trees
/// and keeps both. A difference of storage drivers, not of Dockerfiles.
#[test]
fn run_changes_files() {
    let Some(c) = Case::new("run") else {
        return;
    };
    let (h, _) = c.both(
        r#"FROM oci-archive:BASE
RUN mkdir -p /a/b/c /a/gone /a/replaced && echo one > /a/b/c/f && ln -s /a/b/c/f /a/link \
 && ln /a/b/c/f /a/hard && chmod 0700 /a/b && chown 1000:1000 /a/b/c/f && echo g > /a/gone/g \
 && echo r > /a/replaced/r && echo filedir > /a/file-to-dir && mkfifo /a/fifo && chmod 4755 /a/hard \
 && touch /a/empty && ln -s nowhere /a/dangling
RUN rm /bin/ls /etc/motd && rm -rf /a/gone /usr/sbin \
 && rm -rf /a/replaced && echo now-a-file > /a/replaced \
 && rm /a/file-to-dir && mkdir /a/file-to-dir && echo in > /a/file-to-dir/in \
 && chmod 0640 /etc/passwd && chown 0:1000 /etc/group && rm /a/link && ln -s b/c/f /a/link
RUN rm -rf /home && mkdir -m 0711 /home && echo fresh > /home/only
"#,
        &[],
    );
    assert!(!h.rootfs.join("bin/ls").exists() && !h.rootfs.join("etc/motd").exists());
    assert!(!h.rootfs.join("usr/sbin").exists() && !h.rootfs.join("a/gone").exists());
    assert_eq!(read(&h.rootfs.join("a/replaced")), "now-a-file\n");
    assert_eq!(read(&h.rootfs.join("a/hard")), "one\n");
    assert_eq!(read(&h.rootfs.join("home/only")), "fresh\n");
}

#[test]
fn copy_add_and_dockerignore() {
    let Some(c) = Case::new("copy") else {
        return;
    };
    let ctx = c.ctx();
    write(&ctx.join("a.txt"), b"a\n", 0o644);
    write(&ctx.join("exec.sh"), b"#!/bin/sh\necho x\n", 0o755);
    write(&ctx.join("private"), b"p\n", 0o600);
    write(&ctx.join("one.md"), b"# one\n", 0o644);
    write(&ctx.join("two.md"), b"# two\n", 0o664);
    write(&ctx.join("dir/f1"), b"f1\n", 0o644);
    write(&ctx.join("dir/sub/f2"), b"f2\n", 0o640);
    write(&ctx.join("dir/sub/x.tmp"), b"tmp\n", 0o644);
    symlink("f1", ctx.join("dir/link")).expect("symlink");
    fs::set_permissions(ctx.join("dir/sub"), fs::Permissions::from_mode(0o750)).expect("chmod");
    write(&ctx.join("ignored.txt"), b"no\n", 0o644);
    write(&ctx.join("ignored-keep.txt"), b"kept\n", 0o644);
    write(&ctx.join("secret/key"), b"k\n", 0o600);
    write(
        &ctx.join(".dockerignore"),
        b"# comment\nignored*\n!ignored-keep.txt\nsecret\n**/*.tmp\n",
        0o644,
    );
    // A .tar.gz that ADD extracts, with its own owners and modes.
    let tar = layer_tar(&[
        dir("t", 0o755),
        file("t/in-tar", b"from the tar\n", 0o600).owner(1000, 1000),
        dir("t/d", 0o700).owner(2000, 2000),
        file("t/d/x", b"x\n", 0o755),
        sym("t/s", "in-tar"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    write(&ctx.join("arch.tar.gz"), &gz.finish().expect("gzip"), 0o644);
    write(&ctx.join("plain.tar"), &tar, 0o644);

    let (h, _) = c.both(
        r#"FROM oci-archive:BASE
COPY a.txt /dst/
COPY a.txt /dst/renamed
COPY exec.sh private /multi/
COPY dir /dst/dir
COPY dir/ /dst/dir2/
COPY *.md /docs/
COPY --chown=1000:1000 a.txt /owned/
COPY --chown=1000:2000 dir /owned-dir
COPY --chmod=0640 a.txt /modes/a
COPY --chmod=751 dir /modes/dir
COPY --chown=1000 --chmod=0600 exec.sh /modes/both
ADD arch.tar.gz /extract/
ADD plain.tar /plain/
ADD a.txt /added
WORKDIR /wd
COPY a.txt rel/
COPY a.txt ./
COPY dir/sub ./sub
COPY . /all/
"#,
        &[],
    );
    let r = &h.rootfs;
    assert_eq!(read(&r.join("dst/a.txt")), "a\n");
    assert_eq!(read(&r.join("dst/dir/sub/f2")), "f2\n");
    assert_eq!(read(&r.join("extract/t/in-tar")), "from the tar\n");
    assert_eq!(read(&r.join("wd/rel/a.txt")), "a\n");
    assert!(r.join("all/ignored-keep.txt").exists());
    assert!(!r.join("all/ignored.txt").exists() && !r.join("all/secret").exists());
    assert!(!r.join("all/dir/sub/x.tmp").exists());
}

/// A file copied to a path that is a directory of the image, without a
/// trailing slash (`/home`, or `.` in the WORKDIR), goes into it (Docker,
/// BuildKit and buildah).
#[test]
fn copy_onto_an_existing_directory() {
    let Some(c) = Case::new("copyonto") else {
        return;
    };
    write(&c.ctx().join("a.txt"), b"a\n", 0o644);
    let (h, _) = c.both(
        "FROM oci-archive:BASE\nCOPY a.txt /home\nWORKDIR /wd\nCOPY a.txt .\n",
        &[],
    );
    assert_eq!(read(&h.rootfs.join("home/a.txt")), "a\n");
    assert_eq!(read(&h.rootfs.join("wd/a.txt")), "a\n");
}

#[test]
fn multi_stage_and_target() {
    let Some(c) = Case::new("stages") else {
        return;
    };
    write(&c.ctx().join("src.txt"), b"source\n", 0o644);
    let (h, _) = c.both(
        r#"FROM oci-archive:BASE AS builder
ARG WHO=builder
COPY src.txt /in/
RUN mkdir /out && echo "built by $WHO" > /out/bin && chmod 755 /out/bin && cp /in/src.txt /out/ \
 && mkdir /out/d && echo deep > /out/d/deep && chown -R 1000:1000 /out/d
FROM oci-archive:BASE AS other
RUN echo other > /other
FROM oci-archive:BASE AS final
COPY --from=builder /out/bin /usr/local/bin/tool
COPY --from=builder /out /copied-out
COPY --from=0 /out/src.txt /from-index.txt
COPY --from=other --chown=1000:1000 /other /other-copy
CMD ["/usr/local/bin/tool"]
FROM oci-archive:BASE AS last
RUN echo last > /last
"#,
        &["--target", "final", "--build-arg", "WHO=arg"],
    );
    assert_eq!(read(&h.rootfs.join("usr/local/bin/tool")), "built by arg\n");
    assert!(
        !h.rootfs.join("last").exists(),
        "--target final built past final"
    );
    assert!(!h.rootfs.join("out").exists());
}

/// The image configs hold more than the compared fields; what else differs
/// is printed, not asserted (each tool's own history texts and dates).
fn other_config_keys(h: &Value, b: &Value) -> BTreeMap<String, (Value, Value)> {
    let mut out = BTreeMap::new();
    if let (Some(ho), Some(bo)) = (h["config"].as_object(), b["config"].as_object()) {
        for k in ho.keys().chain(bo.keys()) {
            if !CONFIG_FIELDS.contains(&k.as_str()) && ho.get(k) != bo.get(k) {
                out.insert(
                    k.clone(),
                    (
                        ho.get(k).cloned().unwrap_or(Value::Null),
                        bo.get(k).cloned().unwrap_or(Value::Null),
                    ),
                );
            }
        }
    }
    out
}

/// `created_by` of the ARG and RUN entries of an image's history, in order.
fn arg_and_run_history(config: &Value) -> Vec<String> {
    config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["created_by"].as_str())
        .filter(|c| c.contains("#(nop) ARG ") || c.starts_with('|') || !c.contains("#(nop)"))
        .filter(|c| !c.starts_with("hack/mkimage"))
        .map(String::from)
        .collect()
}

fn owner_of(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (md.uid(), md.gid())
}

/// What both references do alike (issue 20): one instruction's
/// substitution sees the values from before it, a redefined ENV keeps its
/// place, `--chown=name` takes the user's primary group and `:group` is
/// accepted, ARG and RUN history entries read as buildah writes them, and
/// an image from scratch gets the default PATH.
#[test]
fn substitution_env_order_chown_and_history() {
    let Some(c) = Case::new("semantics") else {
        return;
    };
    write(&c.ctx().join("f"), b"f\n", 0o644);
    write(&c.ctx().join("dir/g"), b"g\n", 0o644);
    let (h, b) = c.both(
        r#"FROM oci-archive:BASE
ENV a=1
ENV a=2 b=$a c=x
ENV d=4
ENV c=5
ARG X=1 Y=${X}2
RUN echo "$X $Y $a $b" > /xy && echo 'app:x:1000:5::/:/bin/sh' >> /etc/passwd \
 && echo 'staff:x:50:' >> /etc/group
COPY --chown=app f /f-name
COPY --chown=:staff f /f-group
COPY --chown=app:staff f /f-both
COPY --chown=1000 f /f-numeric
COPY --chown=app dir/ /d-name/
"#,
        &[],
    );
    assert_eq!(read(&h.rootfs.join("xy")), "1 2 2 1\n");
    assert_eq!(
        h.config["config"]["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "a=2",
            "b=1",
            "c=5",
            "d=4"
        ])
    );
    assert_eq!(owner_of(&h.rootfs.join("f-name")), (1000, 5));
    assert_eq!(owner_of(&h.rootfs.join("f-group")), (0, 50));
    assert_eq!(owner_of(&h.rootfs.join("f-both")), (1000, 50));
    assert_eq!(owner_of(&h.rootfs.join("f-numeric")), (1000, 1000));
    assert_eq!(owner_of(&h.rootfs.join("d-name/g")), (1000, 5));
    let (hh, bh) = (
        arg_and_run_history(&h.config),
        arg_and_run_history(&b.config),
    );
    assert_eq!(hh, bh, "ARG and RUN history: hoist vs buildah");
    assert_eq!(hh[0], "/bin/sh -c #(nop) ARG X Y");
    assert!(hh[1].starts_with("|2 X=1 Y=2 /bin/sh -c echo"), "{}", hh[1]);

    // From scratch: no Env in the base, the default PATH in the image.
    let c2 = c.sub(1);
    write(&c2.ctx().join("f"), b"f\n", 0o644);
    let (h, _) = c2.both("FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n", &[]);
    assert_eq!(
        h.config["config"]["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
}

/// Every byte of every layer blob of the OCI layout of `src`, decompressed.
fn layer_bytes(src: &str) -> Vec<u8> {
    let rest = src.strip_prefix("oci:").expect("oci: source");
    let (dir, _) = rest.rsplit_once(':').expect("oci:DIR:TAG");
    let (manifest, _) = manifest_and_config(src);
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().expect("layers") {
        let d = l["digest"].as_str().expect("digest");
        let blob = Path::new(dir)
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        out.extend(run(Command::new("gzip").arg("-dc").arg(&blob)));
    }
    out
}

/// RUN --mount of each type buildah 1.28 has too (bind from a stage and
/// from the context, read-only and rw, cache, tmpfs, secret): the same
/// trees, and nothing of a mount in a layer.
#[test]
fn run_mounts() {
    let Some(c) = Case::new("mounts") else {
        return;
    };
    write(&c.ctx().join("ctxfile"), b"ctxdata\n", 0o644);
    let secret = c.s.join("secret.txt");
    write(&secret, b"s3cret-value\n", 0o600);
    let secret_flag = format!("id=tok,src={}", secret.display());
    let (h, b) = c.both(
        r#"FROM oci-archive:BASE AS src
RUN mkdir /out && echo from-stage > /out/x
FROM oci-archive:BASE
RUN --mount=type=cache,target=/cache,id=c1 echo run >> /cache/log; wc -l < /cache/log > /count
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len; stat -c "%A %u %g %s %n" /run/secrets/* > /secret-ls
RUN --mount=type=bind,from=src,source=/out,target=/mnt cat /mnt/x > /from-stage
RUN --mount=type=bind,source=ctxfile,target=/c cat /c > /from-ctx
RUN --mount=type=bind,target=/rw,rw touch /rw/new && ls /rw > /rwlist
RUN --mount=type=tmpfs,target=/t echo x > /t/y && grep -c "^tmpfs /t tmpfs" /proc/mounts > /tmounted
"#,
        &["--secret", &secret_flag],
    );
    for (f, want) in [
        ("count", "1\n"),
        ("secret-len", "13\n"),
        ("from-stage", "from-stage\n"),
        ("from-ctx", "ctxdata\n"),
        ("rwlist", "ctxfile\nnew\n"),
        ("tmounted", "1\n"),
    ] {
        assert_eq!(read(&h.rootfs.join(f)), want, "/{f}");
    }
    // stat, not ls -l: ls shows the secret's mtime to the minute, which
    // differs between two builds that straddle a minute.
    assert_eq!(
        read(&h.rootfs.join("secret-ls")),
        "-r-------- 0 0 13 /run/secrets/tok\n"
    );
    // (buildah 1.28 writes an rw bind of the context through to the
    // context itself; BuildKit and hoist throw the writes away: see
    // tests/build_mounts.rs.)
    for who in [&h, &b] {
        let bytes = layer_bytes(&who.src);
        let found = bytes.windows(12).any(|w| w == b"s3cret-value");
        assert!(!found, "the secret is in a layer of {}", who.src);
        let config = serde_json::to_string(&who.config).unwrap();
        assert!(
            !config.contains("s3cret"),
            "the secret is in {}'s config",
            who.src
        );
    }
    for gone in ["cache", "mnt", "c", "rw", "t", "run/secrets"] {
        assert!(
            !h.rootfs.join(gone).exists(),
            "/{gone} stayed in hoist's image"
        );
    }
}

//! `hoist build --output type=docker-archive,dest=F` loads into a real
//! client: Debian's podman (`podman load -i F`), which then runs the image
//! with brig as its OCI runtime (`podman run --runtime BRIG --rm IMAGE`),
//! and the container prints what the image's CMD prints.
//!
//! podman is private, as in integration/podman/run.sh: storage, run root,
//! tmp dir, events, network config and containers.conf/storage.conf all in
//! the test's scratch dir (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), the
//! cgroupfs manager with a cgroup parent of the test's own, no network. The
//! load runs in a mount namespace where /var/lib and /var/cache are empty
//! tmpfs (containers/image's blob-info cache would go to
//! /var/lib/containers/cache). /etc/containers and /var/lib/containers are
//! never used. On the way out, passed or failed: `podman rm -af`, then every
//! process whose command line names the scratch dir or that sits in the
//! test's cgroup parent is killed by pid, mounts under the scratch dir are
//! taken down, the cgroups removed, and the dir deleted.
//!
//! Needs root and podman (installed with apt-get if missing; under CI=true a
//! missing podman is a failure, elsewhere the test says so and passes).

mod image_common;

use image_common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// podman on PATH (see [`need_tools`]).
fn have_podman() -> bool {
    need_tools(&[("podman", "podman")], "the podman client test")
}

/// A private podman under `dir`; everything of it, and `dir`, goes when
/// dropped.
struct Podman {
    dir: PathBuf,
    cgroup_parent: String,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let d = dir.display();
        for sub in ["tmp", "net.d"] {
            fs::create_dir_all(dir.join(sub)).expect("mkdir podman dir");
        }
        // The VM's bounding set lacks CAP_SYS_RESOURCE: podman's default
        // rlimits for root cannot be set by any runtime (see run.sh).
        fs::create_dir_all(dir).expect("mkdir podman dir");
        fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 netns = \"none\"\nlog_driver = \"k8s-file\"\n\n[network]\n\
                 network_config_dir = \"{d}/net.d\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
                 lock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\nstatic_dir = \"{d}/root/libpod\"\n\
                 volume_path = \"{d}/root/volumes\"\n"
            ),
        )
        .expect("containers.conf");
        fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n"
            ),
        )
        .expect("storage.conf");
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
        )
        .expect("registries.conf");
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Podman {
            dir: dir.to_path_buf(),
            cgroup_parent: format!("/brig-build-client-{name}"),
        }
    }

    /// `podman --root .. --runroot .. ... ARGS`; `isolated` runs it in a
    /// mount namespace with empty /var/lib and /var/cache.
    fn cmd(&self, isolated: bool, args: &[&str]) -> Command {
        let prefix: &[&str] = if isolated {
            &[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /var/cache && exec "$@""#,
                "sh",
            ]
        } else {
            &[]
        };
        self.cmd_after(prefix, args)
    }

    /// PREFIX... podman ... ARGS
    fn cmd_after(&self, prefix: &[&str], args: &[&str]) -> Command {
        let mut c = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("podman");
                c
            }
            None => Command::new("podman"),
        };
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--network-config-dir")
            .arg(self.dir.join("net.d"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("TMPDIR", self.dir.join("tmp"));
        c
    }
}

/// The pids whose command line names `needle`, or that sit in a cgroup
/// whose path holds `cgroup` (not this process).
fn pids_of(needle: &str, cgroup: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cg = fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            if cmdline.contains(needle) || cg.contains(&format!("{cgroup}/")) {
                out.push(pid);
            }
        }
    }
    out
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd_after(&["timeout", "60"], &["rm", "-af", "-t", "0"])
            .output();
        let needle = self.dir.display().to_string();
        for _ in 0..3 {
            let pids = pids_of(&needle, &self.cgroup_parent);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: kill(2) on a pid of ours (its command line names our
                // private dir, or it is in our cgroup parent).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        // Mounts under the dir, deepest first, lazily.
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&format!("{needle}/")))
            .collect();
        mounts.sort_by(|a, b| b.cmp(a));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // The cgroup parent in every hierarchy (rmdir removes empty ones only).
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                let p = h.path().join(self.cgroup_parent.trim_start_matches('/'));
                if p.is_dir() {
                    let _ = Command::new("find")
                        .arg(&p)
                        .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
                        .output();
                }
            }
            let unified =
                Path::new("/sys/fs/cgroup").join(self.cgroup_parent.trim_start_matches('/'));
            let _ = fs::remove_dir(unified);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn docker_archive_output_loads_into_podman_and_runs_on_brig() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (RUN steps and podman's containers): run it as root"
    );
    if !have_podman() {
        return;
    }
    let s = scratch("podman");
    let base = s.join("busybox.tar");
    run(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/mkimage"))
            .arg(&base)
            .arg("busybox:latest"),
    );
    let ctx = s.join("ctx");
    fs::create_dir_all(&ctx).expect("mkdir ctx");
    fs::write(ctx.join("greeting"), "hello from a hoist build\n").expect("greeting");
    fs::write(
        s.join("Dockerfile"),
        format!(
            "FROM oci-archive:{}\nCOPY greeting /etc/greeting\nRUN echo \"and a RUN step\" >> /etc/greeting\n\
             ENV WHO=brig\nCMD [\"sh\", \"-c\", \"cat /etc/greeting; echo \\\"runtime: $WHO\\\"\"]\n",
            base.display()
        ),
    )
    .expect("Dockerfile");
    let archive = s.join("image.tar");
    let name = "localhost/hoist-client-test:1";
    let r = hoist_in(
        &s.join("store"),
        &[
            "build",
            "-q",
            "-f",
            s.join("Dockerfile").to_str().expect("utf-8"),
            "-t",
            name,
            "--output",
            &format!("type=docker-archive,dest={}", archive.display()),
            ctx.to_str().expect("utf-8"),
        ],
    );
    assert!(r.ok, "hoist build: {}{}", r.stdout, r.stderr);
    assert!(
        archive.is_file(),
        "no docker-archive at {}",
        archive.display()
    );

    // podman refuses a run root longer than 50 characters: a short dir
    // in /tmp, which the Podman guard removes.
    let podman = Podman::new(Path::new(&format!(
        "/tmp/brig-build-client-{}",
        std::process::id()
    )));
    let load = podman
        .cmd(true, &["load", "-i", archive.to_str().expect("utf-8")])
        .output()
        .expect("run podman load");
    let load_out = format!(
        "{}{}",
        String::from_utf8_lossy(&load.stdout),
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        load.status.success(),
        "podman load -i {}: {load_out}",
        archive.display()
    );
    assert!(
        load_out.contains(name),
        "podman load did not name the image {name}: {load_out}"
    );
    let images = String::from_utf8_lossy(&run(
        &mut podman.cmd(false, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
    ))
    .into_owned();
    assert!(images.lines().any(|l| l == name), "podman images: {images}");

    let brig = env!("CARGO_BIN_EXE_brig");
    let out = podman
        .cmd(
            false,
            &[
                "--runtime",
                brig,
                "run",
                "--rm",
                "--network",
                "none",
                "--cgroup-parent",
                &podman.cgroup_parent,
                name,
            ],
        )
        .output()
        .expect("run podman run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman --runtime {brig} run --rm {name}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout, "hello from a hoist build\nand a RUN step\nruntime: brig\n",
        "what the image's CMD printed, run by podman on brig"
    );
    let (dir, cgroup) = (
        podman.dir.display().to_string(),
        podman.cgroup_parent.clone(),
    );
    drop(podman);
    assert!(
        pids_of(&dir, &cgroup).is_empty(),
        "processes of the private podman are left"
    );
    assert!(!Path::new(&dir).exists(), "{dir} is left");
}

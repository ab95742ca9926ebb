//! hoist against a registry that misbehaves (issue 8): a small in-test
//! registry (std TcpListener threads, HTTP/1.1 with Content-Length) serves
//! one image and breaks the layer blob on purpose: the connection cut after
//! K bytes, 5xx and 429 answers, wrong bytes, a body that stalls, a body
//! that trickles while the pull gets SIGINT. Also Ctrl-C during a `hoist
//! build` RUN. Retries are made fast with `$HOIST_RETRY_BASE_MS` and stalls
//! short with `$HOIST_READ_TIMEOUT_MS`. Run as root (the build test runs a
//! container).

mod image_common;

use image_common::{dir, file, hoist, layer_tar, run, scratch, sha256, Run};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const REPO: &str = "faulty";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The image served: a config and one uncompressed layer of ~300 kB.
struct Image {
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

fn image() -> &'static Image {
    static IMG: OnceLock<Image> = OnceLock::new();
    IMG.get_or_init(|| {
        // Bytes that do not repeat, so a wrong splice changes the digest.
        let mut data = Vec::with_capacity(300_000);
        let mut x: u32 = 12345;
        while data.len() < 300_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8);
        }
        let layer = layer_tar(&[dir("data", 0o755), file("data/blob", &data, 0o644)]);
        let layer_digest = sha256(&layer);
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        })
        .to_string()
        .into_bytes();
        let config_digest = sha256(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        Image {
            manifest,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    })
}

/// What the registry does to requests for the layer blob.
#[derive(Clone, Copy)]
enum Fault {
    /// The first answer stops after K bytes and the connection closes.
    CutOnce(usize),
    /// As CutOnce, and Range headers are ignored (200, all of it).
    CutOnceNoRanges(usize),
    /// These statuses first, one per request; then the blob.
    Statuses(&'static [u16]),
    /// This status forever.
    Always(u16),
    /// Bytes of the right length but not the right content.
    WrongBytes,
    /// The first answer sends K bytes, then nothing for a long time.
    StallOnce(usize),
    /// 4 kB every 100 ms.
    Trickle,
    /// 429 with a `Retry-After` of an hour.
    RetryAfterHour,
    /// 404.
    Missing,
}

/// One request the registry saw: target and Range header.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    range: Option<String>,
}

struct Registry {
    port: u16,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Registry {
    fn start(fault: Fault) -> Registry {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let blob_gets = Arc::new(AtomicUsize::new(0));
        let log2 = Arc::clone(&log);
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let log = Arc::clone(&log2);
                let blob_gets = Arc::clone(&blob_gets);
                thread::spawn(move || handle(s, fault, &log, &blob_gets));
            }
        });
        Registry { port, log }
    }

    fn image(&self) -> String {
        format!("docker://127.0.0.1:{}/{REPO}:1", self.port)
    }

    fn name(&self) -> String {
        format!("127.0.0.1:{}/{REPO}:1", self.port)
    }

    /// Requests for the layer blob, in order.
    fn layer_requests(&self) -> Vec<Seen> {
        let want = format!("/blobs/{}", image().layer_digest);
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target.ends_with(&want))
            .cloned()
            .collect()
    }
}

/// The request head (there are no request bodies here), or None for a
/// TLS hello (hoist tries HTTPS first on loopback) or a closed socket.
fn read_head(s: &mut TcpStream) -> Option<(String, Option<String>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut first = [0u8; 1];
    if s.peek(&mut first).ok()? == 0 {
        return None;
    }
    if first[0] == 0x16 {
        // A plain-HTTP server's answer to a TLS hello, as a real one gives.
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return None;
    }
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut range = None;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    Some((target, range))
}

fn head(s: &mut TcpStream, status: &str, headers: &[(&str, String)], len: usize) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let _ = s.write_all(out.as_bytes());
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    head(s, status, headers, body.len());
    let _ = s.write_all(body);
}

fn status_line(code: u16) -> String {
    let reason = match code {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        404 => "Not Found",
        _ => "Whatever",
    };
    format!("{code} {reason}")
}

fn handle(mut s: TcpStream, fault: Fault, log: &Mutex<Vec<Seen>>, blob_gets: &AtomicUsize) {
    let Some((target, range)) = read_head(&mut s) else {
        return;
    };
    log.lock().unwrap().push(Seen {
        target: target.clone(),
        range: range.clone(),
    });
    let img = image();
    let prefix = format!("/v2/{REPO}/");
    if target == "/v2/" {
        return respond(&mut s, "200 OK", &[], b"{}");
    }
    let Some(rest) = target.strip_prefix(&prefix) else {
        return respond(&mut s, "404 Not Found", &[], b"");
    };
    if rest == "manifests/1" {
        let ct = ("Content-Type", MANIFEST_TYPE.to_string());
        return respond(&mut s, "200 OK", &[ct], &img.manifest);
    }
    if rest == format!("blobs/{}", img.config_digest) {
        return respond(&mut s, "200 OK", &[], &img.config);
    }
    if rest != format!("blobs/{}", img.layer_digest) {
        return respond(&mut s, "404 Not Found", &[], b"");
    }
    let n = blob_gets.fetch_add(1, Ordering::SeqCst);
    let body = &img.layer;
    let error = |s: &mut TcpStream, code: u16, extra: &[(&str, String)]| {
        let msg = json!({"errors": [{"code": "FAULT", "message": format!("injected {code}")}]});
        respond(s, &status_line(code), extra, msg.to_string().as_bytes());
    };
    // A Range this server honours: `bytes=N-`.
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let whole_or_range = |s: &mut TcpStream, ranges: bool| match from {
        Some(k) if ranges && k < body.len() => {
            let cr = format!("bytes {k}-{}/{}", body.len() - 1, body.len());
            respond(
                s,
                "206 Partial Content",
                &[("Content-Range", cr)],
                &body[k..],
            );
        }
        _ => respond(s, "200 OK", &[], body),
    };
    match fault {
        Fault::CutOnce(k) | Fault::CutOnceNoRanges(k) if n == 0 => {
            head(&mut s, "200 OK", &[], body.len());
            let _ = s.write_all(&body[..k]);
            let _ = s.flush();
            let _ = s.shutdown(Shutdown::Both);
        }
        Fault::CutOnce(_) => whole_or_range(&mut s, true),
        Fault::CutOnceNoRanges(_) => whole_or_range(&mut s, false),
        Fault::Statuses(codes) => match codes.get(n) {
            Some(&code) => error(&mut s, code, &[("Retry-After", "0".into())]),
            None => whole_or_range(&mut s, true),
        },
        Fault::Always(code) => error(&mut s, code, &[]),
        Fault::WrongBytes => {
            let mut bad = body.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x55;
            respond(&mut s, "200 OK", &[], &bad);
        }
        Fault::StallOnce(k) if n == 0 => {
            head(&mut s, "200 OK", &[], body.len());
            let _ = s.write_all(&body[..k]);
            let _ = s.flush();
            // Holds the connection open, sending nothing.
            thread::sleep(Duration::from_secs(20));
        }
        Fault::StallOnce(_) => whole_or_range(&mut s, true),
        Fault::Trickle => {
            head(&mut s, "200 OK", &[], body.len());
            for chunk in body.chunks(4096) {
                if s.write_all(chunk).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Fault::RetryAfterHour => error(&mut s, 429, &[("Retry-After", "3600".into())]),
        Fault::Missing => error(&mut s, 404, &[]),
    }
}

/// hoist with fast retries and a short stall timeout.
fn fast_hoist(store: &Path) -> Command {
    let mut c = hoist();
    c.env("HOIST_RETRY_BASE_MS", "1")
        .env("HOIST_READ_TIMEOUT_MS", "500")
        .arg("--store")
        .arg(store);
    c
}

fn pull(store: &Path, reg: &Registry) -> Run {
    Run::of(fast_hoist(store).args(["pull", &reg.image()]))
}

fn images(store: &Path) -> String {
    let r = Run::of(hoist().arg("--store").arg(store).args(["images", "-q"]));
    assert!(r.ok, "images: {}", r.stderr);
    r.stdout
}

fn count(store: &Path, sub: &str) -> usize {
    fs::read_dir(store.join(sub)).map_or(0, |d| d.count())
}

/// Every blob in the store hashes to its name.
#[track_caller]
fn blobs_verified(store: &Path) {
    for e in fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("sha256:{}", e.file_name().to_string_lossy());
        assert_eq!(
            sha256(&fs::read(e.path()).unwrap()),
            name,
            "unverified blob"
        );
    }
}

#[track_caller]
fn assert_pulled(store: &Path, reg: &Registry, r: &Run) {
    assert!(r.ok, "pull failed: {}", r.stderr);
    assert_eq!(images(store), format!("{}\n", reg.name()));
    let hex = &image().layer_digest[7..];
    let got = fs::read(store.join("blobs/sha256").join(hex)).expect("layer stored");
    assert!(got == image().layer, "stored layer differs");
    blobs_verified(store);
    assert_eq!(count(store, "tmp"), 0, "tmp/ left behind");
}

/// A failed pull: one error line naming each of `wants`; no name, no blob,
/// nothing in tmp/.
#[track_caller]
fn assert_failed_cleanly(store: &Path, r: &Run, wants: &[&str]) -> String {
    assert!(!r.ok, "pull succeeded: {}", r.stdout);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("hoist:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {}", r.stderr);
    for w in wants {
        assert!(lines[0].contains(w), "{:?} should name {w:?}", lines[0]);
    }
    assert_eq!(count(store, "blobs/sha256"), 0, "blobs left behind");
    assert_eq!(count(store, "tmp"), 0, "tmp/ left behind");
    assert_eq!(images(store), "", "image named");
    lines[0].to_string()
}

#[test]
fn a_cut_connection_resumes_with_a_range() {
    let k = 100_000;
    let reg = Registry::start(Fault::CutOnce(k));
    let work = scratch("cut");
    let store = work.join("store");
    let r = pull(&store, &reg);
    assert_pulled(&store, &reg, &r);
    let reqs = reg.layer_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={k}-").as_str())
    );
}

#[test]
fn a_server_without_ranges_is_read_again_from_the_start() {
    let k = 100_000;
    let reg = Registry::start(Fault::CutOnceNoRanges(k));
    let work = scratch("noranges");
    let store = work.join("store");
    let r = pull(&store, &reg);
    assert_pulled(&store, &reg, &r);
    let reqs = reg.layer_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={k}-").as_str())
    );
}

#[test]
fn unavailable_and_rate_limited_are_retried() {
    let reg = Registry::start(Fault::Statuses(&[503, 429, 502]));
    let work = scratch("503");
    let store = work.join("store");
    let r = pull(&store, &reg);
    assert_pulled(&store, &reg, &r);
    assert_eq!(reg.layer_requests().len(), 4);
}

#[test]
fn a_server_error_forever_fails_after_the_attempts() {
    let reg = Registry::start(Fault::Always(500));
    let work = scratch("500");
    let store = work.join("store");
    let started = Instant::now();
    let r = pull(&store, &reg);
    let line = assert_failed_cleanly(
        &store,
        &r,
        &[
            &image().layer_digest,
            &format!("127.0.0.1:{}/{REPO}", reg.port),
            "500 Internal Server Error",
            "gave up after 5 attempts",
        ],
    );
    assert!(line.contains("injected 500"), "{line}");
    assert_eq!(reg.layer_requests().len(), 5);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn client_errors_and_long_retry_afters_are_not_retried() {
    let reg = Registry::start(Fault::Missing);
    let work = scratch("404");
    let store = work.join("store");
    let r = pull(&store, &reg);
    assert_failed_cleanly(&store, &r, &[&image().layer_digest, "blob not found"]);
    assert_eq!(reg.layer_requests().len(), 1);

    let reg = Registry::start(Fault::RetryAfterHour);
    let r = pull(&store, &reg);
    assert_failed_cleanly(&store, &r, &[&image().layer_digest, "429", "3600 s"]);
    assert_eq!(reg.layer_requests().len(), 1);
}

#[test]
fn wrong_bytes_are_fetched_once_more_then_refused() {
    let reg = Registry::start(Fault::WrongBytes);
    let work = scratch("wrong");
    let store = work.join("store");
    let r = pull(&store, &reg);
    assert_failed_cleanly(
        &store,
        &r,
        &[&image().layer_digest, "digest mismatch", "fetched 2 times"],
    );
    assert_eq!(reg.layer_requests().len(), 2);
}

#[test]
fn a_stalled_body_times_out_and_resumes() {
    let k = 50_000;
    let reg = Registry::start(Fault::StallOnce(k));
    let work = scratch("stall");
    let store = work.join("store");
    let started = Instant::now();
    let r = pull(&store, &reg);
    assert_pulled(&store, &reg, &r);
    // The stall lasts 20 s; the 500 ms read timeout ended it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let reqs = reg.layer_requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={k}-").as_str())
    );
}

/// Waits until `cond` holds, or panics after `secs` naming `what`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child killed when dropped, so a failed assertion does not leave it.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigint_during_a_pull_leaves_the_store_consistent() {
    let reg = Registry::start(Fault::Trickle);
    let work = scratch("sigint");
    let store = work.join("store");
    let child = fast_hoist(&store)
        .args(["pull", &reg.image()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hoist pull");
    let mut child = Reaper(child);
    let partial = || {
        fs::read_dir(store.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 10_000))
    };
    wait_for(20, "a partial blob in tmp/", partial);
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = child.0.wait().expect("wait hoist");
    assert!(!status.success(), "pull finished: {status:?}");
    assert_eq!(status.signal(), Some(libc_sigint()), "{status:?}");

    // What it left: maybe the (verified) config, the layer only in tmp/.
    let index: Value =
        serde_json::from_slice(&fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"],
        json!([]),
        "a half-pulled image is named"
    );
    blobs_verified(&store);
    let hex = &image().layer_digest[7..];
    assert!(!store.join("blobs/sha256").join(hex).exists());
    assert!(count(&store, "tmp") > 0, "the partial blob is not in tmp/");
    // The next hoist to open the store removes it.
    assert_eq!(images(&store), "");
    assert_eq!(count(&store, "tmp"), 0, "stale tmp/ not cleaned");
    // And the pull, done again, works.
    drop(reg);
    let reg = Registry::start(Fault::CutOnce(1000));
    let r = pull(&store, &reg);
    assert_pulled(&store, &reg, &r);
}

fn libc_sigint() -> i32 {
    Signal::SIGINT as i32
}

/// The busybox OCI archive of hack/mkimage, made once per test run.
fn busybox() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-busybox.tar");
        run(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/mkimage"))
                .arg(&out)
                .arg("localhost/busybox:latest"),
        );
        out
    })
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let want = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&want))
        .map(String::from)
        .collect()
}

/// Processes whose command line contains `marker` (a build's RUN).
fn running(marker: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// What a build interrupted in a test may leave; taken down when dropped
/// (only what this test started: processes rooted in its store).
struct BuildLeftovers(PathBuf, String);

impl Drop for BuildLeftovers {
    fn drop(&mut self) {
        // The RUN's shell is its container's init: killing it ends the
        // container's pid namespace, sleep included.
        for pid in running(&self.1) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(200));
        let mut ms = mounts_under(&self.0);
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Ctrl-C (SIGINT to hoist's process group) during `RUN sleep SECS; true
/// MARKER` of a `hoist build`; checks that hoist exits failed and leaves
/// no name, only verified blobs, no container, no mount and (after the
/// next open) nothing in tmp/. Returns how long hoist took to exit.
fn interrupt_build(secs: u32) -> Duration {
    let work = scratch("build-int");
    let store = work.join("store");
    let marker = format!("hoist-faults-marker-{}-{secs}", std::process::id());
    let _cleanup = BuildLeftovers(store.clone(), marker.clone());
    let r = Run::of(hoist().arg("--store").arg(&store).args([
        "pull",
        "-q",
        &format!("oci-archive:{}", busybox().display()),
    ]));
    assert!(r.ok, "import busybox: {}", r.stderr);
    let ctx = work.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // The shell stays the container's init (sleep is not its last
    // command), so the marker in its command line finds the container.
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM localhost/busybox:latest\nRUN sleep {secs}; true {marker}\n"),
    )
    .unwrap();
    let names_before = images(&store);
    // Its own process group, as a shell gives a foreground job: Ctrl-C
    // signals the whole group.
    let child = hoist()
        .arg("--store")
        .arg(&store)
        .args(["build", "-q", "-t", "localhost/interrupted:1"])
        .arg(&ctx)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hoist build");
    let mut child = Reaper(child);
    let tmp = store.join("tmp");
    wait_for(30, "the RUN container", || !running(&marker).is_empty());
    thread::sleep(Duration::from_millis(300));
    let pgid = child.0.id() as i32;
    let cgroup_prefix = format!("build-{pgid}-");
    let sent = Instant::now();
    kill(Pid::from_raw(-pgid), Signal::SIGINT).expect("SIGINT the group");
    let deadline = sent + Duration::from_secs(u64::from(secs) + 15);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait hoist") {
            break s;
        }
        assert!(Instant::now() < deadline, "hoist build ignored SIGINT");
        thread::sleep(Duration::from_millis(50));
    };
    let took = sent.elapsed();
    assert!(!status.success(), "build finished: {status:?}");
    assert_eq!(
        images(&store),
        names_before,
        "the interrupted build named an image"
    );
    blobs_verified(&store);
    // Nothing running or mounted: give a dying container a moment.
    let settled = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settled
        && !(running(&marker).is_empty() && mounts_under(&tmp).is_empty())
    {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        running(&marker),
        Vec::<i32>::new(),
        "the RUN container survived"
    );
    assert_eq!(
        mounts_under(&tmp),
        Vec::<String>::new(),
        "mounts left in tmp/"
    );
    assert_eq!(
        cgroups_named(Path::new("/sys/fs/cgroup"), &cgroup_prefix),
        Vec::<PathBuf>::new(),
        "the RUN container's cgroups are left"
    );
    images(&store);
    assert_eq!(count(&store, "tmp"), 0, "tmp/ not cleaned");
    took
}

/// Cgroup directories (every hierarchy) whose name starts with `prefix`.
fn cgroups_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        if !t.is_dir() {
            continue;
        }
        if e.file_name().to_string_lossy().starts_with(prefix) {
            found.push(e.path());
        }
        found.extend(cgroups_named(&e.path(), prefix));
    }
    found
}

#[test]
fn ctrl_c_during_a_build_run_leaves_the_store_consistent() {
    interrupt_build(6);
}

/// A lone `RUN sleep 30` makes sleep the container's pid 1, which ignores
/// SIGINT: hoist forwards the signal, then kills the RUN after its grace
/// period, and the build fails without naming the image.
#[test]
fn ctrl_c_stops_a_build_run_promptly() {
    let took = interrupt_build(30);
    assert!(
        took < Duration::from_secs(10),
        "hoist took {took:?} to stop"
    );
}

/// `nohup hoist build`: a hangup the caller asked to ignore is no stop
/// request (hoist installs no handler for a signal ignored at its start,
/// and does not count it when its RUN step reads it), so the build runs to
/// its end and names its image.
#[test]
fn a_nohup_build_survives_a_hangup() {
    let work = scratch("build-nohup");
    let store = work.join("store");
    let marker = format!("hoist-nohup-marker-{}", std::process::id());
    let _cleanup = BuildLeftovers(store.clone(), marker.clone());
    let r = Run::of(hoist().arg("--store").arg(&store).args([
        "pull",
        "-q",
        &format!("oci-archive:{}", busybox().display()),
    ]));
    assert!(r.ok, "import busybox: {}", r.stderr);
    let ctx = work.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM localhost/busybox:latest\nRUN sleep 2; true {marker}\n"),
    )
    .unwrap();
    let mut cmd = hoist();
    cmd.arg("--store")
        .arg(&store)
        .args(["build", "-q", "-t", "localhost/nohup:1"])
        .arg(&ctx)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only signal(2) between fork and exec, as nohup does.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = Reaper(cmd.spawn().expect("spawn hoist build"));
    wait_for(30, "the RUN container", || !running(&marker).is_empty());
    let pgid = child.0.id() as i32;
    kill(Pid::from_raw(-pgid), Signal::SIGHUP).expect("SIGHUP the group");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait hoist") {
            break s;
        }
        assert!(Instant::now() < deadline, "hoist build did not finish");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "a nohup'd build stopped on SIGHUP: {status:?}"
    );
    assert!(
        images(&store).contains("localhost/nohup:1"),
        "the build named no image: {:?}",
        images(&store)
    );
}

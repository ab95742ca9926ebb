//! Churn: many containers through the CLI, then nothing left behind.
//!
//! Phase 1: BRIG_CHURN_COUNT (default 1000) containers running /bin/true,
//! each created, started, waited for and deleted, four at a time. Phase 2:
//! containers left `created` (init parked on its exec fifo) up to
//! BRIG_CHURN_EXISTING (default 1000), timing `create` and `list` near 1,
//! 100 and 1000 existing ones, then all deleted. After each phase: no mount
//! under the test's dir, no cgroup and no state dir of its containers, no
//! zombie child, and as many open fds as before.
//!
//! The figures are printed (`cargo test --test churn -- --nocapture`), never
//! asserted: timings do not decide pass or fail.

mod common;
use common::*;
use serde_json::json;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const PARALLEL: usize = 4;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The churn's containers: one shared rootfs, one config per id (its own
/// cgroupsPath `/<id>`), one state root.
struct Churn {
    base: Container,
    prefix: String,
}

impl Churn {
    fn new() -> Self {
        let base = Container::new("churn");
        let rootfs = base.rootfs();
        base.edit(|cfg| {
            set_args(cfg, &["/bin/true"]);
            cfg["root"]["path"] = json!(rootfs);
        });
        let prefix = format!("{}-", base.id);
        Churn { base, prefix }
    }

    fn id(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    /// A bundle for container `n`: only a config.json, pointing at the
    /// shared rootfs.
    fn bundle(&self, n: usize) -> PathBuf {
        let b = self.base.dir.join("bundles").join(n.to_string());
        fs::create_dir_all(&b).expect("create bundle dir");
        let mut cfg = self.base.config();
        cfg["linux"]["cgroupsPath"] = json!(format!("/{}", self.id(n)));
        fs::write(b.join("config.json"), cfg.to_string()).expect("write config.json");
        b
    }

    /// Runs `brig --root ROOT ARGS`, stdio away from pipes (a created
    /// container's init keeps brig's stdio open), stderr in a file.
    /// Returns stderr on failure.
    fn brig(&self, args: &[&str]) -> Result<Duration, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let err_path = self
            .base
            .dir
            .join(format!("stderr-{}", N.fetch_add(1, Ordering::Relaxed)));
        let err = File::create(&err_path).expect("create stderr file");
        let started = Instant::now();
        let mut child = Command::new(runtime())
            .arg("--root")
            .arg(&self.base.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn brig");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for brig") {
                break s;
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{args:?} still running after {TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_micros(200));
        };
        let took = started.elapsed();
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        let _ = fs::remove_file(&err_path);
        if status.success() {
            Ok(took)
        } else {
            Err(format!("{args:?}: {status}: {stderr}"))
        }
    }

    fn create(&self, n: usize) -> Duration {
        let b = self.bundle(n);
        let id = self.id(n);
        self.brig(&["create", "--bundle", p(&b), &id])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pid(&self, n: usize) -> i32 {
        let raw = fs::read_to_string(self.base.root.join(self.id(n)).join("state.json"))
            .expect("read state.json");
        let v: serde_json::Value = serde_json::from_str(&raw).expect("state.json is JSON");
        // brig's state.json says "pid", runc's "init_process_pid".
        v["pid"]
            .as_i64()
            .or_else(|| v["init_process_pid"].as_i64())
            .expect("pid in state.json") as i32
    }

    /// create, start, wait for /bin/true to exit, delete.
    fn cycle(&self, n: usize) {
        let id = self.id(n);
        self.create(n);
        let pid = self.pid(n);
        self.brig(&["start", &id]).unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + TIMEOUT;
        while alive(pid) {
            assert!(Instant::now() < deadline, "{id} still running");
            thread::sleep(Duration::from_millis(1));
        }
        self.brig(&["delete", &id])
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(self.base.dir.join("bundles").join(n.to_string()));
    }

    /// Cgroup directories of the churn's containers, in every hierarchy.
    fn cgroups_left(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for m in host_mounts()
            .iter()
            .filter(|m| m.fstype.starts_with("cgroup"))
        {
            for e in fs::read_dir(&m.target).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    found.push(e.path());
                }
            }
        }
        found
    }

    /// Nothing of the churn's containers anywhere.
    #[track_caller]
    fn assert_clean(&self, fds_before: usize, phase: &str) {
        let mounts = mounts_under(&self.base.dir);
        assert!(mounts.is_empty(), "{phase}: mounts left: {mounts:?}");
        let cgroups = self.cgroups_left();
        assert!(
            cgroups.is_empty(),
            "{phase}: {} cgroups left: {:?}",
            cgroups.len(),
            &cgroups[..cgroups.len().min(5)]
        );
        let states: Vec<_> = fs::read_dir(&self.base.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            states.is_empty(),
            "{phase}: state dirs left: {:?}",
            &states[..states.len().min(5)]
        );
        let zombies = zombie_children();
        assert!(zombies.is_empty(), "{phase}: zombie children: {zombies:?}");
        let fds = open_fds();
        assert_eq!(
            fds, fds_before,
            "{phase}: open fds {fds_before} before, {fds} after"
        );
    }
}

impl Drop for Churn {
    /// After a failure: force-delete whatever the churn left.
    fn drop(&mut self) {
        let ids: Vec<String> = fs::read_dir(&self.base.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&self.prefix))
            .collect();
        for id in ids {
            let _ = self.brig(&["delete", "--force", &id]);
        }
    }
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Children of this process that have exited and not been reaped.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // After the ")" closing the name: state, ppid.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str()) {
            found.push(pid);
        }
    }
    found
}

/// Runs `job(n)` for n in 0..count on PARALLEL threads.
fn parallel(churn: &Arc<Churn>, range: std::ops::Range<usize>, job: fn(&Churn, usize)) {
    let next = Arc::new(AtomicUsize::new(range.start));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (churn, next, end) = (Arc::clone(churn), Arc::clone(&next), range.end);
            thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                job(&churn, n);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("churn worker");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn churn_leaves_nothing_behind() {
    let count = env_count("BRIG_CHURN_COUNT", 1000);
    let existing = env_count("BRIG_CHURN_EXISTING", 1000);
    let churn = Arc::new(Churn::new());
    fs::create_dir_all(&churn.base.root).expect("create state root");
    // One cycle first, so that whatever the harness opens once is open.
    churn.cycle(0);
    let fds_before = open_fds();

    // Phase 1: create, start, wait, delete, PARALLEL at a time.
    let t = Instant::now();
    parallel(&churn, 1..count + 1, Churn::cycle);
    let took = t.elapsed();
    println!(
        "churn: {count} containers (create, start, wait, delete; {PARALLEL} at a time) in {:.1} s: {} per container",
        took.as_secs_f64(),
        ms(took / count.max(1) as u32)
    );
    churn.assert_clean(fds_before, "after the churn");

    // Phase 2: containers left created; create and list timed as they pile up.
    let base = count + 1;
    let mut made = 0;
    let mut report = Vec::new();
    let t = Instant::now();
    for mark in [1usize, 100, 1000].into_iter().filter(|m| *m <= existing) {
        // Fill up to mark - 1, then time the creates that make it mark..mark+4.
        if mark - 1 > made {
            parallel(&churn, base + made..base + mark - 1, |c, n| {
                c.create(n);
            });
            made = mark - 1;
        }
        let creates: Vec<Duration> = (0..5)
            .map(|_| {
                let d = churn.create(base + made);
                made += 1;
                d
            })
            .collect();
        let lists: Vec<Duration> = (0..3)
            .map(|_| {
                churn
                    .brig(&["list", "-q"])
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        report.push(format!(
            "churn: near {mark:>4} existing: create {}, list {} (medians of 5 and 3)",
            ms(median(creates)),
            ms(median(lists))
        ));
    }
    let filled = t.elapsed();
    let listed = churn.brig(&["list", "-q"]).map(|_| ());
    listed.expect("list with every container");
    let t = Instant::now();
    parallel(&churn, base..base + made, |c, n| {
        c.brig(&["delete", &c.id(n)])
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(c.base.dir.join("bundles").join(n.to_string()));
    });
    let deleted = t.elapsed();
    for line in &report {
        println!("{line}");
    }
    println!(
        "churn: {made} created containers made in {:.1} s, deleted in {:.1} s ({PARALLEL} at a time)",
        filled.as_secs_f64(),
        deleted.as_secs_f64()
    );
    churn.assert_clean(fds_before, "after the created containers");
}

//! brig-conformance: an OCI runtime conformance suite, modelled on what the
//! runtime spec (runtime.md, config.md, config-linux.md) says MUST happen.
//! It drives any runc-compatible runtime through its CLI, as root:
//!
//! ```text
//! brig-conformance --runtime PATH [--filter TEXT]... [--rootfs DIR]
//!                  [--probe PATH] [--jobs N] [--keep] [--verbose] [--list]
//! ```
//!
//! Every test builds its own bundle (the busybox rootfs plus brig-probe, and
//! a config.json in the shape of runc's default spec), runs the runtime, and
//! compares what the probe saw from inside, or what the runtime did from
//! outside, with the spec. One line per test (`ok NAME`, `FAIL NAME: why`,
//! `skip NAME: why`), then `N passed, N failed, N skipped` (a header and
//! the time go to stderr); the exit status is 1 if any test failed.

mod cgroups;
mod config;
mod devices;
mod filesystem;
mod harness;
mod hooks;
mod kernel;
mod lifecycle;
mod namespaces;
mod process;
mod reaper;

use harness::{Case, Failure, Suite, Test};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// `vec![Test { name: "f", run: f }, ...]` from function names.
#[macro_export]
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        vec![$($crate::harness::Test { name: stringify!($f), run: $f }),*]
    };
}

const USAGE: &str = "usage: brig-conformance --runtime PATH [--filter TEXT]... [--rootfs DIR] \
[--probe PATH] [--jobs N] [--keep] [--verbose] [--list]";

struct Args {
    runtime: Option<String>,
    filters: Vec<String>,
    rootfs: Option<PathBuf>,
    probe: Option<PathBuf>,
    jobs: usize,
    keep: bool,
    verbose: bool,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        runtime: None,
        filters: Vec::new(),
        rootfs: None,
        probe: None,
        jobs: 4,
        keep: false,
        verbose: false,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--runtime" => a.runtime = Some(value("--runtime")?),
            "--filter" => a.filters.push(value("--filter")?),
            "--rootfs" => a.rootfs = Some(value("--rootfs")?.into()),
            "--probe" => a.probe = Some(value("--probe")?.into()),
            "--jobs" | "-j" => {
                a.jobs = value("--jobs")?
                    .parse()
                    .map_err(|e| format!("--jobs: {e}"))?;
                a.jobs = a.jobs.max(1);
            }
            "--keep" => a.keep = true,
            "--verbose" | "-v" => a.verbose = true,
            "--list" => a.list = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn all_tests() -> Vec<Test> {
    let mut t = Vec::new();
    t.extend(lifecycle::tests());
    t.extend(hooks::tests());
    t.extend(namespaces::tests());
    t.extend(process::tests());
    t.extend(filesystem::tests());
    t.extend(devices::tests());
    t.extend(kernel::tests());
    t.extend(cgroups::tests());
    t
}

/// An executable named on the command line, or found on PATH.
fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then(|| fs::canonicalize(&p).unwrap_or(p));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn mkdtemp(prefix: &Path) -> Result<PathBuf, String> {
    let template =
        CString::new(format!("{}.XXXXXX", prefix.display())).map_err(|e| e.to_string())?;
    let mut bytes = template.into_bytes_with_nul();
    // SAFETY: a writable NUL-terminated template.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(format!(
            "mkdtemp {}: {}",
            prefix.display(),
            std::io::Error::last_os_error()
        ));
    }
    bytes.pop();
    Ok(PathBuf::from(
        String::from_utf8(bytes).map_err(|e| e.to_string())?,
    ))
}

fn setup(a: &Args) -> Result<Suite, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root: the suite creates real containers".into());
    }
    let runtime_name = a
        .runtime
        .as_deref()
        .ok_or(format!("--runtime is required\n{USAGE}"))?;
    let runtime = which(runtime_name).ok_or(format!("runtime {runtime_name:?} not found"))?;
    let rootfs = match &a.rootfs {
        Some(r) => r.clone(),
        None => std::env::var_os("BRIG_ROOTFS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".cache/rootfs")),
    };
    if !rootfs.join("bin/busybox").exists() {
        return Err(format!(
            "{} is not a busybox rootfs (make one with hack/mkrootfs DIR, then pass --rootfs DIR)",
            rootfs.display()
        ));
    }
    let probe = match &a.probe {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("current_exe: {e}"))?
            .with_file_name("brig-probe"),
    };
    if !probe.is_file() {
        return Err(format!(
            "probe {} not found (cargo build --bin brig-probe, or pass --probe PATH)",
            probe.display()
        ));
    }
    let tmp = std::env::temp_dir().join("brig-conformance");
    let work = mkdtemp(&tmp)?;
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let base = work.join("base");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&rootfs)
        .arg(&base)
        .output()
        .map_err(|e| format!("cp: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cp -a {} {}: {}",
            rootfs.display(),
            base.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // hack/mkrootfs leaves / at mktemp's 0700; non-root and user-namespaced
    // container users must be able to walk it.
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let base_probe = base.join("bin/brig-probe");
    let _ = fs::remove_file(&base_probe);
    fs::copy(&probe, &base_probe).map_err(|e| format!("copy probe: {e}"))?;
    fs::set_permissions(&base_probe, fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let state_root = work.join("state");
    fs::create_dir_all(&state_root).map_err(|e| e.to_string())?;
    Ok(Suite {
        runtime,
        state_root,
        probe: base_probe,
        base,
        work,
        keep: a.keep,
        verbose: a.verbose,
    })
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn run_one(suite: &Suite, t: &Test) -> Outcome {
    let started = Instant::now();
    let outcome = run_case(suite, t);
    if suite.verbose {
        eprintln!("[{}] took {:.2}s", t.name, started.elapsed().as_secs_f64());
    }
    outcome
}

fn run_case(suite: &Suite, t: &Test) -> Outcome {
    let mut case = match Case::new(suite, t.name) {
        Ok(c) => c,
        Err(Failure::Fail(m)) | Err(Failure::Skip(m)) => return Outcome::Fail(m),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.run)(&mut case)));
    drop(case);
    match result {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(Failure::Fail(m))) => Outcome::Fail(m),
        Ok(Err(Failure::Skip(m))) => Outcome::Skip(m),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Fail(format!("panicked: {msg}"))
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("brig-conformance: {e}");
            std::process::exit(2);
        }
    };
    let tests: Vec<Test> = all_tests()
        .into_iter()
        .filter(|t| {
            args.filters.is_empty() || args.filters.iter().any(|f| t.name.contains(f.as_str()))
        })
        .collect();
    if args.list {
        for t in &tests {
            println!("{}", t.name);
        }
        return;
    }
    let suite = match setup(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("brig-conformance: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = reaper::start() {
        eprintln!("brig-conformance: {e}");
        std::process::exit(2);
    }
    eprintln!(
        "# runtime {} ({} tests, work dir {})",
        suite.runtime.display(),
        tests.len(),
        suite.work.display()
    );
    let started = Instant::now();
    let suite = Arc::new(suite);
    let tests = Arc::new(tests);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..args.jobs.min(tests.len()).max(1))
        .map(|_| {
            let (suite, tests, next, tx) = (suite.clone(), tests.clone(), next.clone(), tx.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = tests.get(i) else { break };
                let _ = tx.send((i, run_one(&suite, t)));
            })
        })
        .collect();
    drop(tx);
    // Print in the tests' order as results come in.
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut pending = BTreeMap::new();
    let mut printed = 0;
    for (i, outcome) in rx {
        pending.insert(i, outcome);
        while let Some(o) = pending.remove(&printed) {
            let name = tests[printed].name;
            match o {
                Outcome::Pass => {
                    passed += 1;
                    println!("ok {name}");
                }
                Outcome::Fail(m) => {
                    failed += 1;
                    println!("FAIL {name}: {}", harness::one_line(&m, 600));
                }
                Outcome::Skip(m) => {
                    skipped += 1;
                    println!("skip {name}: {}", harness::one_line(&m, 300));
                }
            }
            printed += 1;
        }
    }
    for w in workers {
        let _ = w.join();
    }
    if !suite.keep {
        let _ = fs::remove_dir_all(&suite.work);
    }
    eprintln!("# {:.1}s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

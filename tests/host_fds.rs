//! No host file descriptor is reachable from inside a container (issue 15).
//!
//! A container process that may ptrace (CAP_SYS_PTRACE, as `docker run
//! --cap-add SYS_PTRACE` grants) is not stopped by non-dumpability: it can
//! read /proc/PID/fd of every process in its pid namespace and open what
//! those fds hold. Any runtime process that sits in the container's pid
//! namespace, the created init waiting for `start` or an `exec` being set
//! up, must therefore hold nothing of the host's but stdio. The hunter
//! (`brig-probe hunt-fds`) sweeps every fd table in the pid namespace in a
//! loop while the container is created, while it runs, and while `exec`
//! (foreground, detached, with a console socket) enters it again and again.

mod common;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// How many times each kind of `exec` enters the container while the
/// hunter sweeps, once while it is created and once while it runs.
const ENTRIES: usize = 15;

struct Hunt {
    /// One line per distinct fd the hunter saw.
    fds: Vec<Value>,
    /// The hunter's last line: `sweeps`, and the `pids` whose fd tables it
    /// listed and those it was `refused`.
    counts: Value,
}

impl Hunt {
    /// fds that lead to a host object: not stdio, not a pipe, socket, fifo
    /// or anonymous inode (kind "other": none of these can be walked or
    /// reopened into anything else), and not reachable at the same path
    /// from inside.
    fn leaks(&self) -> Vec<&Value> {
        self.fds
            .iter()
            .filter(|f| f["fd"].as_i64().is_some_and(|n| n > 2))
            .filter(|f| {
                matches!(
                    f["kind"].as_str(),
                    Some("dir" | "file" | "char" | "block" | "symlink")
                )
            })
            .filter(|f| f["inside"] != json!(true))
            .collect()
    }

    fn saw_pid(&self, pid: i64) -> bool {
        self.fds.iter().any(|f| f["pid"].as_i64() == Some(pid))
    }
}

fn with_ptrace(cfg: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        let list = cfg["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability set in config.json");
        list.push(json!("CAP_SYS_PTRACE"));
    }
}

/// Accepts console-socket connections and keeps each pty master until the
/// sink stops (a closed master would hang up the session it leads).
fn console_sink(c: &Container, stop: Arc<AtomicBool>) -> (String, thread::JoinHandle<()>) {
    let path = c.dir.join("console.sock");
    let listener = UnixListener::bind(&path).expect("bind console socket");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let handle = thread::spawn(move || {
        let mut masters = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking stream");
                    stream
                        .set_read_timeout(Some(TIMEOUT))
                        .expect("console socket timeout");
                    masters.push(recv_fd(&stream));
                }
                Err(_) => thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    });
    (p(&path).to_string(), handle)
}

/// Enters the container ENTRIES times each way: foreground, detached, and
/// with a terminal through a console socket.
fn enter_repeatedly(c: &Container, console: &str) {
    for _ in 0..ENTRIES {
        c.cmd(&["exec", &c.id, "true"]).ok();
        c.cmd(&["exec", "--detach", &c.id, "true"]).ok();
        // runc takes a console socket only when detached.
        c.cmd(&[
            "exec",
            "-d",
            "-t",
            "--console-socket",
            console,
            &c.id,
            "true",
        ])
        .ok();
    }
}

fn hunt(name: &str, ptrace: bool, userns: bool) -> Hunt {
    let c = Container::new(name);
    let probe = c.rootfs().join("bin/brig-probe");
    fs::copy(env!("CARGO_BIN_EXE_brig-probe"), &probe).expect("copy brig-probe into the rootfs");
    if userns {
        in_user_namespace(&c);
    }
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "60"]);
        // The hunter reports through files in the rootfs.
        writable_root(cfg);
        if ptrace {
            with_ptrace(cfg);
        }
    });
    c.create();
    let caps = c.config()["process"]["capabilities"].clone();
    let hunter = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
        "capabilities": caps,
        "args": ["/bin/brig-probe", "hunt-fds", "--out", "/hunt.out",
                 "--ready", "/hunt.ready", "--until", "/hunt.stop"]
    });
    let pjson = c.dir.join("hunter.json");
    fs::write(&pjson, hunter.to_string()).expect("write hunter.json");
    c.cmd(&["exec", "--detach", "--process", p(&pjson), &c.id])
        .ok();
    let rootfs = c.rootfs();
    wait_for("the hunter's first sweep", || {
        rootfs.join("hunt.ready").exists()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let (console, sink) = console_sink(&c, stop.clone());
    enter_repeatedly(&c, &console);
    assert_eq!(c.status(), "created", "the container was started early");
    c.start();
    enter_repeatedly(&c, &console);
    stop.store(true, Ordering::Relaxed);
    sink.join().expect("console sink thread");

    fs::write(rootfs.join("hunt.stop"), "").expect("stop the hunter");
    let out = rootfs.join("hunt.out");
    wait_for("the hunter's report", || out.exists());
    read_hunt(&out)
}

fn read_hunt(out: &Path) -> Hunt {
    // The report is written in one go, but may be seen half-written.
    wait_for("a complete hunt report", || {
        fs::read_to_string(out).is_ok_and(|t| t.ends_with("}\n") && t.contains("\"sweeps\""))
    });
    let text = fs::read_to_string(out).expect("read hunt report");
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("hunt line {l:?}: {e}")))
        .collect();
    let counts = lines.pop().expect("a counts line");
    Hunt { fds: lines, counts }
}

fn shown(h: &Hunt, leaks: &[&Value]) -> String {
    let list: Vec<String> = leaks.iter().map(|l| l.to_string()).collect();
    format!("{}\n(counts: {})", list.join("\n"), h.counts)
}

/// With CAP_SYS_PTRACE the hunter reads init's fd table (so the hunt is
/// real) and finds nothing of the host's there or in any exec'd process
/// while it is set up.
#[test]
fn with_cap_sys_ptrace_no_host_fd_is_reachable() {
    assert_hunt_finds_nothing(hunt("hostfd_ptrace", true, false));
}

/// The same in a user namespace, where exec joins the user namespace first
/// and CAP_SYS_PTRACE is the namespace's.
#[test]
fn with_cap_sys_ptrace_in_a_user_namespace_no_host_fd_is_reachable() {
    assert_hunt_finds_nothing(hunt("hostfd_ptrace_userns", true, true));
}

fn assert_hunt_finds_nothing(h: Hunt) {
    assert!(
        h.saw_pid(1),
        "the hunter never read init's fd table: the hunt saw nothing\n{}",
        shown(&h, &[])
    );
    assert!(
        h.counts["pids"].as_array().is_some_and(|p| p.len() >= 2),
        "the hunter saw no process but init: {}",
        h.counts
    );
    let leaks = h.leaks();
    if is_runc() && !leaks.is_empty() {
        skipped(&format!(
            "NOTE: runc 1.1.5 leaves host fds reachable to a container with CAP_SYS_PTRACE; only checked for brig:\n{}",
            shown(&h, &leaks)
        ));
        return;
    }
    assert!(
        leaks.is_empty(),
        "host fds reachable from inside:\n{}",
        shown(&h, &leaks)
    );
}

/// Without CAP_SYS_PTRACE the runtime's processes in the container refuse
/// the hunter (they are not dumpable): exec's, and brig's created init.
/// Nothing leaks either.
#[test]
fn without_cap_sys_ptrace_the_runtime_stays_closed() {
    let h = hunt("hostfd_default", false, false);
    let refused = h.counts["refused"].as_array().cloned().unwrap_or_default();
    assert!(
        !refused.is_empty(),
        "no runtime process refused the hunter: {}",
        h.counts
    );
    if !refused.contains(&json!(1)) {
        assert!(
            is_runc(),
            "the created init's fds were readable without CAP_SYS_PTRACE: {}",
            h.counts
        );
        eprintln!("NOTE: runc 1.1.5's created init is dumpable: its fds (the fifo and pipes) are readable without CAP_SYS_PTRACE");
    }
    let leaks = h.leaks();
    assert!(
        leaks.is_empty(),
        "host fds reachable from inside:\n{}",
        shown(&h, &leaks)
    );
}

/// A capability set of the spec as the kernel's bit mask.
fn cap_mask(cfg: &Value, set: &str) -> u64 {
    cfg["process"]["capabilities"][set]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str())
        .map(|name| {
            let cap: caps::Capability = name
                .parse()
                .unwrap_or_else(|e| panic!("capability {name}: {e}"));
            cap.bitmask()
        })
        .fold(0, |acc, bit| acc | bit)
}

/// A field of /proc/PID/status, e.g. `CapEff` (hex) or `Uid` (first column).
fn status_field(pid: i32, name: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .to_string()
}

/// A container process that may ptrace can attach to the created init and
/// act as it: while init waits for `start` it must hold no more than the
/// container's own identity and capabilities (as runc's does).
#[test]
fn created_init_waits_with_the_containers_privileges_only() {
    let c = Container::new("hostfd_privs");
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "60"]);
        cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    c.create();
    let cfg = c.config();
    let pid = c.pid();
    for (field, set) in [
        ("CapEff", "effective"),
        ("CapPrm", "permitted"),
        ("CapBnd", "bounding"),
    ] {
        let got = u64::from_str_radix(&status_field(pid, field), 16).expect("hex capability mask");
        assert_eq!(
            got,
            cap_mask(&cfg, set),
            "created init's {field} is {got:#x}, not the spec's {set} set"
        );
    }
    assert_eq!(status_field(pid, "Uid"), "1000", "created init's uid");
    assert_eq!(status_field(pid, "Gid"), "1000", "created init's gid");
    c.start();
    c.wait_status("running");
}

/// Init reopens the exec fifo through the container's own procfs; a spec
/// that mounts none at /proc gets a private one instead, and still starts.
#[test]
fn a_container_without_proc_is_created_and_started() {
    let c = Container::new("hostfd_noproc");
    c.edit(|cfg| {
        set_sh(cfg, "echo started > /started");
        writable_root(cfg);
        cfg["mounts"]
            .as_array_mut()
            .expect("mounts array")
            .retain(|m| m["destination"] != "/proc");
        cfg["linux"]["maskedPaths"] = json!([]);
        cfg["linux"]["readonlyPaths"] = json!([]);
    });
    let created = c.try_create(&[]);
    if is_runc() {
        skipped(&format!(
            "NOTE: runc 1.1.5 needs /proc in the container to reach its exec fifo: {created}"
        ));
        return;
    }
    created.ok();
    c.start();
    c.wait_status("stopped");
    assert_eq!(
        fs::read_to_string(c.rootfs().join("started")).expect("the program ran"),
        "started\n"
    );
}

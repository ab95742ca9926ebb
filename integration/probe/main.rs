//! brig-probe: a small static program that the conformance suite puts into
//! each container's rootfs (as /bin/brig-probe) and runs as the container's
//! process or as a hook. It reports what it sees from inside as JSON; it
//! judges nothing (the driver compares).
//!
//! ```text
//! brig-probe report [OPTIONS] [-- ARGS...]   one JSON object on stdout
//!     --path P        lstat, statvfs flags, directory entry count of P
//!     --read P        read up to 4 KiB of P (or the errno)
//!     --openw P       open(P, O_WRONLY) without writing (or the errno)
//!     --create P      open(P, O_WRONLY|O_CREAT|O_EXCL) (or the errno)
//!     --write P       open(P, O_WRONLY) and write one zero byte
//!     --mkdir P[:MODE] the raw mkdir(2) syscall, MODE octal (default 755)
//!     --log FILE      first append a {"name":"program",...} line to FILE
//!     --wait-file F   after reporting, wait (at most 20 s) until F exists
//!     --exit N        exit with N after reporting
//! brig-probe hook NAME LOG [--sleep SECS] [--exit N]
//!     read the state JSON on stdin, append one JSON line to LOG
//! brig-probe signal-wait
//!     catch every catchable signal, print "ready", and on the first signal
//!     print {"signal":N} and exit 0
//! brig-probe hunt-fds --out FILE --ready FILE --until FILE
//!     as an attacker inside the container would: sweep every /proc/PID/fd
//!     of the pid namespace (but its own) again and again until FILE
//!     --until exists (at most 120 s), making --ready after the first
//!     sweep; then write to --out one JSON line per distinct fd seen (pid,
//!     comm, fd, link target, kind, and whether the same object is
//!     reachable at that path from inside) and a last line with the sweep
//!     count and the pids whose fd tables were listed and refused
//! brig-probe seccomp-agent SOCKET LOG
//!     on the host: a seccomp agent for SCMP_ACT_NOTIFY tests (see
//!     seccomp_agent.rs)
//! ```

mod seccomp_agent;

use serde_json::{json, Map, Value};
use std::ffi::{CStr, CString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or(&[]);
    let code = match args.get(1).map(String::as_str) {
        Some("report") => report(rest),
        Some("hook") => hook(rest),
        Some("signal-wait") => signal_wait(),
        Some("hunt-fds") => hunt_fds(rest),
        Some("seccomp-agent") => seccomp_agent::main(rest),
        _ => {
            eprintln!(
                "usage: brig-probe report|hook|signal-wait|hunt-fds|seccomp-agent ... (see the source)"
            );
            2
        }
    };
    std::process::exit(code);
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cstr(p: &str) -> CString {
    CString::new(p).unwrap_or_else(|_| CString::new("/nul-in-path").unwrap())
}

/// `{"ok":true}` or `{"ok":false,"errno":N}` for a libc return value.
fn result(rc: i64) -> Value {
    if rc < 0 {
        json!({"ok": false, "errno": errno()})
    } else {
        json!({"ok": true})
    }
}

fn io_result(r: std::io::Result<()>) -> Value {
    match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "errno": e.raw_os_error().unwrap_or(0)}),
    }
}

/// Options shared by the modes: `--name VALUE` pairs, repeatable.
struct Opts {
    pairs: Vec<(String, String)>,
    extra: Vec<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut pairs = Vec::new();
        let mut extra = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--" {
                extra.extend_from_slice(&args[i + 1..]);
                break;
            }
            if let Some(name) = args[i].strip_prefix("--") {
                let value = args.get(i + 1).cloned().unwrap_or_default();
                pairs.push((name.to_string(), value));
                i += 2;
            } else {
                extra.push(args[i].clone());
                i += 1;
            }
        }
        Opts { pairs, extra }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    fn exit_code(&self) -> i32 {
        self.one("exit").and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

fn report(args: &[String]) -> i32 {
    let opts = Opts::parse(args);
    if let Some(log) = opts.one("log") {
        append_line(log, &hook_record("program", String::new()));
    }
    let mut r = base_report();
    let mut paths = Map::new();
    for p in opts.all("path") {
        paths.insert(p.to_string(), path_info(p));
    }
    r["paths"] = Value::Object(paths);
    let mut reads = Map::new();
    for p in opts.all("read") {
        reads.insert(p.to_string(), read_file(p));
    }
    r["reads"] = Value::Object(reads);
    let mut openw = Map::new();
    for p in opts.all("openw") {
        let res = fs::OpenOptions::new().write(true).open(p).map(|_| ());
        openw.insert(p.to_string(), io_result(res));
    }
    r["openw"] = Value::Object(openw);
    let mut creates = Map::new();
    for p in opts.all("create") {
        let res = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(p)
            .map(|_| ());
        creates.insert(p.to_string(), io_result(res));
    }
    r["creates"] = Value::Object(creates);
    let mut writes = Map::new();
    for p in opts.all("write") {
        let res = fs::OpenOptions::new()
            .write(true)
            .open(p)
            .and_then(|mut f| f.write_all(&[0u8]));
        writes.insert(p.to_string(), io_result(res));
    }
    r["writes"] = Value::Object(writes);
    let mut mkdirs = Map::new();
    for spec in opts.all("mkdir") {
        let (p, mode) = match spec.rsplit_once(':') {
            Some((p, m)) => (p, u32::from_str_radix(m, 8).unwrap_or(0o755)),
            None => (spec, 0o755),
        };
        let c = cstr(p);
        // The raw syscall, not libc's mkdir: seccomp tests filter on it.
        // SAFETY: mkdir(2) with a valid C string and a mode.
        let rc = unsafe { libc::syscall(libc::SYS_mkdir, c.as_ptr(), mode as libc::c_ulong) };
        mkdirs.insert(spec.to_string(), result(rc));
    }
    r["mkdirs"] = Value::Object(mkdirs);
    r["extra_args"] = json!(opts.extra);
    let mut out = serde_json::to_string(&r).unwrap_or_default();
    out.push('\n');
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    if let Some(f) = opts.one("wait-file") {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(f).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    opts.exit_code()
}

/// What a hook (or the program, with --log) records: who ran, where, and
/// what the runtime wrote on its stdin.
fn hook_record(name: &str, stdin: String) -> Value {
    json!({
        "name": name,
        "stdin": stdin,
        "pid": std::process::id(),
        "ns": namespaces(),
        "args": std::env::args().collect::<Vec<_>>(),
        "env": std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect::<Vec<_>>(),
        "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "time_ms": realtime_ms(),
    })
}

fn append_line(path: &str, v: &Value) {
    let mut line = serde_json::to_string(v).unwrap_or_default();
    line.push('\n');
    // One write(2) with O_APPEND: lines from several processes never mix.
    match fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        Err(e) => eprintln!("brig-probe: cannot append to {path}: {e}"),
    }
}

fn hook(args: &[String]) -> i32 {
    let opts = Opts::parse(args);
    let (Some(name), Some(log)) = (opts.extra.first(), opts.extra.get(1)) else {
        eprintln!("usage: brig-probe hook NAME LOG [--sleep SECS] [--exit N]");
        return 2;
    };
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    append_line(log, &hook_record(name, stdin));
    if let Some(secs) = opts.one("sleep").and_then(|s| s.parse::<f64>().ok()) {
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
    opts.exit_code()
}

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

fn signal_wait() -> i32 {
    for sig in 1..=31 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(b"ready\n");
    let _ = stdout.flush();
    let deadline = Instant::now() + Duration::from_secs(30);
    while CAUGHT.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sig = CAUGHT.load(Ordering::SeqCst);
    let _ = writeln!(stdout, "{}", json!({ "signal": sig }));
    let _ = stdout.flush();
    if sig == 0 {
        3
    } else {
        0
    }
}

fn realtime_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn namespaces() -> Value {
    let mut m = Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(t) = fs::read_link(format!("/proc/self/ns/{ns}")) {
            m.insert(ns.to_string(), json!(t.display().to_string()));
        }
    }
    Value::Object(m)
}

fn status_fields() -> Map<String, Value> {
    let mut m = Map::new();
    if let Ok(s) = fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            if let Some((k, v)) = line.split_once(':') {
                m.insert(k.trim().to_string(), json!(v.trim()));
            }
        }
    }
    m
}

fn hex_field(status: &Map<String, Value>, key: &str) -> Value {
    status
        .get(key)
        .and_then(Value::as_str)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .map_or(Value::Null, |v| json!(v))
}

fn int_field(status: &Map<String, Value>, key: &str) -> Value {
    status
        .get(key)
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(Value::Null, |v| json!(v))
}

fn utsname() -> Value {
    // SAFETY: uname fills the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Value::Null;
    }
    let f = |a: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field.
        unsafe { CStr::from_ptr(a.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    json!({
        "sysname": f(&u.sysname),
        "nodename": f(&u.nodename),
        "release": f(&u.release),
        "machine": f(&u.machine),
        "domainname": f(&u.domainname),
    })
}

const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

fn rlimits() -> Value {
    let mut m = Map::new();
    for (name, res) in RLIMITS {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a local struct.
        if unsafe { libc::getrlimit(res, &mut rl) } == 0 {
            m.insert(
                name.to_string(),
                json!({"soft": rl.rlim_cur, "hard": rl.rlim_max}),
            );
        }
    }
    Value::Object(m)
}

fn ids() -> (Value, Value, Value) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: plain out-parameter calls.
    unsafe {
        libc::getresuid(&mut r, &mut e, &mut s);
        libc::getresgid(&mut gr, &mut ge, &mut gs);
    }
    // SAFETY: a size query, then a fill of a buffer of that size.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
    // SAFETY: groups has room for n entries.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    (json!([r, e, s]), json!([gr, ge, gs]), json!(groups))
}

fn clock(id: libc::clockid_t) -> Value {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a local struct.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Value::Null;
    }
    json!(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

fn sched() -> Value {
    // SAFETY: queries about the calling process.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut p = libc::sched_param { sched_priority: 0 };
        libc::sched_getparam(0, &mut p);
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        json!({"policy": policy, "priority": p.sched_priority, "nice": nice})
    }
}

fn ioprio() -> Value {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get(2) about the calling process.
    let v = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if v < 0 {
        json!({"errno": errno()})
    } else {
        json!({"class": v >> 13, "level": v & 0x1fff, "raw": v})
    }
}

fn personality() -> Value {
    // SAFETY: 0xffffffff queries without changing the persona.
    let p = unsafe { libc::personality(0xffff_ffff) };
    json!(p)
}

fn tty() -> Value {
    let mut m = Map::new();
    for fd in 0..3 {
        // SAFETY: isatty on a small integer fd.
        let is = unsafe { libc::isatty(fd) } == 1;
        let target = fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        m.insert(fd.to_string(), json!({"isatty": is, "target": target}));
    }
    Value::Object(m)
}

fn fds() -> Value {
    let mut v: Vec<i64> = fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    json!(v)
}

/// /proc/self/mountinfo, one object per line, in order.
fn mounts() -> Value {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(json!({
            "id": l[0].parse::<i64>().unwrap_or(0),
            "parent": l[1].parse::<i64>().unwrap_or(0),
            "root": unescape(l[3]),
            "mount_point": unescape(l[4]),
            "options": l[5],
            "optional": l[6..].join(" "),
            "fstype": r[0],
            "source": unescape(r[1]),
            "super_options": r[2],
        }));
    }
    json!(out)
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn kind(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "other"
    }
}

fn path_info(p: &str) -> Value {
    let md = match fs::symlink_metadata(p) {
        Ok(md) => md,
        Err(e) => return json!({"exists": false, "errno": e.raw_os_error().unwrap_or(0)}),
    };
    let rdev = md.rdev();
    let mut v = json!({
        "exists": true,
        "kind": kind(md.file_type()),
        "mode": md.mode() & 0o7777,
        "uid": md.uid(),
        "gid": md.gid(),
        "size": md.size(),
        "major": libc::major(rdev),
        "minor": libc::minor(rdev),
    });
    if md.file_type().is_symlink() {
        v["target"] = json!(fs::read_link(p)
            .map(|t| t.display().to_string())
            .unwrap_or_default());
    }
    if let Ok(target) = fs::metadata(p) {
        if target.is_dir() {
            v["entries"] = json!(fs::read_dir(p).map(|d| d.count()).unwrap_or(0));
        }
    }
    let c = cstr(p);
    // SAFETY: statvfs into a zeroed struct with a valid C string.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut sv) } == 0 {
        let f = sv.f_flag;
        v["vfs"] = json!({
            "ro": f & libc::ST_RDONLY != 0,
            "nosuid": f & libc::ST_NOSUID != 0,
            "nodev": f & libc::ST_NODEV != 0,
            "noexec": f & libc::ST_NOEXEC != 0,
            "noatime": f & libc::ST_NOATIME != 0,
            "bytes": sv.f_blocks as u64 * sv.f_frsize as u64,
        });
    }
    v
}

fn read_file(p: &str) -> Value {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) => return json!({"ok": false, "errno": e.raw_os_error().unwrap_or(0)}),
    };
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    loop {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got == buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return json!({"ok": false, "errno": e.raw_os_error().unwrap_or(0), "len": got})
            }
        }
    }
    buf.truncate(got);
    json!({
        "ok": true,
        "len": got,
        "text": String::from_utf8_lossy(&buf),
        "all_zero": buf.iter().all(|b| *b == 0),
    })
}

fn base_report() -> Value {
    let status = status_fields();
    let (uid, gid, groups) = ids();
    let read = |p: &str| fs::read_to_string(p).ok();
    json!({
        "pid": std::process::id(),
        // SAFETY: getppid has no preconditions.
        "ppid": unsafe { libc::getppid() },
        "args": std::env::args().collect::<Vec<_>>(),
        "env": std::env::vars_os()
            .map(|(k, v)| {
                let mut s = k.as_bytes().to_vec();
                s.push(b'=');
                s.extend_from_slice(v.as_bytes());
                String::from_utf8_lossy(&s).into_owned()
            })
            .collect::<Vec<_>>(),
        "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        "uid": uid,
        "gid": gid,
        "groups": groups,
        "umask": status.get("Umask").and_then(Value::as_str).and_then(|u| u32::from_str_radix(u, 8).ok()),
        "caps": {
            "inh": hex_field(&status, "CapInh"),
            "prm": hex_field(&status, "CapPrm"),
            "eff": hex_field(&status, "CapEff"),
            "bnd": hex_field(&status, "CapBnd"),
            "amb": hex_field(&status, "CapAmb"),
        },
        "no_new_privs": int_field(&status, "NoNewPrivs"),
        "seccomp": int_field(&status, "Seccomp"),
        "seccomp_filters": int_field(&status, "Seccomp_filters"),
        "rlimits": rlimits(),
        "uname": utsname(),
        "personality": personality(),
        "oom_score_adj": read("/proc/self/oom_score_adj").and_then(|s| s.trim().parse::<i64>().ok()),
        "ns": namespaces(),
        "uid_map": read("/proc/self/uid_map"),
        "gid_map": read("/proc/self/gid_map"),
        "mounts": mounts(),
        "ioprio": ioprio(),
        "sched": sched(),
        "clocks": {
            "monotonic": clock(libc::CLOCK_MONOTONIC),
            "boottime": clock(libc::CLOCK_BOOTTIME),
        },
        "tty": tty(),
        "fds": fds(),
        "cgroup": read("/proc/self/cgroup"),
    })
}

/// One fd as the hunter saw it; `inside` is whether the link target, looked
/// up from inside the container, is that very object (then holding it gives
/// nothing the container does not have anyway).
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord, Clone)]
struct SeenFd {
    pid: i32,
    comm: String,
    fd: i32,
    target: String,
    kind: &'static str,
    inside: bool,
}

fn dev_ino(md: &fs::Metadata) -> (u64, u64) {
    (md.dev(), md.ino())
}

/// What one hunt has found so far.
#[derive(Default)]
struct Found {
    fds: std::collections::BTreeSet<SeenFd>,
    /// Processes whose fd table was listed.
    pids: std::collections::BTreeSet<i32>,
    /// Processes whose fd table or links were refused to the hunter
    /// (EACCES), or listed empty: how the kernel answers a reader that may
    /// not ptrace the process.
    refused: std::collections::BTreeSet<i32>,
}

/// One pass over every other process's fd table.
fn sweep(me: i32, found: &mut Found) {
    let Ok(dir) = fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let fd_dir = format!("/proc/{pid}/fd");
        let entries: Vec<fs::DirEntry> = match fs::read_dir(&fd_dir) {
            Ok(d) => d.flatten().collect(),
            Err(err) => {
                if err.raw_os_error() == Some(libc::EACCES) {
                    found.refused.insert(pid);
                }
                continue;
            }
        };
        if entries.is_empty() {
            found.refused.insert(pid);
            continue;
        }
        found.pids.insert(pid);
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        for fd in entries {
            let Some(n) = fd.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let link = format!("{fd_dir}/{n}");
            // The fd may be closed and its number reused between the calls:
            // keep what two stats agree on.
            let before = match fs::metadata(&link) {
                Ok(md) => md,
                Err(err) => {
                    if err.raw_os_error() == Some(libc::EACCES) {
                        found.refused.insert(pid);
                    }
                    continue;
                }
            };
            let target = match fs::read_link(&link) {
                Ok(t) => t,
                Err(err) => {
                    if err.raw_os_error() == Some(libc::EACCES) {
                        found.refused.insert(pid);
                    }
                    continue;
                }
            };
            let target = target.to_string_lossy().into_owned();
            // stat follows the magic link to the object the fd holds.
            let Ok(md) = fs::metadata(&link) else {
                continue;
            };
            if dev_ino(&md) != dev_ino(&before) {
                continue;
            }
            let inside = target.starts_with('/')
                && fs::metadata(&target).is_ok_and(|m| dev_ino(&m) == dev_ino(&md));
            found.fds.insert(SeenFd {
                pid,
                comm: comm.clone(),
                fd: n,
                target,
                kind: kind(md.file_type()),
                inside,
            });
        }
    }
}

fn hunt_fds(args: &[String]) -> i32 {
    let opts = Opts::parse(args);
    let (Some(out), Some(ready), Some(until)) =
        (opts.one("out"), opts.one("ready"), opts.one("until"))
    else {
        eprintln!("hunt-fds needs --out, --ready and --until");
        return 2;
    };
    let me = std::process::id() as i32;
    let mut found = Found::default();
    let mut sweeps = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !Path::new(until).exists() && Instant::now() < deadline {
        sweep(me, &mut found);
        sweeps += 1;
        if sweeps == 1 && fs::write(ready, "").is_err() {
            eprintln!("hunt-fds: cannot write {ready}");
            return 1;
        }
    }
    let mut text = String::new();
    for s in &found.fds {
        text += &json!({
            "pid": s.pid, "comm": s.comm, "fd": s.fd, "target": s.target,
            "kind": s.kind, "inside": s.inside,
        })
        .to_string();
        text.push('\n');
    }
    text += &json!({"sweeps": sweeps, "pids": found.pids, "refused": found.refused}).to_string();
    text.push('\n');
    match fs::write(out, text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hunt-fds: writing {out}: {e}");
            1
        }
    }
}

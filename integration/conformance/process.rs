//! config.md, Process: args, env, cwd, user, umask, rlimits,
//! capabilities, noNewPrivileges, oomScoreAdj, scheduler, ioPriority,
//! terminal.

use crate::config::{cap_mask, cap_names};
use crate::harness::{run_cmd, Case, Ctx, Failure, TResult, Test, TIMEOUT};
use crate::{check, fail, tests};
use serde_json::{json, Value};
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    tests![
        process_args,
        process_args_path_lookup,
        process_env,
        process_cwd,
        process_user,
        process_user_no_additional_gids,
        process_umask,
        process_rlimits,
        process_rlimits_duplicate_fails,
        process_rlimits_unknown_fails,
        process_capabilities,
        process_capabilities_none,
        process_capabilities_ambient_non_root,
        process_no_new_privileges,
        process_oom_score_adj,
        process_oom_score_adj_unset,
        process_scheduler,
        process_io_priority,
        process_terminal,
    ]
}

/// args: the program gets exactly these, argv[0] included.
fn process_args(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let args = [
        "/bin/brig-probe",
        "report",
        "--",
        "with space",
        "",
        "*",
        "$HOME",
    ];
    b.args(&args);
    let r = c.run_probe(&b)?;
    check!(
        r["args"] == json!(args),
        "argv is {}, want {}",
        r["args"],
        json!(args)
    );
    Ok(())
}

/// args[0] "is used with the same semantics as execvp's file": a name
/// without a slash is looked up in the PATH of process.env.
fn process_args_path_lookup(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["brig-probe", "report"]);
    b.config["process"]["env"] = json!(["PATH=/nowhere:/bin"]);
    let r = c.run_probe(&b)?;
    check!(r["args"][0] == "brig-probe", "argv[0] is {}", r["args"][0]);
    Ok(())
}

/// env: "same semantics as environ". Every variable as given; nothing else
/// but HOME (which runc-compatible runtimes add when it is missing).
fn process_env(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let env = [
        "PATH=/bin:/usr/bin",
        "CF_A=1",
        "CF_SPACE=a b  c",
        "CF_EMPTY=",
        "CF_EQ=x=y",
    ];
    b.config["process"]["env"] = json!(env);
    let r = c.run_probe(&b)?;
    let got: Vec<&str> = r["env"]
        .as_array()
        .ctx("env")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let missing: Vec<&&str> = env.iter().filter(|e| !got.contains(e)).collect();
    check!(
        missing.is_empty(),
        "missing from the environment: {missing:?} (got {got:?})"
    );
    let extra: Vec<&&str> = got
        .iter()
        .filter(|e| !env.contains(e) && !e.starts_with("HOME="))
        .collect();
    check!(
        extra.is_empty(),
        "unexpected environment variables: {extra:?}"
    );
    Ok(())
}

/// cwd: "the working directory that will be set for the executable".
fn process_cwd(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.mkdir("/var/cf-cwd")?;
    b.config["process"]["cwd"] = json!("/var/cf-cwd");
    let r = c.run_probe(&b)?;
    check!(r["cwd"] == "/var/cf-cwd", "cwd is {}", r["cwd"]);
    Ok(())
}

/// user: uid, gid (real, effective, saved) and additionalGids.
fn process_user(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 2000]});
    let r = c.run_probe(&b)?;
    check!(
        r["uid"] == json!([1000, 1000, 1000]),
        "uids (real, effective, saved) are {}",
        r["uid"]
    );
    check!(
        r["gid"] == json!([1001, 1001, 1001]),
        "gids (real, effective, saved) are {}",
        r["gid"]
    );
    let mut groups: Vec<i64> = r["groups"]
        .as_array()
        .ctx("groups")?
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    groups.retain(|g| *g != 1001);
    groups.sort();
    check!(
        groups == [5, 2000],
        "supplementary groups are {}, want 5 and 2000",
        r["groups"]
    );
    Ok(())
}

/// Without additionalGids the process has no supplementary group of the
/// runtime's (none but its own gid).
fn process_user_no_additional_gids(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let r = c.run_probe(&b)?;
    let groups: Vec<i64> = r["groups"]
        .as_array()
        .ctx("groups")?
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    check!(
        groups.iter().all(|g| *g == 1000),
        "supplementary groups are {groups:?}, want none"
    );
    Ok(())
}

/// user.umask.
fn process_umask(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["user"]["umask"] = json!(0o027);
    let r = c.run_probe(&b)?;
    check!(
        r["umask"] == 0o027,
        "umask is {:o}, want 27",
        r["umask"].as_u64().unwrap_or(0)
    );
    Ok(())
}

/// rlimits: "rlim.rlim_cur MUST match the configured value",
/// "rlim.rlim_max MUST match the configured value". The values stay under
/// our own hard limits: raising one takes CAP_SYS_RESOURCE, which the
/// runtime may lack (it does in some sandboxes).
fn process_rlimits(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let mut want = Vec::new();
    for (name, res, soft, hard) in [
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 512u64, 1000u64),
        ("RLIMIT_CORE", libc::RLIMIT_CORE, 1024, 4096),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC, 300, 600),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE, 8192, 16384),
        ("RLIMIT_STACK", libc::RLIMIT_STACK, 4 << 20, 16 << 20),
    ] {
        let mut ours = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a local struct.
        unsafe { libc::getrlimit(res, &mut ours) };
        let hard = hard.min(ours.rlim_max);
        want.push((name, soft.min(hard), hard));
    }
    b.config["process"]["rlimits"] = want
        .iter()
        .map(|(t, s, h)| json!({"type": t, "soft": s, "hard": h}))
        .collect();
    let r = c.run_probe(&b)?;
    let mut errors = Vec::new();
    for (t, s, h) in want {
        let got = &r["rlimits"][t];
        if got["soft"] != s || got["hard"] != h {
            errors.push(format!("{t} is {got}, want soft {s} hard {h}"));
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// "If rlimits contains duplicated entries with same type, the runtime MUST
/// generate an error."
fn process_rlimits_duplicate_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
        {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200},
    ]);
    let (out, _) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create with a duplicated RLIMIT_NOFILE succeeded"
    );
    Ok(())
}

/// "The runtime MUST generate an error for any values which cannot be
/// mapped to a relevant kernel interface."
fn process_rlimits_unknown_fails(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.args(&["/bin/true"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}]);
    let (out, _) = c.try_create(&b, &[])?;
    check!(
        !out.success(),
        "create with rlimit RLIMIT_NO_SUCH succeeded"
    );
    Ok(())
}

/// Compares the five capability sets of a report with what was asked.
fn check_caps(r: &Value, want: &[(&str, &str, &[&str])]) -> TResult {
    let mut errors = Vec::new();
    for (key, set, names) in want {
        let got = r["caps"][key]
            .as_u64()
            .ctx("capability set in the report")?;
        let mask = cap_mask(names);
        if got != mask {
            errors.push(format!("{set} is {:?}, want {names:?}", cap_names(got)));
        }
    }
    check!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

/// capabilities: each of the five sets as configured. For root, execve
/// recomputes permitted and effective from the bounding and inheritable
/// sets (capabilities(7)), so the config keeps bounding = permitted =
/// effective, the shape under which every set is exactly as configured.
fn process_capabilities(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let full: &[&str] = &[
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
    ];
    let inheritable: &[&str] = &["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let ambient: &[&str] = &["CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] = json!({
        "bounding": full, "permitted": full, "effective": full,
        "inheritable": inheritable, "ambient": ambient,
    });
    let r = c.run_probe(&b)?;
    check_caps(
        &r,
        &[
            ("bnd", "bounding", full),
            ("prm", "permitted", full),
            ("eff", "effective", full),
            ("inh", "inheritable", inheritable),
            ("amb", "ambient", ambient),
        ],
    )
}

/// All five sets empty: the process has no capability at all, not even in
/// its bounding set.
fn process_capabilities_none(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["capabilities"] = json!({
        "bounding": [], "permitted": [], "effective": [], "inheritable": [], "ambient": [],
    });
    let r = c.run_probe(&b)?;
    check_caps(
        &r,
        &[
            ("bnd", "bounding", &[]),
            ("prm", "permitted", &[]),
            ("eff", "effective", &[]),
            ("inh", "inheritable", &[]),
            ("amb", "ambient", &[]),
        ],
    )
}

/// A non-root user keeps ambient capabilities across execve: they are then
/// in its permitted and effective sets.
fn process_capabilities_ambient_non_root(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    let set: &[&str] = &["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({
        "bounding": set, "permitted": set, "effective": set, "inheritable": set, "ambient": set,
    });
    let r = c.run_probe(&b)?;
    check!(
        r["uid"] == json!([1000, 1000, 1000]),
        "uids are {}",
        r["uid"]
    );
    check_caps(
        &r,
        &[
            ("amb", "ambient", set),
            ("prm", "permitted", set),
            ("eff", "effective", set),
            ("bnd", "bounding", set),
        ],
    )
}

/// noNewPrivileges true and false.
fn process_no_new_privileges(c: &mut Case) -> TResult {
    for (value, want) in [(true, 1), (false, 0)] {
        let mut b = c.bundle()?;
        b.config["process"]["noNewPrivileges"] = json!(value);
        let r = c.run_probe(&b)?;
        check!(
            r["no_new_privs"] == want,
            "noNewPrivileges {value}: NoNewPrivs is {}",
            r["no_new_privs"]
        );
    }
    Ok(())
}

/// "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given
/// value."
fn process_oom_score_adj(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["oomScoreAdj"] = json!(345);
    let r = c.run_probe(&b)?;
    check!(
        r["oom_score_adj"] == 345,
        "oom_score_adj is {}",
        r["oom_score_adj"]
    );
    Ok(())
}

/// "If oomScoreAdj is not set, the runtime MUST NOT change the value of
/// oom_score_adj": the runtime runs with 123 (set before it starts), so the
/// container must have 123.
fn process_oom_score_adj_unset(c: &mut Case) -> TResult {
    let b = c.bundle()?;
    b.write_config()?;
    let id = c.new_id();
    let bundle = b.dir.to_str().ctx("utf-8")?.to_string();
    let mut cmd = c.command(&["create", "--bundle", &bundle, &id]);
    // SAFETY: the closure only does async-signal-safe open/write/close.
    unsafe {
        cmd.pre_exec(|| {
            let path = b"/proc/self/oom_score_adj\0";
            let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"123".as_ptr().cast(), 3);
            libc::close(fd);
            if n != 3 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (o, e) = (c.dir.join("ctr.out"), c.dir.join("ctr.err"));
    let out = run_cmd(&mut cmd, &o, &e, TIMEOUT)?;
    check!(out.success(), "create failed: {out}");
    let start = c.rt(&["start", &id])?;
    check!(start.success(), "start failed: {start}");
    let deadline = Instant::now() + TIMEOUT;
    let text = loop {
        let t = fs::read_to_string(&o).unwrap_or_default();
        if t.contains('\n') || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let r: Value =
        serde_json::from_str(text.lines().next().unwrap_or("")).ctx("the probe's report")?;
    check!(
        r["oom_score_adj"] == 123,
        "oom_score_adj is {}, the runtime's was 123",
        r["oom_score_adj"]
    );
    Ok(())
}

/// process.scheduler: policy and nice. runc 1.1 predates the field
/// (runc 1.2 added it) and ignores it.
fn process_scheduler(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let r = c.run_probe(&b)?;
    check!(
        r["sched"]["policy"] == libc::SCHED_BATCH,
        "scheduling policy is {}, want SCHED_BATCH ({})",
        r["sched"]["policy"],
        libc::SCHED_BATCH
    );
    check!(
        r["sched"]["nice"] == 7,
        "nice is {}, want 7",
        r["sched"]["nice"]
    );
    Ok(())
}

/// process.ioPriority: class and priority. runc 1.1 predates the field
/// (runc 1.2 added it) and ignores it.
fn process_io_priority(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let r = c.run_probe(&b)?;
    check!(
        r["ioprio"]["class"] == 2 && r["ioprio"]["level"] == 6,
        "I/O priority is {}, want class 2 (BE) level 6",
        r["ioprio"]
    );
    Ok(())
}

/// Receives one fd over a unix socket (SCM_RIGHTS).
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> Result<OwnedFd, String> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: a zeroed msghdr pointing at our buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: recvmsg into the buffers described by msg.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err("no fd in the console socket message".into());
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// process.terminal: the process's stdio is a terminal, whose master the
/// runtime hands over --console-socket; /dev/console is that pty (default
/// devices: "set up if terminal is enabled ... by bind mounting the
/// pseudoterminal pty to /dev/console").
fn process_terminal(c: &mut Case) -> TResult {
    let mut b = c.bundle()?;
    b.config["process"]["terminal"] = json!(true);
    b.probe(&["--path", "/dev/console"]);
    b.write_config()?;
    let sock_path = c.dir.join("console.sock");
    let listener = UnixListener::bind(&sock_path).ctx("bind the console socket")?;
    listener.set_nonblocking(true).ctx("nonblocking")?;
    let id = c.new_id();
    let bundle = b.dir.to_str().ctx("utf-8")?.to_string();
    let sock = sock_path.to_str().ctx("utf-8")?.to_string();
    let mut cmd = c.command(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        &sock,
        &id,
    ]);
    let (o, e) = (c.dir.join("create.out"), c.dir.join("create.err"));
    // create blocks until it has sent the master: accept in this thread
    // while create runs in another.
    let create = std::thread::spawn(move || run_cmd(&mut cmd, &o, &e, TIMEOUT));
    let deadline = Instant::now() + TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((s, _)) => break Some(s),
            Err(_) if create.is_finished() || Instant::now() > deadline => break None,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let out = create
        .join()
        .map_err(|_| Failure::Fail("create thread panicked".into()))??;
    check!(out.success(), "create with a terminal failed: {out}");
    let conn = conn.ctx("the runtime never connected to --console-socket")?;
    conn.set_nonblocking(false).ctx("blocking")?;
    let master = recv_fd(&conn)?;
    c.rt(&["start", &id])?.ok()?;
    // Read the pty until the probe's line is complete (EIO once every
    // slave fd is closed).
    let mut f = fs::File::from(master);
    let mut text = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                text.extend_from_slice(&buf[..n]);
                if text.ends_with(b"\n") && text.contains(&b'}') {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    let r: Value = match text
        .lines()
        .find(|l| l.starts_with('{'))
        .map(serde_json::from_str)
    {
        Some(Ok(v)) => v,
        _ => fail!("no report on the terminal; read {text:?}"),
    };
    for fd in ["0", "1", "2"] {
        check!(
            r["tty"][fd]["isatty"] == true,
            "fd {fd} is not a terminal: {}",
            r["tty"][fd]
        );
    }
    let console = &r["paths"]["/dev/console"];
    check!(
        console["kind"] == "char" && console["major"] == 136,
        "/dev/console is {console}, want the pty (char device, major 136)"
    );
    Ok(())
}

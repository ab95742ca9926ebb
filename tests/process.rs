//! The container's process: args, env, cwd, user, umask, noNewPrivileges,
//! exit codes, --no-pivot and a terminal through --console-socket.

mod common;
use common::*;
use serde_json::json;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

#[test]
fn args_are_passed_verbatim() {
    let out = run_in_container(
        "args",
        |_| {},
        &["sh", "-c", "printf '[%s]' \"$@\"", "arg0", "a b", "", "c"],
    );
    assert_eq!(out.ok(), "[a b][][c]");
}

#[test]
fn env_is_set() {
    let out = sh_in_container(
        "env",
        |cfg| {
            let env = cfg["process"]["env"].as_array_mut().expect("env array");
            env.push(json!("BRIG_FOO=bar baz"));
            env.push(json!("BRIG_EMPTY="));
        },
        "env",
    );
    let vars: Vec<&str> = out.lines().collect();
    for want in [
        "BRIG_FOO=bar baz",
        "BRIG_EMPTY=",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(vars.contains(&want), "{want} missing from\n{out}");
    }
}

#[test]
fn cwd_is_set() {
    let out = sh_in_container("cwd", |cfg| cfg["process"]["cwd"] = json!("/etc"), "pwd");
    assert_eq!(out, "/etc\n");
}

#[test]
fn user_and_additional_gids_are_set() {
    let out = sh_in_container(
        "user",
        |cfg| {
            cfg["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]})
        },
        "id -u; id -g; id -G",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1001"], "{out}");
    let mut groups: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    groups.sort_unstable();
    assert_eq!(groups, ["10", "1001", "20"], "{out}");
}

/// A gid listed twice in additionalGids is one supplementary group (as
/// runc and youki set them; youki's contest checks getgroups' length).
#[test]
fn repeated_additional_gids_are_set_once() {
    let out = sh_in_container(
        "user_dup_gids",
        |cfg| {
            cfg["process"]["user"] =
                json!({"uid": 10, "gid": 10, "additionalGids": [150, 120, 130, 150, 120]})
        },
        "grep ^Groups: /proc/self/status",
    );
    let mut groups: Vec<&str> = out
        .trim_start_matches("Groups:")
        .split_whitespace()
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, ["120", "130", "150"], "{out}");
}

/// A capability name the runtime does not know is dropped with a warning,
/// as the runtime spec asks (runc does the same; crun's unknown-caps test),
/// in config.json and in `exec --cap`.
#[test]
fn unknown_capability_names_are_ignored_with_a_warning() {
    let c = Container::new("unknown_caps");
    c.edit(|cfg| {
        let both = json!(["CAP_KILL", "CAP_UNKNOWN", "UNKNOWN_CAP"]);
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            cfg["process"]["capabilities"][set] = both.clone();
        }
        set_args(cfg, &["sleep", "60"]);
    });
    let out = c.try_create(&[]);
    assert!(out.success(), "{out}");
    assert!(
        out.stderr.contains("CAP_UNKNOWN"),
        "a warning names it: {out}"
    );
    c.start();
    // CAP_KILL is bit 5.
    let status = c.cmd(&["exec", &c.id, "grep", "^CapBnd", "/proc/1/status"]);
    assert_eq!(
        status.ok().split_whitespace().nth(1),
        Some("0000000000000020")
    );
    let out = c.cmd(&["exec", "--cap", "CAP_UNKNOWN", &c.id, "true"]);
    assert!(out.success(), "{out}");
}

#[test]
fn umask_is_set() {
    let out = sh_in_container(
        "umask",
        |cfg| cfg["process"]["user"]["umask"] = json!(0o027),
        "umask",
    );
    assert_eq!(out, "0027\n");
}

#[test]
fn no_new_privileges_follows_the_config() {
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let out = sh_in_container(
            "nnp",
            |cfg| cfg["process"]["noNewPrivileges"] = json!(nnp),
            "grep NoNewPrivs /proc/self/status",
        );
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["NoNewPrivs:", want],
            "noNewPrivileges {nnp}"
        );
    }
}

#[test]
fn exit_codes_are_passed_on() {
    for code in [0, 1, 42, 255] {
        let out = run_in_container("exit_codes", |_| {}, &["sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.code, Some(code), "{out}");
    }
}

#[test]
fn no_pivot_runs_in_the_rootfs() {
    let c = Container::new("no_pivot");
    c.edit(|cfg| set_sh(cfg, "cat /etc/motd; echo $$"));
    assert_eq!(c.run(&["--no-pivot"]).ok(), "brig test rootfs\n1\n");
}

#[test]
fn terminal_through_console_socket() {
    let c = Container::new("console");
    let script = "tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; stat -c %F /dev/console";
    c.edit(|cfg| {
        cfg["process"]["terminal"] = json!(true);
        set_sh(cfg, script);
    });
    let out = run_on_console_socket(&c);
    assert_eq!(out, "/dev/pts/0\nstdio-is-a-tty\ncharacter special file\n");
}

/// Creates the container with a --console-socket, takes the pty master it
/// is sent, starts the container and returns what it wrote (without CRs),
/// once it has stopped.
fn run_on_console_socket(c: &Container) -> String {
    let socket = c.dir.join("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind console socket");
    c.try_create(&["--console-socket", p(&socket)]).ok();
    // create has returned, so the runtime has connected and sent by now.
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let stream = match listener.accept() {
        Ok((stream, _)) => stream,
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            panic!("create never connected to the console socket")
        }
        Err(e) => panic!("accept on the console socket: {e}"),
    };
    stream.set_nonblocking(false).expect("blocking stream");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("console socket timeout");
    let master = recv_fd(&stream);
    c.start();
    let out = read_to_end(master).replace('\r', "");
    c.wait_status("stopped");
    out
}

/// Runs `script` with two extra open files inherited as fds 3 and 4 (not
/// close-on-exec), passing `--preserve-fds N` when given.
fn with_inherited_fds(name: &str, preserve: Option<&str>, script: &str) -> String {
    with_fds(name, preserve, false, script)
}

/// `listen`: hand fd 3 over as systemd socket activation does, with
/// LISTEN_FDS=1 and LISTEN_PID naming the runtime (through a shell that
/// execs it, so the pid is known).
fn with_fds(name: &str, preserve: Option<&str>, listen: bool, script: &str) -> String {
    use std::os::unix::process::CommandExt;
    let c = Container::new(name);
    let secret = c.host_dir("fds").join("secret");
    std::fs::write(&secret, "passed through\n").expect("write secret");
    c.edit(|cfg| set_sh(cfg, script));
    let files = [
        std::fs::File::open(&secret).expect("open secret"),
        std::fs::File::open(&secret).expect("open secret"),
    ];
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let mut args = vec!["run"];
    if let Some(n) = preserve {
        args.extend(["--preserve-fds", n]);
    }
    let bundle = c.bundle.to_string_lossy().into_owned();
    args.extend(["--bundle", &bundle, &c.id]);
    let mut cmd = c.command(&args);
    if listen {
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"", "sh"])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        if let Some(dir) = cmd.get_current_dir() {
            sh.current_dir(dir);
        }
        cmd = sh;
    }
    // SAFETY: only async-signal-safe dup2 calls between fork and exec. The
    // files go to high fds first, as they may already sit on 3 or 4, and
    // dup2 leaves close-on-exec off on the copies.
    unsafe {
        cmd.pre_exec(move || {
            for (high, fd) in [(100, raw[0]), (101, raw[1])] {
                if libc::dup2(fd, high) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, high) in [(3, 100), (4, 101)] {
                if libc::dup2(high, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    exec(&mut cmd).ok().to_string()
}

#[test]
fn preserve_fds_passes_exactly_the_given_fds() {
    let out = with_inherited_fds(
        "preserve_fds",
        Some("1"),
        "cat <&3; test -e /proc/self/fd/4 && echo fd4 leaked; echo end",
    );
    assert_eq!(out, "passed through\nend\n");
}

#[test]
fn inherited_fds_do_not_leak_without_preserve_fds() {
    let out = with_inherited_fds(
        "no_preserve_fds",
        None,
        "for fd in 3 4; do test -e /proc/self/fd/$fd && echo fd$fd leaked; done; echo end",
    );
    assert_eq!(out, "end\n");
}

/// `run` with terminal:true and no --console-socket owns the pty itself:
/// it proxies it to its own stdio (here a pty made by script(1)).
#[test]
fn run_in_the_foreground_proxies_a_terminal() {
    let c = Container::new("fg_tty");
    c.edit(|cfg| {
        cfg["process"]["terminal"] = json!(true);
        set_sh(cfg, "tty; test -t 0 && echo stdin-is-a-tty; exit 7");
    });
    let line = format!(
        "{} --root {} run --bundle {} {}; echo \"exit=$?\"",
        runtime(),
        p(&c.root),
        p(&c.bundle),
        c.id
    );
    let out = exec(std::process::Command::new("script").args(["-qec", &line, "/dev/null"]));
    // script(1) may send a NUL when its stdin ends; the pty echoes it,
    // raw or (with echoctl) as "^@".
    let text = out.ok().replace(['\r', '\0'], "").replace("^@", "");
    assert!(text.contains("/dev/pts/0\nstdin-is-a-tty\n"), "{text}");
    assert!(text.contains("exit=7"), "{text}");
}

/// podman hands systemd's NOTIFY_SOCKET to the runtime: the container gets
/// the socket bind-mounted and its own NOTIFY_SOCKET pointing at it.
#[test]
fn notify_socket_is_passed_into_the_container() {
    if is_runc() {
        // runc binds its own notify socket under --root, and this harness's
        // root path is longer than a unix socket path may be (108 bytes).
        skipped("NOTE: runc cannot bind its notify socket under this test's long --root; only checked for brig");
        return;
    }
    let c = Container::new("notify_socket");
    let sock_path = c.host_dir("notify").join("notify.sock");
    let _sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind notify socket");
    c.edit(|cfg| {
        set_sh(
            cfg,
            "echo \"$NOTIFY_SOCKET\"; test -S \"$NOTIFY_SOCKET\" && echo is-a-socket",
        )
    });
    let bundle = c.bundle.to_string_lossy().into_owned();
    let mut cmd = c.command(&["run", "--bundle", &bundle, &c.id]);
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let out = exec(&mut cmd);
    let text = out.ok();
    let inside = text.lines().next().unwrap_or_default();
    assert!(!inside.is_empty(), "no NOTIFY_SOCKET inside: {out}");
    assert!(text.contains("is-a-socket"), "{out}");
}

/// socket activation: LISTEN_FDS fds are passed on and announced as the
/// container's (LISTEN_PID=1).
#[test]
fn listen_fds_are_passed_into_the_container() {
    let out = with_fds(
        "listen_fds",
        None,
        true,
        "echo \"$LISTEN_FDS $LISTEN_PID\"; cat <&3",
    );
    assert_eq!(out, "1 1\npassed through\n");
}

/// A cwd the rootfs lacks is made before the root goes read-only.
#[test]
fn a_missing_cwd_is_made_under_a_read_only_root() {
    let out = run_in_container(
        "cwd_ro",
        |cfg| {
            cfg["root"]["readonly"] = json!(true);
            cfg["process"]["cwd"] = json!("/made/for/cwd");
        },
        &["pwd"],
    );
    assert_eq!(out.ok(), "/made/for/cwd\n");
}

/// A capability the kernel will not grant (this VM's bounding set lacks
/// CAP_SYS_RESOURCE; any cap above the host's last one would do as well)
/// fails `create` itself, not the start after it; nothing is left.
#[test]
fn a_capability_the_kernel_refuses_fails_create() {
    let host_bnd = fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .expect("CapBnd");
    let bnd = u64::from_str_radix(&host_bnd, 16).expect("hex");
    if bnd & (1 << 24) != 0 {
        panic!("this host grants CAP_SYS_RESOURCE: the test needs a capability the kernel refuses");
    }
    let c = Container::new("cap_refused");
    c.edit(|cfg| {
        set_args(cfg, &["sleep", "60"]);
        for set in ["bounding", "effective", "permitted"] {
            cfg["process"]["capabilities"][set]
                .as_array_mut()
                .expect("capability set")
                .push(json!("CAP_SYS_RESOURCE"));
        }
    });
    let out = c.try_create(&[]);
    assert!(!out.success(), "create succeeded: {out}");
    c.assert_gone(None);
}

/// The pty slave belongs to the process's user (and keeps the tty group),
/// so that a non-root process can use its own terminal, as runc does.
#[test]
fn the_pty_belongs_to_the_process_user() {
    let c = Container::new("console_owner");
    c.edit(|cfg| {
        cfg["process"]["terminal"] = json!(true);
        cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        set_sh(cfg, "stat -c %u:%g $(tty)");
    });
    let out = run_on_console_socket(&c);
    assert_eq!(out, "1000:5\n", "owner of the container's pty");
}

/// linux.memoryPolicy reaches the container's process and an exec'd one
/// (set_mempolicy: numa_maps shows the policy of every mapping).
#[test]
fn memory_policy_applies_to_init_and_exec() {
    if is_runc() {
        skipped("NOTE: runc 1.1.5 has no linux.memoryPolicy (runtime-spec 1.3)");
        return;
    }
    let c = Container::running("numa_policy", |cfg| {
        cfg["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    let init = fs::read_to_string(format!("/proc/{}/numa_maps", c.pid())).expect("numa_maps");
    assert!(
        init.lines().any(|l| l.contains(" bind:0 ")),
        "init:\n{init}"
    );
    let out = c.cmd(&["exec", &c.id, "cat", "/proc/self/numa_maps"]);
    assert!(out.ok().lines().any(|l| l.contains(" bind:0 ")), "{out}");
}

/// process.execCPUAffinity's final list pins an exec'd process.
#[test]
fn exec_cpu_affinity_pins_the_process() {
    if is_runc() {
        skipped("NOTE: runc 1.1.5 has no process.execCPUAffinity (runtime-spec 1.2)");
        return;
    }
    let c = Container::running("exec_affinity", |_| {});
    let pjson = c.dir.join("p.json");
    fs::write(
        &pjson,
        json!({"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
               "env": ["PATH=/bin"], "execCPUAffinity": {"initial": "0", "final": "0"}})
        .to_string(),
    )
    .expect("write process.json");
    let out = c.cmd(&["exec", "--process", p(&pjson), &c.id]);
    assert_eq!(out.ok().split_whitespace().last(), Some("0"), "{out}");
}

/// A terminal in a container whose /dev is mounted read-only: the console
/// is bound onto /dev/console, which must be there before /dev goes
/// read-only.
#[test]
fn a_terminal_with_a_read_only_dev() {
    let c = Container::new("console_ro_dev");
    c.edit(|cfg| {
        cfg["process"]["terminal"] = json!(true);
        for m in cfg["mounts"].as_array_mut().expect("mounts") {
            if m["destination"] == "/dev" {
                m["options"]
                    .as_array_mut()
                    .expect("options")
                    .push(json!("ro"));
            }
        }
        set_sh(cfg, "tty; touch /dev/x 2>/dev/null || echo dev-ro");
    });
    let out = run_on_console_socket(&c);
    assert_eq!(out, "/dev/pts/0\ndev-ro\n");
}

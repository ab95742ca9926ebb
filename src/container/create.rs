//! `create`: claim the id, clone init, wait until it is ready, record it.

use super::record::{State, Status};
use super::store::{Locked, Store};
use crate::cgroups;
use crate::error::{Error, IoContext, Result};
use crate::hooks::{self, Point};
use crate::linux::procfs;
use crate::process::sync::Msg;
use crate::process::{self, fifo, Launch, Spawned, Wait};
use crate::spec::Bundle;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct Options {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// Unprivileged, or root only of a user namespace: cgroups are used
    /// only where delegated, and (when not root at all) the container
    /// needs a user namespace.
    pub rootless: bool,
}

/// Whether init waits on the exec fifo for `start`, or on the parent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Run,
}

pub struct Created {
    pub container: Locked,
    pub init: Spawned,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// The id checked, then the bundle loaded and validated: what `create`
/// takes (`run` looks at it first, to know whether it owns a terminal).
pub fn load(id: &str, o: &Options) -> Result<Bundle> {
    super::store::validate_id(id)?;
    Bundle::load(&o.bundle)
}

/// Creates the container from a bundle [`load`]ed for it. `console`
/// overrides --console-socket (run uses its own socketpair to proxy a
/// terminal).
pub fn create(
    store: &Store,
    id: &str,
    mut bundle: Bundle,
    o: &Options,
    mode: Mode,
    console: Option<OwnedFd>,
) -> Result<Created> {
    let o = &pass_systemd_env(&mut bundle, o)?;
    let terminal = bundle.terminal();
    let console = match (terminal, console, &o.console_socket) {
        (false, _, Some(_)) => {
            return Err(Error::Other(
                "--console-socket given but process.terminal is false".into(),
            ))
        }
        (false, _, None) => None,
        (true, Some(fd), _) => Some(fd),
        (true, None, Some(path)) => Some(connect_console(path)?),
        (true, None, None) => {
            return Err(Error::Other(
                "process.terminal is true: --console-socket is required".into(),
            ))
        }
    };
    // Root of a user namespace (under rootless podman) is fine without one.
    if o.rootless && !nix::unistd::geteuid().is_root() && !bundle.has_user_namespace() {
        return Err(Error::Config {
            path: bundle.dir.join("config.json"),
            msg: "rootless: linux.namespaces needs a \"user\" namespace \
                  (`brig spec --rootless` writes such a spec)"
                .into(),
        });
    }
    let linux = bundle.spec.linux().as_ref();
    let cgroup_rel = cgroups::resolve(linux.and_then(|l| l.cgroups_path().as_deref()), id)?;
    // Checked before anything exists, so bad rules leave nothing behind.
    let device_rules = cgroups::devices::rules(&bundle.spec)?;
    let me = std::process::id() as i32;
    let state = State {
        id: id.to_string(),
        pid: 0,
        pid_start: 0,
        creator: me,
        creator_start: procfs::start_time(me).unwrap_or(0),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: now_rfc3339(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        hooks: bundle.spec.hooks().clone(),
        cgroup: Some(cgroup_rel),
        shared_mounts: !bundle.has_namespace(oci_spec::runtime::LinuxNamespaceType::Mount),
    };
    let mut container = store.claim(state)?;
    crate::fault::point("claimed");
    let made = container
        .save_spec(&bundle.spec)
        .and_then(|()| finish(&mut container, &bundle, o, mode, console, &device_rules));
    match made {
        Ok(init) => Ok(Created { container, init }),
        Err(e) => {
            // Nothing of a failed create may stay behind.
            if let Some(rel) = &container.state.cgroup {
                let _ = super::delete::remove_cgroup(rel);
            }
            if container.state.shared_mounts {
                crate::linux::rootfs::unmount_shared(&container.state.rootfs);
            }
            let hooks = container.state.hooks.clone();
            let state = container.state.to_oci_json(Status::Stopped);
            let _ = container.destroy();
            // A failed create goes on at the spec's delete step: poststop.
            hooks::run_logged(hooks.as_ref(), Point::Poststop, &state);
            Err(e)
        }
    }
}

fn finish(
    c: &mut Locked,
    bundle: &Bundle,
    o: &Options,
    mode: Mode,
    console: Option<OwnedFd>,
    device_rules: &[cgroups::devices::Rule],
) -> Result<Spawned> {
    crate::logging::step("state claimed");
    let resources = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    // Rootless keeps its fallback (no cgroup of its own) on one path: all
    // before the clone.
    let defer = !o.rootless;
    let cgroup = match &c.state.cgroup {
        Some(rel) => {
            let cg = cgroups::open(rel)?;
            // Checked before anything is made: a frozen cgroup that is
            // already there belongs to someone else, and the failure path
            // must not thaw or remove it.
            if let Err(e) = refuse_frozen(&*cg) {
                c.state.cgroup = None;
                return Err(e);
            }
            let made = if defer {
                cg.create_clone_target()
            } else {
                cg.create()
            };
            match made {
                Err(e) if o.rootless && cgroups::rootless::not_delegated(&e) => {
                    // No cgroup of our own: fine unless a limit needs one.
                    cgroups::rootless::check_no_limits(resources, &e)?;
                    crate::logging::debug(&format!("rootless: no cgroup ({e})"));
                    c.state.cgroup = None;
                    None
                }
                Err(e) => return Err(e),
                Ok(()) if defer => {
                    warn_if_busy(&*cg);
                    Some(cg)
                }
                Ok(()) => {
                    warn_if_busy(&*cg);
                    configure_cgroup(&*cg, resources, device_rules, o)?;
                    Some(cg)
                }
            }
        }
        None => None,
    };
    let cgroup_rest = || -> Result<()> {
        if let Some(cg) = &cgroup {
            cg.create_rest()?;
            configure_cgroup(&**cg, resources, device_rules, o)?;
        }
        Ok(())
    };
    let wait = match mode {
        Mode::Create => {
            fifo::make(&c.fifo_path())?;
            crate::fault::point("fifo-made");
            Wait::Fifo(c.fifo_path())
        }
        Mode::Run => Wait::Channel,
    };
    let hooks = bundle.spec.hooks().as_ref();
    // Init stops for hooks only if one runs before the program does.
    let needs_hooks = Point::ALL[..4].iter().any(|p| hooks::any(hooks, *p));
    let state = c.state.clone();
    let on_hooks = move |pid: i32| -> Result<String> {
        let mut s = state.clone();
        s.pid = pid;
        let json = s.to_oci_json(Status::Creating);
        crate::fault::point("hooks");
        hooks::run(hooks, Point::Prestart, &json)?;
        hooks::run(hooks, Point::CreateRuntime, &json)?;
        crate::fault::point("hooks-done");
        Ok(json.to_string())
    };
    let agent = bundle.seccomp.as_ref().and_then(|f| f.listener.as_ref());
    let for_agent = c.state.clone();
    let on_listener = move |pid: i32, fd: std::os::fd::OwnedFd| -> Result<()> {
        let Some(agent) = agent else {
            return Err(Error::Init(
                "a seccomp listener without listenerPath".into(),
            ));
        };
        let mut s = for_agent.clone();
        s.pid = pid;
        let json = s.to_oci_json(Status::Creating);
        crate::linux::seccomp_agent::hand_over(agent, fd, pid, &json)
    };
    let launch = Launch {
        bundle,
        wait,
        console,
        no_pivot: o.no_pivot,
        preserve_fds: o.preserve_fds,
        session_keyring: (!o.no_new_keyring).then(|| c.state.id.clone()),
        on_hooks: needs_hooks.then_some(&on_hooks as &dyn Fn(i32) -> Result<String>),
        on_listener: agent
            .map(|_| &on_listener as &dyn Fn(i32, std::os::fd::OwnedFd) -> Result<()>),
        cgroup: cgroup.as_deref(),
        cgroup_rest: (defer && cgroup.is_some()).then_some(&cgroup_rest as &dyn Fn() -> Result<()>),
    };
    let init = process::spawn(&launch)?;
    crate::fault::point("init-ready");
    c.state.pid = init.pid;
    c.state.pid_start = procfs::start_time(init.pid).unwrap_or(0);
    crate::fault::point("save-state");
    crate::fault::no_space("save-state").at(c.dir.join("state.json"))?;
    c.save()?;
    crate::fault::point("state-saved");
    if let Some(p) = &o.pid_file {
        crate::fault::point("pid-file");
        write_pid_file(p, init.pid)?;
        crate::fault::point("pid-file-written");
    }
    if mode == Mode::Create {
        init.channel.send(&Msg::Saved)?;
        match init.channel.recv()? {
            Some(Msg::Saved) => {}
            other => {
                return Err(crate::Error::Init(format!(
                    "init did not acknowledge its state: {other:?}"
                )))
            }
        }
    }
    Ok(init)
}

/// A cgroup that exists already and is frozen would freeze init as soon as
/// it is in it, and create would wait for it for ever: refused, as runc does.
fn refuse_frozen(cg: &dyn cgroups::Cgroup) -> Result<()> {
    if cg.is_frozen() {
        return Err(Error::Other(format!(
            "container's cgroup unexpectedly frozen: {} (thaw it or choose another cgroupsPath)",
            cg.path().display()
        )));
    }
    Ok(())
}

/// Processes already in the cgroup would share the container's limits and
/// be killed with it: worth a warning, as runc gives. Before the clone only
/// (init is in it afterwards).
fn warn_if_busy(cg: &dyn cgroups::Cgroup) {
    if let Ok(pids) = cg.pids() {
        if !pids.is_empty() {
            crate::logging::warn(&format!(
                "container's cgroup is not empty: {} process(es) found in {}",
                pids.len(),
                cg.path().display()
            ));
        }
    }
}

/// Limits and device rules, into a cgroup whose directories are all made.
fn configure_cgroup(
    cg: &dyn cgroups::Cgroup,
    resources: Option<&oci_spec::runtime::LinuxResources>,
    device_rules: &[cgroups::devices::Rule],
    o: &Options,
) -> Result<()> {
    crate::logging::step("cgroup created");
    crate::fault::point("cgroup-created");
    if let Some(r) = resources {
        cg.set(r)?;
    }
    // A user namespace already keeps an unprivileged user from device
    // nodes; the device cgroup is root's to set.
    if !o.rootless {
        cg.set_devices(device_rules)?;
    }
    crate::logging::step("cgroup configured");
    crate::fault::point("cgroup-configured");
    Ok(())
}

/// What systemd-aware callers (podman) hand the runtime through its
/// environment, passed on as runc does: NOTIFY_SOCKET becomes a bind mount
/// of the socket at /run/notify/notify.sock and the container's
/// NOTIFY_SOCKET; LISTEN_FDS adds its fds to the preserved ones and tells
/// the container they are its (LISTEN_PID=1).
fn pass_systemd_env(bundle: &mut Bundle, o: &Options) -> Result<Options> {
    let mut o = o.clone();
    let notify = std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from);
    // systemd's rule: the fds are ours only if LISTEN_PID names us.
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let listen: Option<i32> = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| for_us);
    if notify.is_none() && listen.is_none() {
        return Ok(o);
    }
    let mut v =
        serde_json::to_value(&bundle.spec).map_err(|e| Error::Other(format!("spec: {e}")))?;
    let mut env_add = Vec::new();
    if let Some(sock) = notify {
        let inside = "/run/notify/notify.sock";
        let mount = serde_json::json!({
            "destination": inside, "type": "bind", "source": sock, "options": ["bind", "nosuid", "nodev"]
        });
        match v["mounts"].as_array_mut() {
            Some(m) => m.push(mount),
            None => v["mounts"] = serde_json::json!([mount]),
        }
        env_add.push(format!("NOTIFY_SOCKET={inside}"));
    }
    if let Some(n) = listen.filter(|n| *n > 0) {
        env_add.push(format!("LISTEN_FDS={n}"));
        env_add.push("LISTEN_PID=1".into());
        o.preserve_fds += n;
    }
    match v["process"]["env"].as_array_mut() {
        Some(env) => env.extend(env_add.into_iter().map(serde_json::Value::from)),
        None => v["process"]["env"] = serde_json::json!(env_add),
    }
    bundle.spec = serde_json::from_value(v).map_err(|e| Error::Other(format!("spec: {e}")))?;
    Ok(o)
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).at(path)?;
    Ok(s.into())
}

/// Written next to its final name and renamed, so readers (containerd's
/// shim polls it) never see a partial pid.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().at(".")?.join(path)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, pid.to_string()).at(&tmp)?;
    std::fs::rename(&tmp, &path).at(&path)
}

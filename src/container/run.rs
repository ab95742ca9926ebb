//! `run`: create and start in one process, then (unless detached) wait in
//! the foreground, forwarding signals and proxying a terminal.

use super::create::{self, Mode};
use super::foreground;
use super::store::Store;
use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, Point};
use crate::process::sync::Msg;

pub struct Options {
    pub create: create::Options,
    pub detach: bool,
    /// Leave the stopped container (state, cgroup) for a later delete.
    pub keep: bool,
    /// SIGKILL the container this long after a stop signal (see
    /// [`foreground::wait`]); None forwards signals and nothing more, as runc.
    pub kill_after: Option<std::time::Duration>,
}

/// Runs the container; returns the exit code `brig run` should exit with.
pub fn run(store: &Store, id: &str, o: &Options) -> Result<i32> {
    let bundle = create::load(id, &o.create)?;
    let terminal = bundle.terminal();
    // Without a console socket, run owns the terminal: init sends the pty
    // master to our end of this pair.
    let own_tty = terminal && o.create.console_socket.is_none();
    if own_tty && o.detach {
        return Err(Error::Other(
            "process.terminal with --detach needs --console-socket".into(),
        ));
    }
    let (ours, theirs) = if own_tty {
        let (a, b) = foreground::console_pair()?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    // The pid namespace may need an extra fork; as subreaper we still get
    // init's exit status. Signals are blocked before cloning so none is lost.
    nix::sys::prctl::set_child_subreaper(true).sys(|| "PR_SET_CHILD_SUBREAPER".into())?;
    let forwarded = foreground::forwarded_signals();
    if !o.detach {
        forwarded.thread_block().sys(|| "blocking signals".into())?;
    }
    let created = create::create(store, id, bundle, &o.create, Mode::Run, theirs)?;
    let init = created.init;
    let pid = init.pid;
    let record = created.container.state.clone();
    // Release the lock: others may `state`/`kill` the running container.
    drop(created.container);
    let master = match &ours {
        Some(sock) => Some(foreground::recv_master(sock)?),
        None => None,
    };
    crate::logging::step("start");
    init.channel.send(&Msg::Start)?;
    // The channel closes on exec; an error before that is init's last word.
    if let Some(Msg::Error(e)) = init.channel.recv()? {
        let _ = cleanup(store, id);
        return Err(Error::Init(e));
    }
    hooks::run_logged(
        record.hooks.as_ref(),
        Point::Poststart,
        &record.to_oci_json(super::Status::Running),
    );
    if o.detach {
        return Ok(0);
    }
    let code = foreground::wait(pid, &forwarded, master.as_ref(), o.kill_after);
    crate::logging::step("exited");
    if o.keep {
        return code;
    }
    let _ = cleanup(store, id);
    crate::logging::step("deleted");
    code
}

/// run removes what it made once the container has exited, as runc does.
fn cleanup(store: &Store, id: &str) -> Result<()> {
    super::delete::delete(store, id, true)
}

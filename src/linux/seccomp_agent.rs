//! Hands a seccomp filter's listener to the agent at `listenerPath`, as
//! the runtime spec says: one connection per listener, one message (the
//! container process state, with the fd as SCM_RIGHTS), then closed.
//!
//! The parent does this (never the container's process, which sits in the
//! container's mount namespace where the path means nothing), as soon as
//! it has received the listener. Until then a notified syscall of the
//! container waits; once the agent is gone and every copy of the listener
//! closed, the kernel fails notified syscalls with ENOSYS.

use super::seccomp::Listener;
use crate::error::{Error, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The name of the listener in the state's `fds` (runtime spec).
const SECCOMP_FD_NAME: &str = "seccompFd";

/// Sends `fd` with the container process state of process `pid` and the
/// container `state` (the OCI state JSON) to the agent.
pub fn hand_over(
    listener: &Listener,
    fd: OwnedFd,
    pid: i32,
    state: &serde_json::Value,
) -> Result<()> {
    let path = &listener.path;
    let mut message = serde_json::json!({
        "ociVersion": state["ociVersion"],
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if !listener.metadata.is_empty() {
        message["metadata"] = serde_json::json!(listener.metadata);
    }
    let body = message.to_string();
    let sock = UnixStream::connect(path).map_err(|e| {
        Error::Other(format!(
            "linux.seccomp.listenerPath {}: failed to connect with seccomp agent: {e}",
            path.display()
        ))
    })?;
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(body.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == body.len() => return Ok(()),
            Ok(n) => {
                return Err(Error::Other(format!(
                    "seccomp agent at {}: sent {n} of {} bytes of the container process state",
                    path.display(),
                    body.len()
                )))
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("sending the seccomp listener to {}", path.display()),
                    e,
                ))
            }
        }
    }
}

//! `brig-probe seccomp-agent SOCKET LOG`: a seccomp agent as the runtime
//! spec describes one, for the tests of SCMP_ACT_NOTIFY. It runs on the
//! host, listens on SOCKET, appends each container process state it gets
//! to LOG (one JSON line, the fds it came with counted in "received_fds"),
//! and serves the listener:
//! - mkdir(2)/mkdirat(2) of PATH makes PATH-METADATA instead (in the
//!   process's root or cwd), so a test sees that the agent acted;
//! - chmod(2), fchmod(2), fchmodat(2) fail with ENOMEDIUM;
//! - everything else continues as if not notified.
//!
//! Only for tests: it trusts the paths it reads from the process.

use serde_json::{json, Value};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;

const NR_MKDIR: i32 = 83;
const NR_CHMOD: i32 = 90;
const NR_FCHMOD: i32 = 91;
const NR_MKDIRAT: i32 = 258;
const NR_FCHMODAT: i32 = 268;
const NR_FCHMODAT2: i32 = 452;

pub fn main(args: &[String]) -> i32 {
    let (Some(socket), Some(log)) = (args.first(), args.get(1)) else {
        eprintln!("usage: brig-probe seccomp-agent SOCKET LOG");
        return 2;
    };
    let _ = std::fs::remove_file(socket);
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("seccomp-agent: {socket}: {e}");
            return 1;
        }
    };
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (state, fds) = match receive(conn.as_raw_fd()) {
            Ok(got) => got,
            Err(e) => {
                eprintln!("seccomp-agent: receiving: {e}");
                continue;
            }
        };
        let mut line = state.clone();
        line["received_fds"] = json!(fds.len());
        super::append_line(log, &line);
        let index = state["fds"]
            .as_array()
            .and_then(|names| names.iter().position(|n| n == "seccompFd"));
        let metadata = state["metadata"].as_str().unwrap_or("").to_string();
        if let Some(fd) = index.and_then(|i| fds.into_iter().nth(i)) {
            std::thread::spawn(move || serve(fd, &metadata));
        }
    }
    0
}

/// One message of the connection: the state JSON and the fds with it.
fn receive(sock: RawFd) -> Result<(Value, Vec<OwnedFd>), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave this process these fds; nothing else owns them.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let n = msg.bytes;
    let state = serde_json::from_slice(&buf[..n]).map_err(|e| e.to_string())?;
    Ok((state, fds))
}

/// Answers notifications until no process uses the filter any more.
fn serve(fd: OwnedFd, metadata: &str) {
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes one pollfd we own.
        if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: every process of the filter is gone.
            return;
        }
        // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV fills one seccomp_notif we own.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
            continue;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        let args = req.data.args;
        let mkdir = match req.data.nr {
            NR_MKDIR => Some((libc::AT_FDCWD, args[0], args[1])),
            NR_MKDIRAT => Some((args[0] as i32, args[1], args[2])),
            NR_CHMOD | NR_FCHMOD | NR_FCHMODAT | NR_FCHMODAT2 => {
                resp.flags = 0;
                resp.error = -libc::ENOMEDIUM;
                None
            }
            _ => None,
        };
        if let Some((dirfd, addr, mode)) = mkdir {
            resp.flags = 0;
            let made = read_string(req.pid, addr)
                .filter(|_| dirfd == libc::AT_FDCWD)
                .and_then(|path| make_dir(req.pid, &path, metadata, mode as u32).ok());
            if made.is_none() {
                resp.error = -libc::ENOSYS;
            }
        }
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp we own.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}

/// The NUL-terminated string at `addr` in process `pid`.
fn read_string(pid: u32, addr: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < 4096 {
        // Never across a page: the next one may be unmapped.
        let mut chunk = vec![0u8; (4096 - at % 4096) as usize];
        let n = mem.read_at(&mut chunk, at).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return String::from_utf8(out).ok();
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

fn make_dir(pid: u32, path: &str, metadata: &str, mode: u32) -> std::io::Result<()> {
    let base = if path.starts_with('/') { "root" } else { "cwd" };
    let target = format!("/proc/{pid}/{base}/{path}-{metadata}");
    std::fs::DirBuilder::new().mode(mode).create(target)
}

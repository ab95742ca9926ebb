//! The parent <-> init channel: a SOCK_SEQPACKET socketpair carrying small
//! tagged messages, one per step of the protocol.
//!
//! init -> parent: `MapsNeeded` (write my id maps), `Pid` (the real init, after
//! an extra fork), `Hooks` (rootfs built: run the runtime's hooks), `Ready`
//! (set up, waiting for start), `Error`.
//! parent -> init: `MapsDone`, `HooksDone` (with the state JSON the
//! container's own hooks read), `Start` (run's shortcut past the exec fifo),
//! `Joined` and `CgroupReady` (see each). `Listener` (init or exec's
//! helper -> parent) carries a seccomp listener as SCM_RIGHTS.

use crate::error::{Error, Result, SysContext};
use nix::sys::socket::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, PartialEq)]
pub enum Msg {
    MapsNeeded,
    MapsDone,
    Pid(i32),
    Ready,
    Start,
    Error(String),
    Hooks,
    HooksDone(String),
    /// parent -> init: you are in the container's cgroup now.
    Joined,
    /// parent -> init: the container's cgroup, made and configured after
    /// the clone, is there to join.
    CgroupReady,
    /// parent -> init: your pid is recorded; you may outlive me (and init's
    /// answer: I no longer die with you).
    Saved,
    /// -> parent: the seccomp filter's listener, sent as SCM_RIGHTS with
    /// this message, for the agent.
    Listener,
}

const MAX: usize = 64 * 1024;

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, body): (u8, Vec<u8>) = match self {
            Msg::MapsNeeded => (1, vec![]),
            Msg::MapsDone => (2, vec![]),
            Msg::Pid(p) => (3, p.to_le_bytes().to_vec()),
            Msg::Ready => (4, vec![]),
            Msg::Start => (5, vec![]),
            Msg::Error(s) => (6, s.as_bytes()[..s.len().min(MAX - 1)].to_vec()),
            Msg::Hooks => (7, vec![]),
            Msg::HooksDone(s) => (8, s.as_bytes()[..s.len().min(MAX - 1)].to_vec()),
            Msg::Joined => (9, vec![]),
            Msg::Saved => (10, vec![]),
            Msg::CgroupReady => (11, vec![]),
            Msg::Listener => (12, vec![]),
        };
        let mut v = Vec::with_capacity(body.len() + 1);
        v.push(tag);
        v.extend(body);
        v
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let (&tag, body) = b.split_first()?;
        Some(match tag {
            1 => Msg::MapsNeeded,
            2 => Msg::MapsDone,
            3 => Msg::Pid(i32::from_le_bytes(body.try_into().ok()?)),
            4 => Msg::Ready,
            5 => Msg::Start,
            6 => Msg::Error(String::from_utf8_lossy(body).into_owned()),
            7 => Msg::Hooks,
            8 => Msg::HooksDone(String::from_utf8_lossy(body).into_owned()),
            9 => Msg::Joined,
            10 => Msg::Saved,
            11 => Msg::CgroupReady,
            12 => Msg::Listener,
            _ => return None,
        })
    }
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .sys(|| "socketpair".into())?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        loop {
            match send(self.fd.as_raw_fd(), &m.encode(), MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("sync: sending {m:?}"), e)),
            }
        }
    }

    /// Sends `m` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, m: &Msg, fd: BorrowedFd) -> Result<()> {
        let body = m.encode();
        let iov = [IoSlice::new(&body)];
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys(format!("sync: sending {m:?}"), e)),
            }
        }
    }

    /// The next message; `None` when the other side is gone. An fd sent
    /// along is closed: see [`Channel::recv_fd`].
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// The next message and the fd sent with it, if any.
    pub fn recv_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let got = recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let msg = match got {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sync: receiving", e)),
            };
            let mut fd = None;
            for c in msg.cmsgs().map_err(|e| Error::sys("sync: receiving", e))? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: SCM_RIGHTS gave this process a new fd that nothing else owns.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            let n = msg.bytes;
            if n == 0 {
                return Ok(None);
            }
            return Msg::decode(&buf[..n])
                .map(|m| Some((m, fd)))
                .ok_or_else(|| Error::Other("sync: malformed message".into()));
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::MapsNeeded,
            Msg::MapsDone,
            Msg::Pid(4242),
            Msg::Ready,
            Msg::Start,
            Msg::Error("boom: /x".into()),
            Msg::Hooks,
            Msg::Joined,
            Msg::Saved,
            Msg::CgroupReady,
            Msg::Listener,
            Msg::HooksDone("{\"id\":\"x\"}".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        a.send_fd(&Msg::Listener, std::os::fd::AsFd::as_fd(&file))
            .unwrap();
        let (m, fd) = b.recv_fd().unwrap().unwrap();
        assert_eq!(m, Msg::Listener);
        let sent = nix::sys::stat::fstat(&file).unwrap();
        let got = nix::sys::stat::fstat(fd.expect("an fd")).unwrap();
        assert_eq!((sent.st_dev, sent.st_ino), (got.st_dev, got.st_ino));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}

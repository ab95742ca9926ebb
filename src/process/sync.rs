//! The parent <-> init channel: a SOCK_SEQPACKET socketpair carrying small
//! tagged messages, one per step of the protocol.
//!
//! init -> parent: `MapsNeeded` (write my id maps), `Pid` (the real init, after
//! an extra fork), `Hooks` (rootfs built: run the runtime's hooks), `Ready`
//! (set up, waiting for start), `Error`.
//! parent -> init: `MapsDone`, `HooksDone` (with the state JSON the
//! container's own hooks read), `Start` (run's shortcut past the exec fifo),
//! `Joined` and `CgroupReady` (see each).

use crate::error::{Error, Result, SysContext};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

    /// The next message; `None` when the other side is gone.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; MAX];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    return Msg::decode(&buf[..n])
                        .map(Some)
                        .ok_or_else(|| Error::Other("sync: malformed message".into()))
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sync: receiving", e)),
            }
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
            Msg::HooksDone("{\"id\":\"x\"}".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}

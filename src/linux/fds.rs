//! The file descriptors a process may hold while it is, or is about to be,
//! inside a container.
//!
//! A container process with CAP_SYS_PTRACE reads and opens the fds of every
//! process in its pid namespace, whatever their dumpability: an fd of a host
//! directory held there is a way out. So a process that enters a container
//! first closes everything it inherited except what it names, and only then
//! enters.

use crate::error::{Error, Result};
use std::os::fd::RawFd;

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

fn close_range(first: u32, last: u32, flags: libc::c_uint) -> Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range only closes (or marks) fds of this process, and the
    // callers own every fd in the range: nothing else uses them afterwards.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if r != 0 {
        return Err(Error::sys("close_range", nix::Error::last()));
    }
    Ok(())
}

/// The gaps between the kept fds, from `first` up: the ranges to close.
fn gaps(first: RawFd, keep: &[RawFd]) -> Vec<(u32, u32)> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut out = Vec::new();
    let mut from = first.max(0) as u32;
    for k in keep {
        if k > from {
            out.push((from, k - 1));
        }
        from = k + 1;
    }
    out.push((from, u32::MAX));
    out
}

/// Closes every fd from `first` up except those in `keep`. Objects that
/// still hold a closed number must never be dropped afterwards (the callers
/// end in exec or _exit), or they would close whatever reuses it.
pub fn close_all_except(first: RawFd, keep: &[RawFd]) -> Result<()> {
    gaps(first, keep)
        .into_iter()
        .try_for_each(|(a, b)| close_range(a, b, 0))
}

/// Marks every fd from `first` up close-on-exec.
pub fn cloexec_from(first: RawFd) -> Result<()> {
    close_range(first.max(0) as u32, u32::MAX, CLOSE_RANGE_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_skip_the_kept_fds_and_ignore_those_below_first() {
        assert_eq!(gaps(3, &[]), vec![(3, u32::MAX)]);
        assert_eq!(gaps(3, &[7, 5, 1, 7]), vec![(3, 4), (6, 6), (8, u32::MAX)]);
        assert_eq!(gaps(3, &[3, 4]), vec![(5, u32::MAX)]);
    }

    #[test]
    fn closes_all_but_the_kept_fd() {
        // Far above anything the test harness holds.
        let at = |n: RawFd| -> RawFd {
            let f = std::fs::File::open("/dev/null").expect("open /dev/null");
            // SAFETY: dup2 onto an fd number this test owns.
            let fd = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&f), n) };
            assert_eq!(fd, n, "dup2");
            fd
        };
        let (a, b, c) = (at(900), at(901), at(902));
        close_all_except(900, &[b]).expect("close_range");
        let is_open = |fd: RawFd| {
            // SAFETY: F_GETFD only asks about the fd.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0
        };
        assert!(!is_open(a) && is_open(b) && !is_open(c));
        close_all_except(900, &[]).expect("close_range");
        assert!(!is_open(b));
    }
}

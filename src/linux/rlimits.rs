//! process.rlimits.

use crate::error::{Error, Result};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let lim = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit with a valid resource id and a valid struct.
        if unsafe { libc::setrlimit(resource(l.typ()), &lim) } != 0 {
            let err = nix::Error::last();
            let mut what = format!(
                "setrlimit {:?} soft={} hard={}",
                l.typ(),
                l.soft(),
                l.hard()
            );
            if err == nix::Error::EPERM {
                // Raising a hard limit takes CAP_SYS_RESOURCE in the host's
                // user namespace: rootless containers (and this VM) lack it.
                let mut now = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit with a valid resource id into a valid struct.
                if unsafe { libc::getrlimit(resource(l.typ()), &mut now) } == 0 {
                    what.push_str(&format!(
                        " (above the hard limit {} we have, which takes CAP_SYS_RESOURCE)",
                        now.rlim_max
                    ));
                }
            }
            return Err(Error::sys(what, err));
        }
    }
    Ok(())
}

//! The device rules a container's cgroup enforces: the spec's
//! linux.resources.devices, plus what every container needs to work.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

/// One rule, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a', 'c' or 'b'.
    pub kind: char,
    /// None: any.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl Rule {
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule> {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::P => {
                return Err(Error::Other(
                    "linux.resources.devices: type \"p\" cannot be controlled by a cgroup".into(),
                ))
            }
        };
        let given = d.access().clone().unwrap_or_else(|| "rwm".into());
        // runc keeps r, w and m and drops any other letter ("rwa" is "rw");
        // what is left must still grant something.
        let access: String = given.chars().filter(|c| "rwm".contains(*c)).collect();
        if access.is_empty() {
            return Err(Error::Other(format!(
                "linux.resources.devices: access {given:?} has none of r, w and m"
            )));
        }
        let number = |n: Option<i64>, what: &str| match n {
            None | Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n)),
            Some(n) => Err(Error::Other(format!(
                "linux.resources.devices: {what} {n} is negative"
            ))),
        };
        Ok(Rule {
            allow: d.allow(),
            kind,
            major: number(d.major(), "major")?,
            minor: number(d.minor(), "minor")?,
            access,
        })
    }

    /// Back to the spec's form, for the cgroup v2 device filter.
    pub fn to_spec(&self) -> LinuxDeviceCgroup {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(self.allow);
        d.set_typ(Some(match self.kind {
            'c' => LinuxDeviceType::C,
            'b' => LinuxDeviceType::B,
            _ => LinuxDeviceType::A,
        }));
        d.set_major(self.major);
        d.set_minor(self.minor);
        d.set_access(Some(self.access.clone()));
        d
    }

    /// The devices.allow/deny line of cgroup v1: "c 1:3 rwm".
    pub fn v1_line(&self) -> String {
        let n = |x: Option<i64>| x.map_or("*".to_string(), |v| v.to_string());
        if self.kind == 'a' {
            return "a".to_string();
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
    Rule {
        allow: true,
        kind,
        major,
        minor,
        access: access.into(),
    }
}

/// The spec's rules in order, then the devices brig itself puts in /dev
/// (as runc appends them): a container whose spec denies everything still
/// gets a working /dev/null and ptys. Nodes listed in linux.devices are
/// made, but get no rule of their own: the spec's rules decide, as in runc
/// (an automatic rwm would open /dev/kmsg under a deny-all rule).
pub fn rules(spec: &Spec) -> Result<Vec<Rule>> {
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_deref())
        .unwrap_or(&[]);
    rules_from(listed)
}

/// The same from the spec's rules alone, for `update`.
pub fn rules_from(listed: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in listed {
        out.push(Rule::from_spec(d)?);
    }
    if out.is_empty() {
        return Ok(out);
    }
    // runc's allowed devices: the nodes every container gets, ptys, tun.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        out.push(allow('c', Some(major), Some(minor), "rwm"));
    }
    // Any pty of the container's devpts, and mknod of anything (the
    // access check happens at open).
    out.push(allow('c', Some(136), None, "rwm"));
    out.push(allow('c', None, None, "m"));
    out.push(allow('b', None, None, "m"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_render_as_v1_lines() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[
                {"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":200,"access":"rw"}]}}}"#,
        )
        .unwrap();
        let r = rules(&spec).unwrap();
        assert_eq!(r[0].v1_line(), "a");
        assert!(!r[0].allow);
        assert_eq!(r[1].v1_line(), "c 10:200 rw");
        assert!(r.iter().any(|x| x.v1_line() == "c 1:3 rwm"));
        assert!(r.iter().any(|x| x.v1_line() == "c 136:* rwm"));
    }

    #[test]
    fn bad_access_and_types_are_refused() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":true,"type":"c","access":"xyz"}]}}}"#,
        )
        .unwrap();
        let e = rules(&spec).unwrap_err().to_string();
        assert!(e.contains("xyz"), "{e}");
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":true,"type":"c","access":"rwa"}]}}}"#,
        )
        .unwrap();
        assert_eq!(
            rules(&spec).unwrap()[0].access,
            "rw",
            "unknown letters are dropped, as runc"
        );
    }
}

//! Image references (`busybox`, `localhost:5000/a/b:t`, `host/x@sha256:..`),
//! checked against the distribution spec's grammar and normalised as Docker
//! does: no registry means docker.io, a single-component name on docker.io
//! lives under `library/`, and no tag and no digest means `:latest`.

use crate::error::{Error, Result};
use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
const NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalise `[registry/]path[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| Error::Other(format!("invalid image reference \"{s}\": {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                check_digest(d).map_err(|why| bad(&why))?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A colon after the last slash starts the tag; one before it is a port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].find(':') {
            Some(i) => {
                let (n, t) = name_tag.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(&format!(
                    "tag \"{t}\" must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
                )));
            }
        }
        if name.is_empty() {
            return Err(bad("no repository name"));
        }
        let (registry, path) = match name.split_once('/') {
            // As Docker decides: a first component with a dot, a colon or an
            // upper-case letter, or "localhost", is a registry host.
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        if !valid_host(registry) {
            return Err(bad(&format!(
                "registry \"{registry}\" is not a host[:port]"
            )));
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        for c in repository.split('/') {
            if c.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad("repository name must be lowercase"));
            }
            if !valid_component(c) {
                return Err(bad(&format!(
                    "path component \"{c}\" must be lowercase letters and digits separated by '.', '_', '__' or '-'"
                )));
            }
        }
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(bad(&format!("name longer than {NAME_MAX} characters")));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// What goes after `/manifests/`: the digest if any, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository`, without tag or digest.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `algorithm:encoded` as the image spec has it; sha256 and sha512 must have
/// exactly their length of lowercase hex, since those are the ones we verify.
pub fn check_digest(d: &str) -> std::result::Result<(), String> {
    let (algo, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest \"{d}\" is not algorithm:hex"))?;
    let algo_ok = !algo.is_empty()
        && algo.split(['+', '.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !algo_ok {
        return Err(format!("digest \"{d}\": bad algorithm \"{algo}\""));
    }
    let want = match algo {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    let ok = match want {
        Some(n) => {
            hex.len() == n
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => {
            hex.len() >= 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("digest \"{d}\": malformed {algo} value"))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is DNS labels or a bracketed IPv6 address.
fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return false,
            },
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if h.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/x", "docker.io/user/x:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/user/x:t", "docker.io/user/x:t"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
            ("[::1]:5000/a", "[::1]:5000/a:latest"),
            ("quay.io/a/b/c-d_e__f.g", "quay.io/a/b/c-d_e__f.g:latest"),
            ("a--b/c", "docker.io/a--b/c:latest"),
            ("Host/x", "Host/x:latest"),
        ];
        let with_digest = [
            (format!("host.tld/x@{D}"), format!("host.tld/x@{D}")),
            (format!("x:t@{D}"), format!("docker.io/library/x:t@{D}")),
        ];
        let all = cases
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .chain(with_digest);
        for (input, want) in all {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    #[test]
    fn parts() {
        let r = Reference::parse("127.0.0.1:5000/a/b:t").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.reference(), "t");
        assert_eq!(r.repo_name(), "127.0.0.1:5000/a/b");
        let r = Reference::parse(&format!("x:t@{D}")).unwrap();
        assert_eq!(r.reference(), D);
        assert_eq!(r.tag.as_deref(), Some("t"));
        let r = Reference::parse(&format!("x@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
    }

    #[test]
    fn rejects_bad_input() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("docker.io/Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox@sha256:abc", "malformed sha256"),
            ("busybox@sha256:", "malformed"),
            ("busybox@md5", "algorithm:hex"),
            (
                "busybox@SHA256:0123456789abcdef0123456789abcdef",
                "algorithm",
            ),
            ("a//b", "path component"),
            ("a/b_", "path component"),
            ("a/.b", "path component"),
            ("a/b___c", "path component"),
            ("host:port/x", "registry"),
            ("host:99999/x", "registry"),
            ("-host.tld/x", "registry"),
            ("[::1/x", "registry"),
            (":tag", "no repository"),
            ("/x", "path component"),
        ];
        let long_tag = format!("b:{}", "a".repeat(129));
        for (input, want) in cases.iter().copied().chain([(long_tag.as_str(), "tag")]) {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.contains(want), "{input:?}: {m}");
                    assert!(m.contains(&format!("\"{input}\"")), "{input:?}: {m}");
                }
            }
        }
    }
}

//! Registry credentials from the auth files podman, skopeo and Docker write,
//! and the `WWW-Authenticate` challenges registries answer with.
//!
//! Only inline `auth` entries are read; credential helpers (`credsStore`,
//! `credHelpers`) and identity tokens are not supported.

use crate::error::{Error, Result};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The auth files searched, in order, when no file is named: the first one
/// with an entry for the host wins.
fn default_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(f);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        files.push(d.join("containers/auth.json"));
    }
    let home = env("HOME");
    if let Some(h) = &home {
        files.push(h.join(".config/containers/auth.json"));
    }
    match (env("DOCKER_CONFIG"), &home) {
        (Some(d), _) => files.push(d.join("config.json")),
        (None, Some(h)) => files.push(h.join(".docker/config.json")),
        (None, None) => {}
    }
    files
}

/// Credentials (user, password) for a registry host (`host[:port]`, as in a
/// [`Reference`](super::reference::Reference)): from `auth_file` alone if
/// given, else from the first default file with an entry for the host.
pub fn credentials_for(host: &str, auth_file: Option<&Path>) -> Result<Option<(String, String)>> {
    match auth_file {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            lookup(host, f, &text)
        }
        None => {
            for f in default_files() {
                let text = match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&f, e)),
                };
                if let Some(c) = lookup(host, &f, &text)? {
                    return Ok(Some(c));
                }
            }
            Ok(None)
        }
    }
}

/// The names a host's entry may go by: Docker keeps Docker Hub's under its
/// old index URL.
fn aliases(host: &str) -> Vec<&str> {
    if host == super::reference::DOCKER_HUB {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![host]
    }
}

/// The host part of an `auths` key: `host`, `https://host/v1/`, or podman's
/// `host/namespace/repo`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn lookup(host: &str, file: &Path, text: &str) -> Result<Option<(String, String)>> {
    let bad = |why: String| Error::Config {
        path: file.to_path_buf(),
        msg: why,
    };
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let Some(auths) = doc.get("auths") else {
        return Ok(None);
    };
    let auths = auths
        .as_object()
        .ok_or_else(|| bad("\"auths\" is not an object".into()))?;
    let names = aliases(host);
    // An exact key beats a repository-scoped one for the same host.
    let mut keys: Vec<&String> = auths
        .keys()
        .filter(|k| names.contains(&key_host(k)))
        .collect();
    keys.sort_by_key(|k| k.contains('/') && !k.starts_with("http"));
    for key in keys {
        let Some(auth) = auths[key].get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        if auth.is_empty() {
            continue;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(format!("auths.\"{key}\".auth: not base64: {e}")))?;
        let pair =
            String::from_utf8(raw).map_err(|_| bad(format!("auths.\"{key}\".auth: not UTF-8")))?;
        let (user, pass) = pair
            .split_once(':')
            .ok_or_else(|| bad(format!("auths.\"{key}\".auth: not user:password")))?;
        return Ok(Some((user.to_string(), pass.to_string())));
    }
    Ok(None)
}

/// The value of an `Authorization: Basic` header.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer,
}

/// One authentication challenge: its scheme and parameters (names lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: Scheme,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` value (RFC 7235): the first challenge, with
/// its `name=token` or `name="quoted \"string\""` parameters.
pub fn parse_challenge(h: &str) -> Result<Challenge> {
    let bad = |why: &str| Error::Other(format!("WWW-Authenticate \"{h}\": {why}"));
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let s = h.trim_start();
    let end = s.find(|c: char| !is_tchar(c)).unwrap_or(s.len());
    let scheme = match s[..end].to_ascii_lowercase().as_str() {
        "basic" => Scheme::Basic,
        "bearer" => Scheme::Bearer,
        "" => return Err(bad("no scheme")),
        other => return Err(bad(&format!("unsupported scheme \"{other}\""))),
    };
    let mut params = BTreeMap::new();
    let mut rest = &s[end..];
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        if end == 0 {
            return Err(bad("expected a parameter name"));
        }
        let name = rest[..end].to_ascii_lowercase();
        let after = rest[end..].trim_start_matches([' ', '\t']);
        let Some(after) = after.strip_prefix('=') else {
            // A bare token here starts the next challenge: we take the first.
            break;
        };
        let after = after.trim_start_matches([' ', '\t']);
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => v.push(e),
                        None => break,
                    },
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let i = close.ok_or_else(|| bad("unterminated quoted string"))?;
            (v, &q[i + 1..])
        } else {
            let end = after.find([',', ' ', '\t']).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.insert(name, value);
        rest = next;
    }
    Ok(Challenge { scheme, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, Scheme::Bearer);
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));

        let c = parse_challenge(r#"basic Realm="a \"quoted\", realm\\" , charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, Scheme::Basic);
        assert_eq!(c.param("realm"), Some(r#"a "quoted", realm\"#));
        assert_eq!(c.param("charset"), Some("UTF-8"));

        let c = parse_challenge(r#"Bearer realm="r", Basic realm="x""#).unwrap();
        assert_eq!(c.scheme, Scheme::Bearer);
        assert_eq!(c.params.len(), 1);

        let c = parse_challenge("Basic").unwrap();
        assert!(c.params.is_empty());

        for bad in ["", "Negotiate abc", r#"Bearer realm="x"#, "Bearer =x"] {
            assert!(parse_challenge(bad).is_err(), "{bad:?}");
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("brig-auth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn auth_file_lookup() {
        let d = scratch("lookup");
        let f = d.join("auth.json");
        let text = serde_json::json!({"auths": {
            "127.0.0.1:5000": {"auth": b64("u:p:with:colons")},
            "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
            "quay.io/ns/repo": {"auth": b64("scoped:x")},
            "quay.io": {"auth": b64("quay:y")},
            "empty.io": {"auth": ""},
            "http://other.io/v2/": {"auth": b64("other:z")}
        }});
        std::fs::write(&f, text.to_string()).unwrap();
        let get = |h: &str| credentials_for(h, Some(&f)).unwrap();
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(get("127.0.0.1:5000"), pair("u", "p:with:colons"));
        assert_eq!(get("docker.io"), pair("hub", "pw"));
        assert_eq!(get("quay.io"), pair("quay", "y"));
        assert_eq!(get("other.io"), pair("other", "z"));
        assert_eq!(get("empty.io"), None);
        assert_eq!(get("127.0.0.1:5001"), None);

        std::fs::write(&f, r#"{"credsStore":"desktop"}"#).unwrap();
        assert_eq!(get("docker.io"), None);

        for bad in [
            "{not json",
            r#"{"auths": []}"#,
            r#"{"auths": {"h": {"auth": "%%%"}}}"#,
            &format!(r#"{{"auths": {{"h": {{"auth": "{}"}}}}}}"#, b64("nocolon")),
        ] {
            std::fs::write(&f, bad).unwrap();
            let e = credentials_for("h", Some(&f)).unwrap_err().to_string();
            assert!(e.contains(&f.display().to_string()), "{bad}: {e}");
        }
        let missing = d.join("missing.json");
        let e = credentials_for("h", Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn basic_header() {
        assert_eq!(basic("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}

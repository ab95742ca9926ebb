//! The runtime config.json of a bundle, from an image config, following the
//! image-spec's conversion rules on top of `brig spec`'s defaults.

use crate::error::{Error, Result};
use crate::linux::paths::open_in_root;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::Path;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces Entrypoint + Cmd when non-empty.
    pub args: Vec<String>,
    /// KEY=VALUE, replacing a variable of the same name or appended.
    pub env: Vec<String>,
}

/// The strings of a JSON array (Env, Cmd, ...); anything else is empty.
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(slot) => *slot = kv.to_string(),
        None => env.push(kv.to_string()),
    }
}

/// The runtime spec for `image` (the image config JSON), whose rootfs is
/// open at `rootfs` (for /etc/passwd and /etc/group).
pub fn runtime_config(image: &Value, rootfs: BorrowedFd, ov: &Overrides) -> Result<Value> {
    let mut spec: Value = serde_json::from_str(&crate::spec::default_spec_json(false))
        .map_err(|e| Error::Other(format!("default spec: {e}")))?;
    let empty = json!({});
    let cfg = image
        .get("config")
        .filter(|c| c.is_object())
        .unwrap_or(&empty);

    let mut args = strings(&cfg["Entrypoint"]);
    args.extend(strings(&cfg["Cmd"]));
    if !ov.args.is_empty() {
        args = ov.args.clone();
    }
    if args.is_empty() {
        return Err(Error::Other(
            "the image has neither Entrypoint nor Cmd: give the command with --args".into(),
        ));
    }

    let mut env = strings(&cfg["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    for kv in &ov.env {
        set_env(&mut env, kv);
    }

    let cwd = cfg["WorkingDir"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(Error::Other(format!(
            "image WorkingDir \"{cwd}\" is not absolute"
        )));
    }

    let user = match cfg["User"].as_str().filter(|s| !s.is_empty()) {
        Some(u) => resolve_user(u, rootfs)?,
        None => json!({"uid": 0, "gid": 0}),
    };

    // HOME as Docker sets it: the user's home in /etc/passwd, else "/".
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = user["uid"].as_u64();
        let home = read_in_root(rootfs, "/etc/passwd")?
            .and_then(|text| {
                text.lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 6 && f[2].parse::<u64>().ok() == uid)
                    .map(|f| f[5].to_string())
            })
            .filter(|h| h.starts_with('/'))
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }

    // An image's rootfs is the container's to write, as with Docker and
    // umoci; `brig spec` keeps runc's read-only default for hand-made ones.
    spec["root"]["readonly"] = json!(false);

    let process = &mut spec["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(args);
    process["env"] = json!(env);
    process["cwd"] = json!(cwd);
    process["user"] = user;

    let mut ann = Map::new();
    if let Some(labels) = cfg["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                ann.insert(k.clone(), json!(v));
            }
        }
    }
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(format!("org.opencontainers.image.{k}"), json!(v));
        }
    };
    put("os", image["os"].as_str());
    put("architecture", image["architecture"].as_str());
    put("variant", image["variant"].as_str());
    put("os.version", image["os.version"].as_str());
    put("author", image["author"].as_str());
    put("created", image["created"].as_str());
    put("stopSignal", cfg["StopSignal"].as_str());
    if let Some(f) = image["os.features"].as_array() {
        let f: Vec<&str> = f.iter().filter_map(Value::as_str).collect();
        put("os.features", Some(&f.join(",")));
    }
    if let Some(ports) = cfg["ExposedPorts"].as_object() {
        let mut p: Vec<&str> = ports.keys().map(String::as_str).collect();
        p.sort_unstable();
        put("exposedPorts", Some(&p.join(",")));
    }
    // Volumes are named, not mounted: where a volume's data should live is
    // for whoever runs the bundle to decide (the image spec leaves the
    // mount to the implementation).
    if let Some(vols) = cfg["Volumes"].as_object() {
        let mut v: Vec<&str> = vols.keys().map(String::as_str).collect();
        v.sort_unstable();
        put("volumes", Some(&v.join(",")));
    }
    if !ann.is_empty() {
        spec["annotations"] = Value::Object(ann);
    }
    Ok(spec)
}

/// Reads a small file of the rootfs (inside it), or None if it is absent.
fn read_in_root(root: BorrowedFd, path: &str) -> Result<Option<String>> {
    let fd = match open_in_root(root, Path::new(path), libc::O_RDONLY) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::sys(format!("opening {path} in the rootfs"), e)),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(8 << 20)
        .read_to_string(&mut s)
        .map_err(|e| Error::Other(format!("reading {path} in the rootfs: {e}")))?;
    Ok(Some(s))
}

/// `name` in a passwd/group style file: its fields.
fn lookup<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == name)
}

/// User as the image config gives it: user, uid, user:group, uid:gid, ...
pub fn resolve_user(spec: &str, root: BorrowedFd) -> Result<Value> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let bad = |why: &str| Error::Other(format!("image User \"{spec}\": {why}"));
    let (uid, name, primary) = match u.parse::<u32>() {
        Ok(uid) => {
            // A numeric user still takes its primary group from passwd.
            let passwd = read_in_root(root, "/etc/passwd")?.unwrap_or_default();
            let gid = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid))
                .and_then(|f| f[3].parse::<u32>().ok());
            (uid, None, gid)
        }
        Err(_) => {
            let passwd = read_in_root(root, "/etc/passwd")?
                .ok_or_else(|| bad("no /etc/passwd in the image"))?;
            let f = lookup(&passwd, u).ok_or_else(|| bad("no such user in /etc/passwd"))?;
            let uid = f[2]
                .parse::<u32>()
                .map_err(|_| bad("bad uid in /etc/passwd"))?;
            let gid = f[3]
                .parse::<u32>()
                .map_err(|_| bad("bad gid in /etc/passwd"))?;
            (uid, Some(u), Some(gid))
        }
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = read_in_root(root, "/etc/group")?
                    .ok_or_else(|| bad("no /etc/group in the image"))?;
                let f = lookup(&group, g).ok_or_else(|| bad("no such group in /etc/group"))?;
                f[2].parse::<u32>()
                    .map_err(|_| bad("bad gid in /etc/group"))?
            }
        },
        None => primary.unwrap_or(0),
    };
    let mut user = json!({"uid": uid, "gid": gid});
    // A named user without an explicit group also gets its supplementary groups.
    if let (Some(name), None) = (name, g) {
        if let Some(group) = read_in_root(root, "/etc/group")? {
            let mut extra: Vec<u32> = group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
                .filter_map(|f| f[2].parse::<u32>().ok())
                .filter(|&x| x != gid)
                .collect();
            extra.sort_unstable();
            extra.dedup();
            if !extra.is_empty() {
                user["additionalGids"] = json!(extra);
            }
        }
    }
    Ok(user)
}

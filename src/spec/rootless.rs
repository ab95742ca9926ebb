//! `brig spec --rootless`: the default spec changed the way runc changes
//! it, so that an unprivileged user can run it as it is.

use serde_json::{json, Value};

/// Rewrites a default spec for the user `uid`/`gid`: a user namespace
/// mapping them to root, no network namespace (an unprivileged user cannot
/// give it a link), /sys bound from the host (sysfs cannot be mounted
/// without owning a network namespace), no uid=/gid= mount options (ids
/// the namespace does not map), and no cgroup limits.
pub fn to_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({
                    "destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]
                });
                continue;
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| {
                    !o.as_str()
                        .is_some_and(|o| o.starts_with("uid=") || o.starts_with("gid="))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_becomes_runnable_unprivileged() {
        let mut s: Value = serde_json::from_str(&super::super::default_spec_json(false)).unwrap();
        to_rootless(&mut s, 1000, 1001);
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"user") && !types.contains(&"network"),
            "{types:?}"
        );
        assert_eq!(s["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(s["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(s["linux"].get("resources").is_none());
        let text = s["mounts"].to_string();
        assert!(
            !text.contains("gid=5") && !text.contains("\"sysfs\""),
            "{text}"
        );
        // Still a spec brig accepts.
        let _: oci_spec::runtime::Spec = serde_json::from_value(s).unwrap();
    }
}

//! Capability names oci-spec's typed `Capability` does not know (a newer
//! kernel's, or a typo). The runtime spec says a capability that cannot be
//! granted MUST be logged as a warning and SHOULD NOT fail the container:
//! such names are dropped with one warning, in runc's words, and only
//! when the typed parse has failed, so a valid config is parsed once.

use oci_spec::runtime::Capability;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// `T` from `raw`; if that fails and the process object at `at` (a JSON
/// pointer, "" for the document itself) names unknown capabilities, again
/// without them.
pub fn from_slice<T: DeserializeOwned>(raw: &[u8], at: &str) -> serde_json::Result<T> {
    serde_json::from_slice(raw).or_else(|e| match serde_json::from_slice(raw) {
        Ok(v) => retry(v, at, e),
        Err(_) => Err(e),
    })
}

/// [`from_slice`] for a document already parsed.
pub fn from_value<T: DeserializeOwned>(v: Value, at: &str) -> serde_json::Result<T> {
    match T::deserialize(&v) {
        Ok(t) => Ok(t),
        Err(e) => retry(v, at, e),
    }
}

fn retry<T: DeserializeOwned>(
    mut v: Value,
    at: &str,
    e: serde_json::Error,
) -> serde_json::Result<T> {
    let dropped = v.pointer_mut(at).map(drop_unknown).unwrap_or_default();
    if dropped.is_empty() {
        return Err(e);
    }
    crate::logging::warn(&format!(
        "ignoring unknown or unavailable capabilities: [{}]",
        dropped.join(" ")
    ));
    serde_json::from_value(v)
}

/// Removes the names `Capability` cannot read from every set of a process
/// object; returns them, each once.
fn drop_unknown(process: &mut Value) -> Vec<String> {
    let mut dropped: Vec<String> = Vec::new();
    for set in SETS {
        let Some(list) = process
            .get_mut("capabilities")
            .and_then(|c| c.get_mut(set))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        list.retain(|name| {
            let known = Capability::deserialize(name).is_ok();
            if !known {
                let name = name.as_str().unwrap_or("?").to_string();
                if !dropped.contains(&name) {
                    dropped.push(name);
                }
            }
            known
        });
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Process;
    use serde_json::json;

    #[test]
    fn unknown_names_are_dropped_and_known_ones_kept() {
        let v = json!({"cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL", "CAP_UNKNOWN"],
                             "ambient": ["UNKNOWN_CAP", "CAP_UNKNOWN"]}});
        let p: Process = from_value(v, "").expect("parses without the unknown names");
        let caps = p.capabilities().as_ref().expect("capabilities");
        assert_eq!(caps.bounding().as_ref().map(|b| b.len()), Some(1));
        assert_eq!(caps.ambient().as_ref().map(|a| a.len()), Some(0));
        let mut v =
            json!({"capabilities": {"bounding": ["CAP_X", "CAP_KILL"], "effective": ["CAP_X"]}});
        assert_eq!(drop_unknown(&mut v), ["CAP_X"]);
    }

    #[test]
    fn other_errors_stay_errors() {
        let bad = json!({"cwd": 7, "user": {"uid": 0, "gid": 0}});
        assert!(from_value::<Process>(bad, "").is_err());
        assert!(from_slice::<Process>(b"{not json", "").is_err());
    }
}

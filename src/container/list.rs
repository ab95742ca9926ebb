//! `list`: every container in the root.

use super::store::Store;
use crate::error::Result;

pub fn list(store: &Store) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        // A container deleted while we list it is simply not listed.
        if let Ok(c) = store.load(&id) {
            out.push(c.state.to_oci_json(c.status()));
        }
    }
    Ok(out)
}

/// runc's table: ID PID STATUS BUNDLE CREATED OWNER.
pub fn table(items: &[serde_json::Value]) -> String {
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            [
                s("id"),
                v["pid"].to_string(),
                s("status"),
                s("bundle"),
                s("created"),
                s("owner"),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| {
            let line: Vec<String> = r
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            line.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

/// An entry of `list --format json` with runc's field order (tools that
/// compare the output as text care; a serde_json Value sorts the keys).
#[derive(serde::Serialize)]
struct Entry<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a serde_json::Value,
    id: &'a serde_json::Value,
    pid: &'a serde_json::Value,
    status: &'a serde_json::Value,
    bundle: &'a serde_json::Value,
    rootfs: &'a serde_json::Value,
    created: &'a serde_json::Value,
    #[serde(skip_serializing_if = "is_null")]
    annotations: &'a serde_json::Value,
    owner: &'a serde_json::Value,
}

fn is_null(v: &&serde_json::Value) -> bool {
    v.is_null()
}

/// `list --format json`: one line, entries in runc's field order.
pub fn json_line(items: &[serde_json::Value]) -> Result<String> {
    let entries: Vec<Entry> = items
        .iter()
        .map(|v| Entry {
            oci_version: &v["ociVersion"],
            id: &v["id"],
            pid: &v["pid"],
            status: &v["status"],
            bundle: &v["bundle"],
            rootfs: &v["rootfs"],
            created: &v["created"],
            annotations: &v["annotations"],
            owner: &v["owner"],
        })
        .collect();
    serde_json::to_string(&entries)
        .map_err(|e| crate::error::Error::Other(format!("encoding the list: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_runcs_field_order() {
        let v = serde_json::json!({"owner": "", "id": "c", "status": "running", "pid": 7,
            "bundle": "/b", "rootfs": "/b/r", "created": "t", "ociVersion": "1.0.2"});
        assert_eq!(
            json_line(&[v]).unwrap(),
            r#"[{"ociVersion":"1.0.2","id":"c","pid":7,"status":"running","bundle":"/b","rootfs":"/b/r","created":"t","owner":""}]"#
        );
    }
}

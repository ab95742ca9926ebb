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

//! `state`: the OCI state JSON of one container.

use super::store::Store;
use crate::error::Result;

pub fn state(store: &Store, id: &str) -> Result<serde_json::Value> {
    let c = store.load(id)?;
    Ok(c.state.to_oci_json(c.status()))
}

//! `state`: the OCI state JSON.

use super::Runtime;
use crate::error::Result;

pub fn state(rt: &Runtime, id: &str) -> Result<serde_json::Value> {
    let (_, st) = rt.load(id)?;
    Ok(st.oci_json())
}

//! `events --stats`: the container's resource usage, as runc prints it.

use super::Runtime;
use crate::error::{Error, Result};
use crate::state::Status;

/// One `{"type":"stats","id":..,"data":{..}}` object.
pub fn stats(rt: &Runtime, id: &str) -> Result<serde_json::Value> {
    let (_, st) = rt.load(id)?;
    if st.status() == Status::Stopped {
        return Err(Error::msg(format!("container {id} is not running")));
    }
    Ok(serde_json::json!({"type": "stats", "id": id, "data": crate::cgroups::stats(&st.cgroups)}))
}

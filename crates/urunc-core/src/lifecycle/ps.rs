//! `ps`: the container's processes (the monitor).

use super::Runtime;
use crate::error::Result;
use crate::state::Status;

pub fn ps(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let (_, st) = rt.load(id)?;
    if st.status() == Status::Stopped {
        return Ok(vec![]);
    }
    let mut pids = crate::cgroups::pids(&st.cgroups);
    if st.pid > 0 && !pids.contains(&st.pid) {
        pids.insert(0, st.pid);
    }
    Ok(pids)
}

//! `start`: wake the waiting process; succeed once the monitor is exec'd.

use super::Runtime;
use crate::error::{Error, Result};
use crate::hooks;
use crate::sandbox;
use crate::state::{State, StateDir, Status};
use crate::timestamps::{ts, Recorder};

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    let rec = Recorder::new(&rt.config.timestamps, id);
    rec.mark(ts::START_START);
    let dir = rt.dir(id)?;
    let _lock = dir.lock()?;
    // Read under the lock: a concurrent start may just have changed it.
    let mut st = dir.load()?;
    start_locked(&dir, &mut st, &rec)
}

/// `run`'s start: of the container this process has just created, from
/// the state `create` wrote rather than read back (5 system calls). Only
/// `create` and `start` write a state file, and another `start` of it
/// meanwhile fails either way (its waiting process is gone); the lock is
/// still taken, so that a concurrent `delete` finds it started or not at
/// all. On success `st` is the state as saved.
pub fn start_created(rt: &Runtime, st: &mut State) -> Result<()> {
    let id = st.id.clone();
    let rec = Recorder::new(&rt.config.timestamps, &id);
    rec.mark(ts::START_START);
    let dir = rt.dir(&st.id)?;
    let _lock = dir.lock()?;
    start_locked(&dir, st, &rec)
}

fn start_locked(dir: &StateDir, st: &mut State, rec: &Recorder) -> Result<()> {
    let id = &st.id;
    let status = st.status();
    if status != Status::Created {
        return Err(Error::msg(format!(
            "container {id} cannot be started: it is {}, not created",
            status.as_str()
        )));
    }
    st.started = true;
    dir.save(st)?;
    crate::testpoint::pause_at("start:saved");
    if let Err(e) = sandbox::signal_start(dir) {
        return Err(Error::msg(format!(
            "container {id}: starting the monitor failed: {e}"
        )));
    }
    rec.mark(ts::START_DONE);
    // poststart hooks run after the monitor is running; their failures are
    // reported but do not stop the container.
    if !st.poststart.is_empty() {
        hooks::run_all_logged("poststart", &st.poststart, &st.oci_json().to_string());
    }
    Ok(())
}

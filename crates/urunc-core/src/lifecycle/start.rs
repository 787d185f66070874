//! `start`: wake the waiting process; succeed once the monitor is exec'd.

use super::Runtime;
use crate::error::{Error, Result};
use crate::hooks;
use crate::sandbox;
use crate::state::Status;
use crate::timestamps::{ts, Recorder};

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    let rec = Recorder::new(&rt.config.timestamps, id);
    rec.mark(ts::START_START);
    let (dir, mut st) = rt.load(id)?;
    let _lock = dir.lock()?;
    let status = st.status();
    if status != Status::Created {
        return Err(Error::msg(format!(
            "container {id} cannot be started: it is {}, not created",
            status.as_str()
        )));
    }
    st.started = true;
    dir.save(&st)?;
    if let Err(e) = sandbox::signal_start(&dir) {
        return Err(Error::msg(format!(
            "container {id}: starting the monitor failed: {e}"
        )));
    }
    rec.mark(ts::START_DONE);
    // poststart hooks run after the monitor is running; their failures are
    // reported but do not stop the container.
    let hooks = crate::state::StateDir::new(&rt.root, id)
        .ok()
        .and_then(|_| {
            oci_spec::runtime::Spec::load(st.bundle.join("config.json"))
                .ok()
                .and_then(|s| s.hooks().clone())
                .and_then(|h| h.poststart().clone())
        });
    if let Some(hs) = hooks {
        hooks::run_all_logged("poststart", &hs, &st.oci_json().to_string());
    }
    Ok(())
}

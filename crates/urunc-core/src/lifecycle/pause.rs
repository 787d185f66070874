//! `pause`/`resume`: freeze the monitor (freezer cgroup, else SIGSTOP).

use super::Runtime;
use crate::error::{Error, Result};
use crate::state::Status;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

fn set(rt: &Runtime, id: &str, frozen: bool) -> Result<()> {
    let (dir, st) = rt.load(id)?;
    let _lock = dir.lock()?;
    let want = if frozen {
        Status::Running
    } else {
        Status::Paused
    };
    let s = st.status();
    if s != want {
        return Err(Error::msg(format!(
            "container {id} is {}, not {}",
            s.as_str(),
            want.as_str()
        )));
    }
    if !crate::cgroups::freeze(&st.cgroups, frozen)? {
        let sig = if frozen {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        nix::sys::signal::kill(Pid::from_raw(st.pid), sig)
            .map_err(|e| Error::sys(format!("container {id}: sending {sig}"), e))?;
        // The signal takes effect when the monitor next runs: until then
        // `state` would still say running (seen under load). Wait, briefly,
        // until /proc says stopped (or no longer).
        for _ in 0..1000 {
            match crate::state::proc_stat(st.pid) {
                Some((start, s)) if start == st.pid_start && (s == 'T') != frozen => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                _ => break,
            }
        }
    }
    Ok(())
}

pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    set(rt, id, true)
}

pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    set(rt, id, false)
}

//! `delete`: remove everything the container created — the process (with
//! `--force`, or one still waiting for `start`), its tap and tc rules in a
//! namespace that outlives it, its cgroups, its state — and run the
//! `poststop` hooks.

use super::create::wait_gone;
use super::Runtime;
use crate::error::{Error, Result};
use crate::state::Status;
use crate::timestamps::{ts, Recorder};
use crate::{cgroups, hooks, network};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let rec = Recorder::new(&rt.config.timestamps, id);
    rec.mark(ts::DELETE_START);
    let (dir, st) = rt.load(id)?;
    let _lock = dir.lock()?;
    match st.status() {
        Status::Stopped => {}
        Status::Created => kill_wait(&st),
        s if force => {
            if s == Status::Paused {
                let _ = cgroups::freeze(&st.cgroups, false);
            }
            kill_wait(&st)
        }
        s => {
            return Err(Error::msg(format!(
                "container {id} is {}: stop it first or use delete --force",
                s.as_str()
            )))
        }
    }
    if let Some(ns) = &st.netns {
        let r = in_netns(ns, || {
            // Both modes' leftovers: tc's qdiscs (found by cookie), the
            // shared mode's table (found by name); the tap either way.
            let tc = network::teardown(&st.tap, None);
            let shared = network::shared::teardown(id, &st.tap);
            tc.and(shared).map_err(Error::from)
        });
        if let Err(e) = r {
            crate::log::warn(&format!("container {id}: removing tap {}: {e}", st.tap));
        }
    }
    cgroups::remove(&st.cgroups);
    cgroups::remove_parents(&st.cgroup_parents);
    // useDMBlock: mount the rootfs back; kept on failure so delete can retry.
    crate::storage::restore(&dir.path)?;
    let mut stopped = st.oci_json();
    stopped["status"] = "stopped".into();
    hooks::run_all_logged("poststop", &st.poststop, &stopped.to_string());
    dir.remove()?;
    rec.mark(ts::DELETE_DONE);
    Ok(())
}

fn kill_wait(st: &crate::state::State) {
    let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    wait_gone(st.pid, st.pid_start);
}

/// Runs `f` inside the network namespace at `path`, then returns to ours.
/// `None` when the namespace is gone (and with it everything in it): `f`
/// must not run in the runtime's own namespace instead.
fn in_netns<T>(path: &std::path::Path, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    use nix::sched::{setns, CloneFlags};
    let ours = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| Error::sys("opening /proc/self/ns/net", e))?;
    let theirs = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::sys(
                format!("opening network namespace {}", path.display()),
                e,
            ))
        }
    };
    setns(&theirs, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys(format!("joining network namespace {}", path.display()), e))?;
    let r = f();
    setns(&ours, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("returning to the runtime's network namespace", e))?;
    r.map(Some)
}

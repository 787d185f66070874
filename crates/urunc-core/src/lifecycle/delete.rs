//! `delete`: remove everything the container created — the process (with
//! `--force`, or one still waiting for `start`), its tap and tc rules in a
//! namespace that outlives it, its cgroups, its state — and run the
//! `poststop` hooks.

use super::create::wait_gone;
use super::Runtime;
use crate::error::{Error, Result};
use crate::state::{ProcRef, State, StateDir, Status};
use crate::testpoint;
use crate::timestamps::{ts, Recorder};
use crate::{cgroups, hooks, network};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let rec = Recorder::new(&rt.config.timestamps, id);
    rec.mark(ts::DELETE_START);
    let dir = rt.dir(id)?;
    let _lock = dir.lock()?;
    // Read under the lock: a concurrent delete may just have finished.
    let st = dir.load()?;
    delete_locked(rt, &dir, st, force, &rec)
}

/// `run`'s delete, once the monitor it waited for has exited: from the
/// state its own `start` saved (see [`super::start_created`]), not read
/// back. The lock is taken all the same: a `delete` that got there first
/// has removed the directory, and this one then fails as `delete` would.
pub fn delete_known(rt: &Runtime, st: State, force: bool) -> Result<()> {
    let id = st.id.clone();
    let rec = Recorder::new(&rt.config.timestamps, &id);
    rec.mark(ts::DELETE_START);
    let dir = rt.dir(&st.id)?;
    let _lock = dir.lock()?;
    delete_locked(rt, &dir, st, force, &rec)
}

fn delete_locked(
    rt: &Runtime,
    dir: &StateDir,
    mut st: State,
    force: bool,
    rec: &Recorder,
) -> Result<()> {
    let id = st.id.clone();
    let id = id.as_str();
    let status = st.status();
    match status {
        Status::Stopped | Status::Created => {}
        s if force => {
            if s == Status::Paused {
                let _ = cgroups::freeze(&st.cgroups, false);
            }
        }
        s => {
            return Err(Error::msg(format!(
                "container {id} is {}: stop it first or use delete --force",
                s.as_str()
            )))
        }
    }
    // Whatever is still alive goes: a `create` still at work first (it
    // may have recorded more by the time it is gone), then the waiting
    // process or the monitor — also one left behind by a `create` that died.
    // Stopped without a `create` on record means the process is gone:
    // nothing to look up again.
    if status != Status::Stopped || st.creating.is_some() {
        if let Some(c) = st.creating.filter(|c| c.alive()) {
            kill_wait(c);
            st = dir.load()?;
        }
        for p in st.live_processes() {
            kill_wait(p);
        }
    }
    testpoint::pause_at("delete:killed");
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
    testpoint::pause_at("delete:network");
    cgroups::remove(&st.cgroups);
    cgroups::remove_parents(&st.cgroup_parents);
    // Without cgroups of its own, this container holds up no parent.
    if !st.cgroups.is_empty() {
        cgroups::remove_shared_parents(&rt.root);
    }
    testpoint::pause_at("delete:cgroups");
    // useDMBlock: mount the rootfs back; kept on failure so delete can retry.
    crate::storage::restore(&dir.path)?;
    if !st.poststop.is_empty() {
        let stopped = st.oci_json_as(Status::Stopped);
        hooks::run_all_logged("poststop", &st.poststop, &stopped.to_string());
    }
    testpoint::pause_at("delete:hooks");
    dir.remove()?;
    rec.mark(ts::DELETE_DONE);
    Ok(())
}

fn kill_wait(p: ProcRef) {
    let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    wait_gone(p.pid, p.start);
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

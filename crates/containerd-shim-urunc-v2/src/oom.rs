//! OOM kills in a container's memory cgroup, reported as TaskOOM events
//! (CRI turns them into the `OOMKilled` reason). One thread per container;
//! it ends when the cgroup is removed.
//!
//! cgroup v1: an eventfd registered on `memory.oom_control` through
//! `cgroup.event_control` (the kernel also signals it when the cgroup goes).
//! cgroup v2: inotify on `memory.events`, whose `oom_kill` counter rises.

use std::{
    fs::File,
    io::Write,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    thread,
};

use nix::sys::{
    eventfd::{EfdFlags, EventFd},
    inotify::{AddWatchFlags, InitFlags, Inotify},
};

use crate::stats::{parse_kv, parse_proc_cgroup};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The `oom_kill` counter of a memory.oom_control / memory.events text.
pub fn oom_kills(text: &str) -> u64 {
    parse_kv(text).get("oom_kill").copied().unwrap_or(0)
}

/// Where the memory cgroup of `pid` is, and whether it is cgroup v2.
fn memory_cgroup(pid: i32) -> Result<(PathBuf, bool), String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("read /proc/{pid}/cgroup: {e}"))?;
    let cg = parse_proc_cgroup(&text);
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        let p = cg
            .get("")
            .ok_or_else(|| format!("process {pid} has no cgroup v2 entry"))?;
        Ok((root.join(p.trim_start_matches('/')), true))
    } else {
        let p = cg
            .get("memory")
            .ok_or_else(|| format!("process {pid} has no memory cgroup"))?;
        Ok((root.join("memory").join(p.trim_start_matches('/')), false))
    }
}

/// Watch the memory cgroup of `pid`; call `on_oom` for each OOM kill.
pub fn watch(pid: i32, on_oom: impl Fn() + Send + 'static) -> Result<(), String> {
    let (dir, v2) = memory_cgroup(pid)?;
    if v2 {
        watch_v2(dir, on_oom)
    } else {
        watch_v1(dir, on_oom)
    }
}

fn watch_v1(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> Result<(), String> {
    let control_path = dir.join("memory.oom_control");
    let control =
        File::open(&control_path).map_err(|e| format!("open {}: {e}", control_path.display()))?;
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(|e| format!("eventfd: {e}"))?;
    let reg = dir.join("cgroup.event_control");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&reg)
        .and_then(|mut f| {
            f.write_all(format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()).as_bytes())
        })
        .map_err(|e| format!("register OOM event in {}: {e}", reg.display()))?;
    let mut seen = std::fs::read_to_string(&control_path)
        .map(|s| oom_kills(&s))
        .unwrap_or(0);
    thread::spawn(move || {
        let _control = control;
        while efd.read().is_ok() {
            // Also signalled when the cgroup is removed.
            let Ok(text) = std::fs::read_to_string(&control_path) else {
                break;
            };
            let now = oom_kills(&text);
            // Kernels without the counter: every event is an OOM.
            if now > seen || !text.contains("oom_kill ") {
                on_oom();
            }
            seen = now;
        }
    });
    Ok(())
}

fn watch_v2(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> Result<(), String> {
    let events = dir.join("memory.events");
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| format!("inotify: {e}"))?;
    ino.add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| format!("watch {}: {e}", events.display()))?;
    let mut seen = std::fs::read_to_string(&events)
        .map(|s| oom_kills(&s))
        .unwrap_or(0);
    thread::spawn(move || {
        while let Ok(evs) = ino.read_events() {
            if evs
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            {
                break; // the cgroup is gone
            }
            let Ok(text) = std::fs::read_to_string(&events) else {
                break;
            };
            let now = oom_kills(&text);
            if now > seen {
                on_oom();
            }
            seen = now;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_from_v1_and_v2_texts() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            3
        );
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"), 1);
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    #[test]
    fn watch_of_missing_process_names_it() {
        let e = watch(i32::MAX, || {}).unwrap_err();
        assert!(e.contains(&i32::MAX.to_string()), "{e}");
    }
}

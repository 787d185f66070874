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
    sync::{Arc, Mutex},
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

/// The OOM-kill counter of one container's memory cgroup. Checked by the
/// watcher thread when the kernel signals, and by the exit path before it
/// reports a container's exit, so that TaskOOM comes before TaskExit.
pub struct OomWatch {
    counter_file: PathBuf,
    seen: Mutex<u64>,
    on_oom: Box<dyn Fn() + Send + Sync>,
}

impl OomWatch {
    fn new(counter_file: PathBuf, on_oom: Box<dyn Fn() + Send + Sync>) -> OomWatch {
        let seen = std::fs::read_to_string(&counter_file)
            .map(|s| oom_kills(&s))
            .unwrap_or(0);
        OomWatch {
            counter_file,
            seen: Mutex::new(seen),
            on_oom,
        }
    }

    /// Report OOM kills counted since the last check. `None` once the
    /// cgroup is gone; `Some(counted)` says whether the kernel has a counter.
    pub fn check(&self) -> Option<bool> {
        let text = std::fs::read_to_string(&self.counter_file).ok()?;
        if !text.contains("oom_kill ") {
            return Some(false);
        }
        let now = oom_kills(&text);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if now > *seen {
            (self.on_oom)();
        }
        *seen = now;
        Some(true)
    }
}

/// Watch the memory cgroup of `pid`; `on_oom` runs once per OOM kill.
pub fn watch(pid: i32, on_oom: impl Fn() + Send + Sync + 'static) -> Result<Arc<OomWatch>, String> {
    let (dir, v2) = memory_cgroup(pid)?;
    if v2 {
        watch_v2(dir, Box::new(on_oom))
    } else {
        watch_v1(dir, Box::new(on_oom))
    }
}

fn watch_v1(dir: PathBuf, on_oom: Box<dyn Fn() + Send + Sync>) -> Result<Arc<OomWatch>, String> {
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
    let w = Arc::new(OomWatch::new(control_path, on_oom));
    let tw = Arc::clone(&w);
    thread::spawn(move || {
        let _control = control;
        // Also signalled when the cgroup is removed: `check` then ends it.
        while efd.read().is_ok() {
            match tw.check() {
                None => break,
                // Kernels without the counter: every event is an OOM.
                Some(false) => (tw.on_oom)(),
                Some(true) => {}
            }
        }
    });
    Ok(w)
}

fn watch_v2(dir: PathBuf, on_oom: Box<dyn Fn() + Send + Sync>) -> Result<Arc<OomWatch>, String> {
    let events = dir.join("memory.events");
    let ino = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| format!("inotify: {e}"))?;
    ino.add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| format!("watch {}: {e}", events.display()))?;
    let w = Arc::new(OomWatch::new(events, on_oom));
    let tw = Arc::clone(&w);
    thread::spawn(move || {
        while let Ok(evs) = ino.read_events() {
            if evs
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            {
                break; // the cgroup is gone
            }
            if tw.check().is_none() {
                break;
            }
        }
    });
    Ok(w)
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
    fn check_reports_each_new_kill_once() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.events");
        std::fs::write(&f, "oom 0\noom_kill 0\n").unwrap();
        let count = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&count);
        let w = OomWatch::new(
            f.clone(),
            Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(w.check(), Some(true));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        std::fs::write(&f, "oom 1\noom_kill 1\n").unwrap();
        assert_eq!(w.check(), Some(true));
        assert_eq!(w.check(), Some(true));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        std::fs::write(&f, "oom_kill_disable 0\nunder_oom 0\n").unwrap();
        assert_eq!(w.check(), Some(false));
        std::fs::remove_file(&f).unwrap();
        assert_eq!(w.check(), None);
    }

    #[test]
    fn watch_of_missing_process_names_it() {
        let e = watch(i32::MAX, || {}).err().unwrap();
        assert!(e.contains(&i32::MAX.to_string()), "{e}");
    }
}

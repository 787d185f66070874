//! What is read and written in a running container's cgroup(s): its
//! PIDs, the freezer (pause/resume) and resource usage.

use crate::error::{Context, Result};
use std::path::PathBuf;

/// PIDs in the container's cgroup(s).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    let mut v: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn freezer(dirs: &[PathBuf]) -> Option<(PathBuf, bool)> {
    dirs.iter().find_map(|d| {
        if d.join("freezer.state").exists() {
            Some((d.join("freezer.state"), true))
        } else if d.join("cgroup.freeze").exists() {
            Some((d.join("cgroup.freeze"), false))
        } else {
            None
        }
    })
}

/// Freezes or thaws the cgroup. `Ok(false)` when there is no freezer.
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<bool> {
    let Some((file, v1)) = freezer(dirs) else {
        return Ok(false);
    };
    let value = match (v1, frozen) {
        (true, true) => "FROZEN",
        (true, false) => "THAWED",
        (false, true) => "1",
        (false, false) => "0",
    };
    std::fs::write(&file, value)
        .ctx(|| format!("cgroup: writing {value} to {}", file.display()))?;
    if v1 {
        // v1 freezes asynchronously too: freezer.state reads FREEZING until
        // every task is frozen (cgroup-v1/freezer-subsystem.rst), and a
        // loaded host takes a while. Like runc, write again and wait until
        // it reads what was asked, so that `state` right after `pause` says
        // paused (a shim resumes as soon as pause returned).
        let deadline = std::time::Instant::now() + FREEZE_TIMEOUT;
        loop {
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            if now.trim() == value {
                break;
            }
            if std::time::Instant::now() > deadline {
                if frozen {
                    let _ = std::fs::write(&file, "THAWED");
                }
                return Err(crate::Error::msg(format!(
                    "cgroup: {} still reads {:?}, not {value}, after {} s",
                    file.display(),
                    now.trim(),
                    FREEZE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            let _ = std::fs::write(&file, value);
        }
    } else {
        // v2 freezes asynchronously: cgroup.freeze is the wish, the
        // `frozen` key of cgroup.events the outcome (cgroup-v2.rst, "Core
        // Interface Files"). pause/resume return once it is reached.
        let events = file.with_file_name("cgroup.events");
        let want = format!("frozen {value}");
        let deadline = std::time::Instant::now() + FREEZE_TIMEOUT;
        loop {
            let now = std::fs::read_to_string(&events).unwrap_or_default();
            if now.lines().any(|l| l.trim() == want) {
                break;
            }
            if std::time::Instant::now() > deadline {
                if frozen {
                    let _ = std::fs::write(&file, "0");
                }
                return Err(crate::Error::msg(format!(
                    "cgroup: {} did not report '{want}' in cgroup.events within {} s",
                    file.parent().unwrap_or(&file).display(),
                    FREEZE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    Ok(true)
}

/// How long pause/resume wait for a v2 cgroup to reach the state asked.
const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    match freezer(dirs) {
        Some((f, true)) => std::fs::read_to_string(f)
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false),
        Some((f, false)) => std::fs::read_to_string(f)
            .map(|s| s.trim() == "1")
            .unwrap_or(false),
        None => false,
    }
}

/// Resource usage of the container's cgroup(s), in the shape of runc's
/// `events --stats` data (`cpu.usage.total` in ns, `memory.usage`,
/// `pids.current`).
pub fn stats(dirs: &[PathBuf]) -> serde_json::Value {
    let read = |file: &str| -> Option<String> {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|s| s.trim().to_string())
    };
    let num = |file: &str| read(file).and_then(|s| s.parse::<u64>().ok());
    let cpu_ns = num("cpuacct.usage").or_else(|| {
        read("cpu.stat")?
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    });
    let mem_usage = num("memory.usage_in_bytes").or_else(|| num("memory.current"));
    let mem_limit = num("memory.limit_in_bytes").or_else(|| num("memory.max"));
    let mem_max = num("memory.max_usage_in_bytes").or_else(|| num("memory.peak"));
    serde_json::json!({
        "cpu": {"usage": {"total": cpu_ns.unwrap_or(0)}},
        "memory": {"usage": {"usage": mem_usage.unwrap_or(0), "limit": mem_limit.unwrap_or(0), "max": mem_max.unwrap_or(0)}},
        "pids": {"current": num("pids.current").unwrap_or(0)},
    })
}

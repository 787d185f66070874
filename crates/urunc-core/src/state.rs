//! Per-container state under `--root`/ID: written atomically (temp file +
//! rename), guarded by a per-ID `flock`, created with an exclusive `mkdir`
//! so that of two `create`s of one ID exactly one wins.

use crate::error::StateError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// File that marks a container as urunc's (runc keeps `state.json`).
pub const STATE_FILE: &str = "urunc-state.json";
/// Socket on which the waiting process waits for `start`.
pub const START_SOCKET: &str = "start.sock";
/// Directory on which the sandbox root is mounted (in the container's
/// mount namespace only).
pub const SANDBOX_DIR: &str = "sandbox";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host PID of the waiting process, later the monitor.
    pub pid: i32,
    /// Its start time (clock ticks since boot) to tell a reused PID apart.
    pub pid_start: u64,
    pub created: String,
    pub started: bool,
    pub annotations: HashMap<String, String>,
    pub monitor: String,
    pub guest: String,
    /// Cgroup directories created for the container.
    pub cgroups: Vec<PathBuf>,
    /// Cgroup parents urunc created for them (removed when empty).
    #[serde(default)]
    pub cgroup_parents: Vec<PathBuf>,
    /// Network namespace joined by path (a pod's), if any.
    pub netns: Option<PathBuf>,
    pub tap: String,
    /// The network mode and ports chosen at create (SPEC §7).
    #[serde(default)]
    pub network: crate::network::mode::Choice,
    /// `poststart` hooks, kept from create so that start need not read
    /// config.json again.
    #[serde(default)]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    /// `poststop` hooks, kept here because the bundle may be gone by delete.
    pub poststop: Vec<oci_spec::runtime::Hook>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Start time and state letter of a live process, from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After "pid (comm) ", field 3 (state) is index 0, field 22 (starttime) index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

impl State {
    pub fn status(&self) -> Status {
        match proc_stat(self.pid) {
            Some((start, st)) if start == self.pid_start && st != 'Z' && st != 'X' => {
                if !self.started {
                    Status::Created
                } else if st == 'T' || crate::cgroups::is_frozen(&self.cgroups) {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.status() != Status::Stopped
    }

    /// The OCI state JSON (`runc state` output).
    pub fn oci_json(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": "1.0.2",
            "id": self.id,
            "status": status.as_str(),
            "pid": pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }
}

/// A container's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
}

pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |problem| {
        Err(StateError::BadId {
            id: id.into(),
            problem,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return bad("must not contain '/' or NUL, nor be '.' or '..'");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    Ok(())
}

/// Holds a container's lock until dropped.
pub struct Lock(#[allow(dead_code)] File);

impl StateDir {
    pub fn new(root: &Path, id: &str) -> Result<StateDir, StateError> {
        validate_id(id)?;
        Ok(StateDir {
            id: id.into(),
            path: root.join(id),
        })
    }

    fn io(&self, op: &'static str, path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            id: self.id.clone(),
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Is this a container urunc created (vs. one of the delegate's)?
    pub fn exists(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    /// Creates the directory; fails with "already exists" if it does.
    pub fn create(&self) -> Result<(), StateError> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.io("creating", parent, e))?;
        }
        match std::fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(self.id.clone()))
            }
            Err(e) => Err(self.io("creating", &self.path, e)),
        }
    }

    /// Takes the per-ID lock (blocking).
    pub fn lock(&self) -> Result<Lock, StateError> {
        let f = File::open(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound(self.id.clone())
            } else {
                self.io("opening", &self.path, e)
            }
        })?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(self.io("locking", &self.path, std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }

    pub fn save(&self, st: &State) -> Result<(), StateError> {
        let tmp = self.path.join(".state.tmp");
        let data = serde_json::to_vec_pretty(st).expect("state serialises");
        let mut f = File::create(&tmp).map_err(|e| self.io("writing", &tmp, e))?;
        f.write_all(&data)
            .map_err(|e| self.io("writing", &tmp, e))?;
        let dst = self.path.join(STATE_FILE);
        std::fs::rename(&tmp, &dst).map_err(|e| self.io("renaming", &dst, e))
    }

    pub fn load(&self) -> Result<State, StateError> {
        let p = self.path.join(STATE_FILE);
        let data = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound(self.id.clone())
            } else {
                self.io("reading", &p, e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
            id: self.id.clone(),
            path: p,
            problem: e.to_string(),
        })
    }

    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("removing", &self.path, e)),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join(START_SOCKET)
    }
}

/// All urunc containers under `root`.
pub fn list(root: &Path) -> Vec<State> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut v: Vec<State> = rd
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().to_str()?.to_string();
            StateDir::new(root, &id).ok()?.load().ok()
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_process_stat() {
        let (start, st) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(st == 'R' || st == 'S');
    }

    #[test]
    fn exclusive_create() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path(), "x").unwrap();
        s.create().unwrap();
        assert!(matches!(s.create(), Err(StateError::Exists(_))));
    }
}

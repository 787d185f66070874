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
    /// The `create` process while it is still at work: the state file is
    /// written before anything else exists, so that a `create` killed at
    /// any step leaves a record `delete` can clean up from.
    #[serde(default)]
    pub creating: Option<ProcRef>,
}

/// A process, told apart from a later one with the same PID by its start
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    pub start: u64,
}

impl ProcRef {
    /// This process.
    pub fn current() -> Option<ProcRef> {
        let pid = std::process::id() as i32;
        proc_stat(pid).map(|(start, _)| ProcRef { pid, start })
    }

    /// Alive (not a zombie) and still the same process.
    pub fn alive(&self) -> bool {
        self.pid > 0
            && matches!(proc_stat(self.pid), Some((s, st)) if s == self.start && st != 'Z' && st != 'X')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `create` is still at work.
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Start time and state letter of a live process, from /proc/PID/stat.
/// Read with one `read` into a fixed buffer: `read_to_string` sees size 0
/// for a procfs file and grows its buffer from 32 bytes, which took six
/// reads (and a statx) for this ~300-byte file, on every status check.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    use std::io::Read;
    let mut f = File::open(format!("/proc/{pid}/stat")).ok()?;
    // comm is at most 64 bytes (TASK_COMM_LEN 16, escaped) and the 50 or so
    // numeric fields stay well under 1 KiB.
    let mut buf = [0u8; 1024];
    let n = f.read(&mut buf).ok()?;
    let s = std::str::from_utf8(&buf[..n]).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After "pid (comm) ", field 3 (state) is index 0, field 22 (starttime) index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// True while `pid` still runs urunc's own executable: the waiting process
/// before it has exec'd the monitor (compared by inode, which holds across
/// mount namespaces).
fn runs_urunc(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: String| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    match (id(format!("/proc/{pid}/exe")), id("/proc/self/exe".into())) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

impl State {
    /// The waiting process or the monitor.
    pub fn process(&self) -> ProcRef {
        ProcRef {
            pid: self.pid,
            start: self.pid_start,
        }
    }

    pub fn status(&self) -> Status {
        if let Some(c) = &self.creating {
            // A `create` that died left a container that never was.
            return if c.alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.process().alive() {
            return Status::Stopped;
        }
        // `started` is saved before `start` wakes the waiting process; the
        // process itself says whether the monitor was exec'd (a `start`
        // killed before that leaves a container that is still created).
        if !self.started || runs_urunc(self.pid) {
            Status::Created
        } else if proc_stat(self.pid).is_some_and(|(_, st)| st == 'T')
            || crate::cgroups::is_frozen(&self.cgroups)
        {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The processes of this container that are still alive: the waiting
    /// process or monitor, and a `create` still at work.
    pub fn live_processes(&self) -> Vec<ProcRef> {
        [Some(self.process()), self.creating]
            .into_iter()
            .flatten()
            .filter(|p| p.alive())
            .collect()
    }

    pub fn is_alive(&self) -> bool {
        self.status() != Status::Stopped
    }

    /// The OCI state JSON (`runc state` output).
    pub fn oci_json(&self) -> serde_json::Value {
        self.oci_json_as(self.status())
    }

    /// The OCI state JSON with a status the caller knows (without looking
    /// at the processes again).
    pub fn oci_json_as(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid.max(0)
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

    /// Creates the directory holding `st`; fails with "already exists" if
    /// it does. The directory appears with its state file already in it (a
    /// temporary directory renamed into place without replacing), so a
    /// `create` killed at any point never leaves a directory that no
    /// command recognises as urunc's.
    pub fn create(&self, st: &State) -> Result<(), StateError> {
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(".urunc-new-{}-{nanos}", std::process::id()));
        // One mkdir when the root exists (the usual case); the root is
        // created, and a staging directory that a killed `create` with the
        // same PID and nanosecond left is cleared, only when mkdir says so.
        let mkdir = || std::fs::create_dir(&tmp).map_err(|e| self.io("creating", &tmp, e));
        match std::fs::create_dir(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(parent).map_err(|e| self.io("creating", parent, e))?;
                mkdir()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_dir_all(&tmp);
                mkdir()?;
            }
            Err(e) => return Err(self.io("creating", &tmp, e)),
        }
        // Written in place, without save's temporary file and rename: the
        // staging directory is nobody's until it is renamed to the ID, and
        // `list` skips it (its name is not the ID in the file).
        let file = tmp.join(STATE_FILE);
        let staged = serde_json::to_vec_pretty(st)
            .map_err(std::io::Error::other)
            .and_then(|data| File::create(&file).and_then(|mut f| f.write_all(&data)))
            .map_err(|e| self.io("writing", &file, e));
        let placed = staged.and_then(|()| {
            nix::fcntl::renameat2(
                None,
                &tmp,
                None,
                &self.path,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|e| match e {
                nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY => {
                    StateError::Exists(self.id.clone())
                }
                e => self.io("creating", &self.path, e.into()),
            })
        });
        match placed {
            Ok(()) => Ok(()),
            // A filesystem without RENAME_NOREPLACE: exclusive mkdir, then
            // the state file.
            Err(StateError::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                let _ = std::fs::remove_dir_all(&tmp);
                match std::fs::create_dir(&self.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(StateError::Exists(self.id.clone()))
                    }
                    Err(e) => return Err(self.io("creating", &self.path, e)),
                }
                self.save(st).inspect_err(|_| {
                    let _ = std::fs::remove_dir_all(&self.path);
                })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
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
        let dst = self.path.join(STATE_FILE);
        let r = File::create(&tmp)
            .and_then(|mut f| f.write_all(&data))
            .map_err(|e| self.io("writing", &tmp, e))
            .and_then(|()| std::fs::rename(&tmp, &dst).map_err(|e| self.io("renaming", &dst, e)));
        if r.is_err() {
            // (a full file system: the old state stays as it was)
            let _ = std::fs::remove_file(&tmp);
        }
        r
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

    /// Removes the directory, its state file last: a `delete` killed
    /// half-way leaves a directory that is still recognised as urunc's, so
    /// the next `delete` finishes the job.
    pub fn remove(&self) -> Result<(), StateError> {
        // What a container leaves here is known: the start socket, the
        // (empty) sandbox mountpoint and the state file, removed by name in
        // four syscalls; `remove_dir_all` (opening, listing and fstat-ing
        // each directory, ~19 syscalls) only when something else is left.
        // The state file goes last, so that a failure leaves the container
        // known to urunc and `delete` can be retried.
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        let quick = gone(std::fs::remove_file(self.socket()))
            .and_then(|()| gone(std::fs::remove_dir(self.path.join(SANDBOX_DIR))))
            .and_then(|()| gone(std::fs::remove_file(self.path.join(STATE_FILE))))
            .and_then(|()| gone(std::fs::remove_dir(&self.path)));
        if quick.is_ok() {
            return Ok(());
        }
        // Something else is there: everything but the state file, then it.
        let entries = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io("removing", &self.path, e)),
        };
        for e in entries.flatten() {
            if e.file_name() == STATE_FILE {
                continue;
            }
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("removing", &p, e)),
            }
        }
        let state = self.path.join(STATE_FILE);
        match std::fs::remove_file(&state) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("removing", &state, e)),
        }
        match std::fs::remove_dir(&self.path) {
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
            // (a `create`'s directory before it is renamed into place
            // holds a state file too, under another name)
            StateDir::new(root, &id)
                .ok()?
                .load()
                .ok()
                .filter(|st| st.id == id)
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
        let st: State = serde_json::from_value(serde_json::json!({
            "id": "x", "bundle": "/b", "rootfs": "/b/rootfs", "pid": 0, "pid_start": 0,
            "created": "", "started": false, "annotations": {}, "monitor": "qemu",
            "guest": "unikraft", "cgroups": [], "netns": null, "tap": "t", "poststop": [],
        }))
        .unwrap();
        s.create(&st).unwrap();
        assert!(matches!(s.create(&st), Err(StateError::Exists(_))));
        // The directory appeared with its state file; no staging dir is left.
        assert_eq!(s.load().unwrap().id, "x");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"]);
        assert_eq!(list(d.path()).len(), 1);
        s.remove().unwrap();
        assert!(!s.path.exists());
    }
}

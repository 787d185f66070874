//! Optional per-step timestamps (SPEC §9): `{"containerID":..,
//! "timestampID":"TSnn","time":<unix ns>}` lines appended to a file, so the
//! time from `create` to the monitor's `execve` can be split per step.

use crate::config::Timestamps;
use std::io::Write;

/// Lifecycle steps, in order.
pub mod ts {
    pub const CREATE_START: &str = "TS00"; // urunc create invoked
    pub const CREATE_VALIDATED: &str = "TS01"; // bundle + metadata validated
    pub const CREATE_FORKED: &str = "TS02"; // waiting process in its namespaces
    pub const CREATE_DONE: &str = "TS03"; // create hooks done, state written
    pub const START_START: &str = "TS10"; // urunc start invoked
    pub const START_SIGNALLED: &str = "TS11"; // waiting process woken
    pub const START_NETWORK: &str = "TS12"; // tap + tc ready
    pub const START_PLANNED: &str = "TS13"; // monitor argv built
    pub const START_SANDBOX: &str = "TS14"; // sandbox root + pivot_root done
    pub const START_EXEC: &str = "TS15"; // about to execve the monitor
    pub const START_DONE: &str = "TS16"; // urunc start saw the exec
    pub const DELETE_START: &str = "TS20"; // urunc delete invoked
    pub const DELETE_DONE: &str = "TS21"; // everything removed
}

/// Appends timestamp lines. The file is opened once, up front, so that
/// steps after `pivot_root` (where its path is not visible) still reach it.
pub struct Recorder<'a> {
    file: Option<std::fs::File>,
    id: &'a str,
}

impl<'a> Recorder<'a> {
    pub fn new(cfg: &Timestamps, id: &'a str) -> Self {
        let file = cfg.enabled.then(|| {
            if let Some(dir) = cfg.destination.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&cfg.destination)
                .ok()
        });
        Recorder {
            file: file.flatten(),
            id,
        }
    }

    pub fn mark(&self, step: &str) {
        let Some(mut f) = self.file.as_ref() else {
            return;
        };
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let line = format!(
            "{{\"containerID\":{},\"timestampID\":\"{step}\",\"time\":{ns}}}\n",
            serde_json::Value::String(self.id.to_string())
        );
        let _ = f.write_all(line.as_bytes());
    }
}

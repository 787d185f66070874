//! One file per operation. Each takes the [`Runtime`] (global flags and
//! config) and a container ID.

mod create;
mod delete;
mod events;
mod kill;
mod pause;
mod ps;
mod start;
mod state;

pub use create::{create, CreateOpts, Outcome};
pub use delete::{delete, delete_known};
pub use events::stats;
pub use kill::{kill, parse_signal};
pub use pause::{pause, resume};
pub use ps::ps;
pub use start::{start, start_created};
pub use state::state;

use crate::config::Config;
use crate::error::ConfigError;
use crate::error::Result;
use crate::state::{State, StateDir};
use std::path::PathBuf;

/// Global flags plus the loaded config.
pub struct Runtime {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// Unprivileged operation (see [`crate::sandbox::userns`]).
    pub rootless: bool,
    /// The config file's settings; the defaults when it could not be used.
    pub config: Config,
    /// Why the config file could not be used: `create` of a unikernel
    /// fails with it, everything else carries on with the defaults.
    pub config_error: Option<ConfigError>,
}

impl Runtime {
    pub fn dir(&self, id: &str) -> Result<StateDir> {
        Ok(StateDir::new(&self.root, id)?)
    }

    /// True when `id` is a container urunc created.
    pub fn owns(&self, id: &str) -> bool {
        StateDir::new(&self.root, id)
            .map(|d| d.exists())
            .unwrap_or(false)
    }

    pub fn load(&self, id: &str) -> Result<(StateDir, State)> {
        let d = self.dir(id)?;
        let s = d.load()?;
        Ok((d, s))
    }
}

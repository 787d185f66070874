//! Errors, one enum per area. Every message names the input that was wrong
//! and what was wrong with it, so that the line containerd shows the user is
//! enough to fix the problem.

use std::path::PathBuf;
use thiserror::Error;

/// Problems with the unikernel metadata (annotations or `/urunc.json`).
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("unikernel metadata: key {key}: {problem}")]
    Invalid { key: String, problem: String },
    #[error("unikernel metadata: {path}: {problem}")]
    File { path: PathBuf, problem: String },
}

impl MetadataError {
    pub fn invalid(key: &str, problem: impl Into<String>) -> Self {
        MetadataError::Invalid {
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

/// Problems with the OCI bundle.
#[derive(Debug, Error)]
pub enum BundleError {
    /// config.json; `problem` names the field (JSON path) and the line.
    #[error("bundle {bundle}: config.json: {problem}")]
    Spec { bundle: PathBuf, problem: String },
    #[error("bundle {bundle}: {problem}")]
    Invalid { bundle: PathBuf, problem: String },
}

/// Problems found while planning the monitor's launch (pure stage).
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("monitor {monitor}: {problem}")]
    Monitor { monitor: String, problem: String },
    #[error("guest {guest}: {problem}")]
    Guest { guest: String, problem: String },
    /// A mount of the OCI spec (a volume, see [`crate::shares`]).
    #[error("spec mount {destination}: {problem}")]
    Mount {
        destination: String,
        problem: String,
    },
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// Problems with `/etc/urunc/config.toml`.
#[derive(Debug, Clone, Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: cannot read it: {problem}")]
    Read { path: PathBuf, problem: String },
}

/// Problems with the state directory of a container.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container id {id:?}: {problem}")]
    BadId { id: String, problem: &'static str },
    #[error("container {id}: state file {path}: {problem}")]
    Corrupt {
        id: String,
        path: PathBuf,
        problem: String,
    },
    #[error("container {id}: {op} {path}: {source}")]
    Io {
        id: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Any failure of a lifecycle operation.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Network(#[from] crate::network::NetError),
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Msg(String),
}

impl Error {
    pub fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::sys("system call failed", std::io::Error::from(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Extension to attach "what was being done" to OS errors.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

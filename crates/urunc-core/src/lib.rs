//! urunc-core: run unikernels as OCI containers.
//!
//! Reading order: [`lifecycle`] (one file per operation) → [`plan`] (the
//! pure stage) → [`monitor`] / [`guest`] → [`sandbox`] (the waiting process
//! that applies the plan and execs the monitor).

pub mod bundle;
pub mod cgroups;
pub mod compat;
pub mod config;
pub mod disk;
pub mod error;
pub mod guest;
pub mod hooks;
pub mod lifecycle;
pub mod log;
pub mod metadata;
pub mod monitor;
pub mod network;
pub mod plan;
pub mod rootfs;
pub mod sandbox;
pub mod shares;
pub mod state;
pub mod storage;
pub mod testpoint;
pub mod timestamps;

pub use error::{Error, Result};

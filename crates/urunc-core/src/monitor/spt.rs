//! Solo5-spt (`solo5-spt`): the sandboxed-process tender. No KVM; it
//! installs its own seccomp filter before running the guest, so urunc adds
//! none.

use super::solo5;
use super::solo5_manifest::Manifest;
use super::solo5_manifest::Target;
use super::{Monitor, MonitorCommand, MonitorRequest};

pub struct Spt;

impl Monitor for Spt {
    fn name(&self) -> &'static str {
        "spt"
    }

    fn default_binary(&self) -> &'static str {
        "solo5-spt"
    }

    fn default_overhead_mib(&self) -> u64 {
        16
    }

    /// The tenders open a disk read-write only (solo5 v0.9.0
    /// `tenders/common/block_attach.c`: `open(path, O_RDWR)`).
    fn read_only_disks(&self) -> bool {
        false
    }

    fn inspect(&self, kernel: &std::fs::File) -> Result<Option<Manifest>, String> {
        solo5::inspect(kernel, Target::Spt).map(Some)
    }

    fn command(&self, req: &MonitorRequest) -> Result<MonitorCommand, String> {
        solo5::command(req, false)
    }
}

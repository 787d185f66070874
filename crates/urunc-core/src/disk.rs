//! What happens to the guest's disk at `create`, before anything is
//! handed over: the file-system check for a block-backed rootfs and the
//! read-only rule for `root.readonly`. Used by [`crate::plan::prepare`].

use crate::error::PlanError;
use crate::guest::Guest;
use crate::metadata::{KEY_BLOCK, KEY_USE_DM_BLOCK};
use crate::monitor::Monitor;
use crate::storage::{self, BlockRootfs};
use oci_spec::runtime::Spec;
use std::path::Path;

/// Checks the disk `block` (an image, or the device of `block_rootfs`)
/// and says whether the monitor must give it read-only.
///
/// - Only a block-backed rootfs is checked for its file system: a disk
///   image may hold any file system the guest reads (see
///   [`crate::guest::GuestNeeds::ext2_block_rootfs`]).
/// - A read-only rootfs (`root.readonly`, Kubernetes'
///   `readOnlyRootFilesystem`) makes the disk read-only too: given so where
///   the monitor can ([`Monitor::read_only_disks`]), else refused here
///   rather than failing after `start`.
pub fn check(
    spec: &Spec,
    guest: &dyn Guest,
    mon: &dyn Monitor,
    block: Option<&Path>,
    block_rootfs: Option<&BlockRootfs>,
) -> Result<bool, PlanError> {
    if let (true, Some(b)) = (guest.needs().ext2_block_rootfs, block_rootfs) {
        storage::check_ext2(&b.device).map_err(|e| PlanError::Guest {
            guest: guest.name().into(),
            problem: format!(
                "{KEY_USE_DM_BLOCK}: it mounts its rootfs device as ext2, and {} {e}",
                b.device.display()
            ),
        })?;
    }
    let Some(disk) = block else {
        return Ok(false);
    };
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if readonly && !mon.read_only_disks() {
        let key = if block_rootfs.is_some() {
            KEY_USE_DM_BLOCK
        } else {
            KEY_BLOCK
        };
        let hv = mon.name();
        return Err(PlanError::Monitor {
            monitor: hv.into(),
            problem: format!(
                "root.readonly is set (readOnlyRootFilesystem), so the disk {} ({key}) must be read-only, but {hv} opens disks read-write only (solo5 v0.9.0 tenders/common/block_attach.c); set root.readonly to false or give no disk",
                disk.display()
            ),
        });
    }
    Ok(readonly)
}

//! Unikernel frameworks. Each one renders the guest command line it parses
//! and says what it needs from a monitor. Adding a framework is one file
//! here plus one line in [`REGISTRY`] and its row in [`crate::compat`].

use std::net::Ipv4Addr;

mod linux;
mod mewz;
mod mirage;
mod rumprun;
mod unikraft;

/// Network values the guest must use: the container's own (eth0's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Option<Ipv4Addr>,
}

impl GuestNet {
    /// `255.255.255.0` for prefix 24.
    pub fn netmask(&self) -> Ipv4Addr {
        prefix_to_mask(self.prefix)
    }
}

pub fn prefix_to_mask(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(if p == 0 { 0 } else { u32::MAX << (32 - p) })
}

/// Disk handed to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestBlock {
    /// Where the guest should mount it (`blkMntPoint`), if given.
    pub mount_point: Option<String>,
    /// The monitor gives it read-only (`root.readonly` with a disk).
    pub readonly: bool,
}

/// A directory the monitor shares with the guest by tag (9p or virtio-fs;
/// see [`crate::shares`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestShare {
    /// Device tag: `fs0` the container rootfs, `fs1`.. volumes.
    pub tag: String,
    /// Where the guest mounts it; `/` is the guest's root.
    pub mount_point: String,
    pub readonly: bool,
    pub fs: crate::shares::ShareFs,
}

/// Everything a guest needs to render its command line.
#[derive(Debug, Clone)]
pub struct GuestArgs<'a> {
    /// The application command line: `process.args`, else `cmdline` metadata.
    pub app: &'a [String],
    /// `process.env`, `K=V` each.
    pub env: &'a [String],
    pub net: Option<&'a GuestNet>,
    pub initrd: bool,
    pub block: Option<&'a GuestBlock>,
    /// Shared directories (`mountRootfs`, volumes); empty for guests whose
    /// needs say no `shared_dirs`.
    pub shares: &'a [GuestShare],
    /// `unikernelVersion` metadata.
    pub version: Option<&'a str>,
    /// Monitor name (`qemu`, `firecracker`, ...), for monitor-specific
    /// kernel parameters.
    pub monitor: &'a str,
}

/// What a guest needs from the monitor, as capabilities rather than names,
/// so that monitors never need to know guests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestNeeds {
    /// Guest memory below this is refused.
    pub min_memory_mib: u64,
    /// A guest reboot must end the monitor (QEMU `-no-reboot`).
    pub exit_on_reboot: bool,
    /// Console on a plain serial port, no default devices.
    pub serial_console: bool,
    /// Exit through QEMU's isa-debug-exit device at port 0x501.
    pub debug_exit: bool,
    /// virtio devices must be modern-only (no legacy interface).
    pub modern_virtio: bool,
    /// A block-backed rootfs handed to it (`useDMBlock`) must hold ext2:
    /// the only one of Rumprun's disk file systems (`mount_blk` in
    /// rumprun's lib/librumprun_base/config.c tries LFS, CD9660, FFS,
    /// EXT2FS) that a Linux snapshotter makes. Disk images (`block`) are
    /// not checked: they may hold any of the four.
    pub ext2_block_rootfs: bool,
    /// It mounts directories shared by tag (9p, virtio-fs): `mountRootfs`
    /// and volumes are possible.
    pub shared_dirs: bool,
}

pub trait Guest: Sync {
    fn name(&self) -> &'static str;
    /// The guest command line as words. Monitors that take one string
    /// (QEMU `-append`, Firecracker `boot_args`) join them with spaces;
    /// Solo5 passes them as separate arguments.
    fn words(&self, args: &GuestArgs) -> Result<Vec<String>, String>;
    fn needs(&self) -> GuestNeeds {
        GuestNeeds::default()
    }
}

/// All frameworks, by metadata name.
pub static REGISTRY: &[&dyn Guest] = &[
    &unikraft::Unikraft,
    &linux::Linux,
    &mirage::Mirage,
    &mewz::Mewz,
    &rumprun::Rumprun,
];

pub fn lookup(name: &str) -> Option<&'static dyn Guest> {
    REGISTRY.iter().copied().find(|g| g.name() == name)
}

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|g| g.name()).collect()
}

/// Quotes one word with single quotes when it contains whitespace (the
/// guest-side init re-joins such words).
pub(crate) fn quote_word(w: &str) -> String {
    if w.is_empty() || w.chars().any(char::is_whitespace) {
        format!("'{w}'")
    } else {
        w.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_to_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_to_mask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(prefix_to_mask(20), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(prefix_to_mask(1), Ipv4Addr::new(128, 0, 0, 0));
    }

    #[test]
    fn registry_names_unique() {
        let mut n = names();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), REGISTRY.len());
    }
}

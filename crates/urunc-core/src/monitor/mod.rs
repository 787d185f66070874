//! Virtual machine monitors. Each one turns a [`MonitorRequest`] into the
//! argv it is exec'd with (plus any config file it reads), as a value,
//! without running anything. Adding a monitor is one file here plus one
//! line in [`REGISTRY`] (and its name in [`KNOWN`] and [`crate::compat`]).

use crate::config::MonitorConfig;
use crate::guest::GuestNeeds;
use crate::shares::ShareFs;
use std::path::{Path, PathBuf};

mod clh;
mod firecracker;
mod hvt;
pub mod kernel_image;
pub mod qemu;
mod solo5;
pub mod solo5_manifest;
mod spt;

pub use solo5_manifest::Manifest;

/// Every monitor name the metadata may use.
pub const KNOWN: &[&str] = &["qemu", "firecracker", "hvt", "spt", "clh"];

/// Other names the metadata may give a monitor: `(alias, name)`.
pub const ALIASES: &[(&str, &str)] = &[("cloud-hypervisor", "clh")];

/// The monitor name an alias stands for (any other name unchanged).
pub fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name, |(_, n)| n)
}

/// Monitors implemented in this build.
pub static REGISTRY: &[&dyn Monitor] = &[
    &qemu::Qemu,
    &hvt::Hvt,
    &spt::Spt,
    &firecracker::Firecracker,
    &clh::Clh,
];

pub fn lookup(name: &str) -> Option<&'static dyn Monitor> {
    REGISTRY.iter().copied().find(|m| m.name() == name)
}

/// The NIC the guest gets: the container's tap and eth0's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub tap: String,
    pub mac: [u8; 6],
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A directory the monitor shares with the guest (see [`crate::shares`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorShare {
    /// Device tag the guest mounts it by.
    pub tag: String,
    /// The directory as the monitor sees it.
    pub path: PathBuf,
    pub readonly: bool,
    pub fs: ShareFs,
}

/// Everything a monitor needs to build its command line. Paths are as the
/// monitor will see them (inside the container's sandbox root).
#[derive(Debug, Clone)]
pub struct MonitorRequest<'a> {
    pub binary: &'a Path,
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    pub block: Option<&'a Path>,
    /// Give `block` read-only (`root.readonly`); only asked of monitors
    /// whose [`Monitor::read_only_disks`] is true.
    pub block_readonly: bool,
    /// Shared directories; only for monitors whose [`Monitor::share_fs`]
    /// offers their transport.
    pub shares: &'a [MonitorShare],
    /// Guest command line words (see [`crate::guest::Guest::words`]).
    pub guest_words: &'a [String],
    pub needs: GuestNeeds,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub nic: Option<&'a Nic>,
    pub seccomp: bool,
    pub config: &'a MonitorConfig,
    /// A private directory (as the monitor sees it) for files the monitor
    /// reads, e.g. a config file.
    pub work_dir: &'a Path,
    /// What [`Monitor::inspect`] read from the kernel at `create` (Solo5:
    /// the devices the unikernel declares).
    pub manifest: Option<&'a Manifest>,
}

/// The monitor's launch, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorCommand {
    pub argv: Vec<String>,
    /// Files to write before exec: (path as the monitor sees it, contents).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Device nodes the monitor opens.
    pub devices: Vec<PathBuf>,
}

pub trait Monitor: Sync {
    /// Name used in the `hypervisor` metadata key and the config file.
    fn name(&self) -> &'static str;
    /// Executable looked up in `$PATH` when the config file names none.
    fn default_binary(&self) -> &'static str;
    /// Memory the monitor process needs beyond guest RAM, in MiB.
    fn default_overhead_mib(&self) -> u64;
    fn command(&self, req: &MonitorRequest) -> Result<MonitorCommand, String>;
    /// Reads what the monitor must know from the kernel file itself, at
    /// `create`: the open file resolved in the rootfs, the one the monitor
    /// will be given (Solo5: the manifest of declared devices, see
    /// [`solo5_manifest`]). Most monitors need nothing. Errors say what is
    /// wrong with the file, phrased to follow "kernel <path> " (the caller
    /// adds the key and the path).
    fn inspect(&self, _kernel: &std::fs::File) -> Result<Option<Manifest>, String> {
        Ok(None)
    }
    /// Seccomp filter urunc installs on the monitor right before the exec,
    /// when seccomp is on, for monitors that do not confine themselves.
    fn seccomp_filter(&self) -> Result<Option<seccompiler::BpfProgram>, String> {
        Ok(None)
    }
    /// Whether it can give the guest a disk read-only.
    fn read_only_disks(&self) -> bool {
        true
    }
    /// The transports it can share a host directory with the guest over
    /// (none for most monitors).
    fn share_fs(&self) -> &'static [ShareFs] {
        &[]
    }
}

/// Finds the monitor's executable: the config file's path, else `$PATH`.
pub fn find_binary(monitor: &dyn Monitor, cfg: &MonitorConfig) -> Result<PathBuf, String> {
    if let Some(p) = &cfg.path {
        return if is_executable(p) {
            Ok(p.clone())
        } else {
            Err(format!(
                "{} (from the config file) is not an executable file",
                p.display()
            ))
        };
    }
    let name = monitor.default_binary();
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!("{name} not found in $PATH; install it or set its path in the config file")
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Escapes a value for QEMU's comma-separated option syntax.
pub(crate) fn qemu_opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// A fixed request for golden tests of the monitors that load kernels
/// themselves: `/app 'hello world'`, `A=1`, 10.0.0.2/24 via 10.0.0.1 with
/// DNS 9.9.9.9, tap `urunc0123abcd` with MAC 02:42:ac:11:00:02, 128 MiB,
/// 2 vCPUs, work dir /run/urunc.
#[cfg(test)]
pub(crate) mod golden {
    use super::*;
    use crate::guest::{self, GuestArgs, GuestBlock, GuestNet};

    pub struct Case {
        pub guest: &'static str,
        pub initrd: bool,
        pub block: bool,
        pub net: bool,
        pub seccomp: bool,
    }

    /// `monitor.command` for `c`, with the guest's own words.
    pub fn command(
        monitor: &dyn Monitor,
        binary: &str,
        c: &Case,
    ) -> Result<MonitorCommand, String> {
        let g = guest::lookup(c.guest).unwrap();
        let app = vec!["/app".to_string(), "hello world".into()];
        let env = vec!["A=1".to_string()];
        let gnet = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: Some("9.9.9.9".parse().unwrap()),
        };
        let gblock = GuestBlock {
            mount_point: None,
            readonly: false,
        };
        let words = g.words(&GuestArgs {
            app: &app,
            env: &env,
            net: c.net.then_some(&gnet),
            initrd: c.initrd,
            block: c.block.then_some(&gblock),
            shares: &[],
            version: None,
            monitor: monitor.name(),
        })?;
        let nic = Nic {
            tap: "urunc0123abcd".into(),
            mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        };
        let cfg = MonitorConfig::default();
        monitor.command(&MonitorRequest {
            block_readonly: false,
            binary: Path::new(binary),
            kernel: Path::new("/rootfs/unikernel/kernel"),
            initrd: c.initrd.then_some(Path::new("/rootfs/unikernel/initrd")),
            block: c.block.then_some(Path::new("/rootfs/disk.img")),
            shares: &[],
            guest_words: &words,
            needs: g.needs(),
            memory_mib: 128,
            vcpus: 2,
            nic: c.net.then_some(&nic),
            seccomp: c.seccomp,
            config: &cfg,
            work_dir: Path::new("/run/urunc"),
            manifest: None,
        })
    }
}

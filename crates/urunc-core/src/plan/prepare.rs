//! What `create` learns: [`prepare`] validates the bundle and metadata
//! (so that bad input fails before anything exists) and resolves the files
//! the metadata names, once, to open files ([`crate::rootfs`]); the
//! [`Unikernel`] it yields is what [`super::plan`] plans from.

use crate::compat;
use crate::config::{Config, MonitorConfig};
use crate::disk;
use crate::error::{MetadataError, PlanError};
use crate::guest::{self, Guest};
use crate::metadata::{self, Metadata};
use crate::monitor::{self, Manifest, Monitor};
use crate::rootfs::{open_in_root, Refused, RootFile};
use crate::shares::{self, Share, ShareFs};
use crate::storage::{self, BlockRootfs};
use oci_spec::runtime::Spec;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// A validated unikernel container: what `create` learned.
pub struct Unikernel {
    pub guest: &'static dyn Guest,
    pub monitor: &'static dyn Monitor,
    pub monitor_binary: PathBuf,
    pub monitor_config: MonitorConfig,
    /// Host path of the container rootfs.
    pub rootfs: PathBuf,
    /// The files the metadata names, each resolved once inside the rootfs
    /// and held open: the monitor gets these files, never their names
    /// again (see [`Unikernel::boot_files`]).
    pub kernel: RootFile,
    pub initrd: Option<RootFile>,
    /// The disk image (`block`); a `useDMBlock` disk is `block_rootfs`.
    pub block: Option<RootFile>,
    pub block_mount_point: Option<String>,
    /// The disk is given read-only: the spec's `root.readonly` is set.
    pub block_readonly: bool,
    pub version: Option<String>,
    /// Application command line.
    pub app: Vec<String>,
    pub env: Vec<String>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub seccomp: bool,
    /// Added to the cgroup memory limit for the monitor itself.
    pub overhead_mib: u64,
    pub dns_fallback: Ipv4Addr,
    /// What the monitor read from the kernel at `create` (Solo5: the
    /// devices the unikernel declares), see [`Monitor::inspect`].
    pub manifest: Option<Manifest>,
    /// `useDMBlock`: the block device behind the rootfs, handed to the guest
    /// as its disk (`block` is then `None`); see [`crate::storage`].
    pub block_rootfs: Option<BlockRootfs>,
    /// Shared directories: the rootfs (`mountRootfs`, tag `fs0`) and the
    /// spec's volumes (`fs1`..); see [`crate::shares`].
    pub shares: Vec<Share>,
    /// How they reach the guest (config `shared_fs`).
    pub share_fs: ShareFs,
    /// The virtiofsd binary, when shares go over virtio-fs.
    pub virtiofsd: Option<PathBuf>,
}

impl std::fmt::Debug for Unikernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unikernel")
            .field("guest", &self.guest.name())
            .field("monitor", &self.monitor.name())
            .field("kernel", &self.kernel.path)
            .finish_non_exhaustive()
    }
}

/// The file `key` names, resolved inside the rootfs and opened (see
/// [`crate::rootfs`]); errors name the key and the path.
fn resolve_file(
    rootfs: &Path,
    md: &Metadata,
    key: &str,
    value: &str,
) -> Result<RootFile, MetadataError> {
    open_in_root(rootfs, value).map_err(|e| {
        MetadataError::invalid(
            key,
            match e {
                Refused::Missing => format!(
                    "{value:?} does not exist in the rootfs{}",
                    md.base64_hint(key, value)
                ),
                Refused::Problem(p) => format!("{value:?} {p}"),
            },
        )
    })
}

/// Validates metadata against the bundle and config.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    md: &Metadata,
    cfg: &Config,
) -> Result<Unikernel, PlanError> {
    use metadata::*;
    let ty = md
        .unikernel_type
        .as_deref()
        .ok_or_else(|| MetadataError::invalid(KEY_TYPE, "missing (the unikernel framework)"))?;
    let guest = guest::lookup(ty).ok_or_else(|| {
        MetadataError::invalid(
            KEY_TYPE,
            format!(
                "{ty:?} is not a known framework (known: {}){}",
                guest::names().join(", "),
                md.base64_hint(KEY_TYPE, ty)
            ),
        )
    })?;
    let hv = md
        .hypervisor
        .as_deref()
        .ok_or_else(|| MetadataError::invalid(KEY_HYPERVISOR, "missing (the monitor)"))?;
    let hv = monitor::canonical(hv);
    if !monitor::KNOWN.contains(&hv) {
        return Err(MetadataError::invalid(
            KEY_HYPERVISOR,
            format!(
                "{hv:?} is not a known monitor (known: {}){}",
                monitor::KNOWN.join(", "),
                md.base64_hint(KEY_HYPERVISOR, hv)
            ),
        )
        .into());
    }
    if !compat::supported(ty, hv) {
        return Err(MetadataError::invalid(
            KEY_HYPERVISOR,
            format!(
                "{ty} cannot run on {hv} (it runs on: {})",
                compat::monitors_for(ty).join(", ")
            ),
        )
        .into());
    }
    let mon = monitor::lookup(hv).ok_or_else(|| PlanError::Monitor {
        monitor: hv.into(),
        problem: "not available in this build of urunc".into(),
    })?;
    let mut mcfg = cfg.monitor(hv);
    if hv == "qemu" {
        // vhost-net: on where the host has the device, unless the config
        // turns it off; settled here so that the plan stays pure.
        let present = Path::new(monitor::qemu::VHOST_NET).exists();
        mcfg.vhost = Some(mcfg.vhost.unwrap_or(present));
    }
    let (shares, share_fs) = plan_shares(spec, rootfs, md, guest, mon, &mcfg)?;
    let virtiofsd = match (share_fs, shares.is_empty()) {
        (ShareFs::VirtioFs, false) => Some(
            shares::find_virtiofsd(mcfg.virtiofsd.as_deref()).map_err(|problem| {
                PlanError::Monitor {
                    monitor: hv.into(),
                    problem,
                }
            })?,
        ),
        _ => None,
    };
    let bin = md.binary.as_deref().ok_or_else(|| {
        MetadataError::invalid(KEY_BINARY, "missing (the kernel's path in the rootfs)")
    })?;
    let kernel = resolve_file(rootfs, md, KEY_BINARY, bin)?;
    let initrd = md
        .initrd
        .as_deref()
        .map(|v| resolve_file(rootfs, md, KEY_INITRD, v))
        .transpose()?;
    let block = md
        .block
        .as_deref()
        .map(|v| resolve_file(rootfs, md, KEY_BLOCK, v))
        .transpose()?;
    let block_rootfs = if md.use_dm_block {
        if md.block.is_some() {
            return Err(MetadataError::invalid(
                KEY_USE_DM_BLOCK,
                format!("both {KEY_BLOCK} and useDMBlock name the guest's disk; set only one"),
            )
            .into());
        }
        let b = storage::find_block_rootfs(rootfs)
            .map_err(|e| MetadataError::invalid(KEY_USE_DM_BLOCK, e))?;
        Some(b)
    } else {
        None
    };
    let disk_path = block
        .as_ref()
        .map(|f| f.path.as_path())
        .or(block_rootfs.as_ref().map(|b| b.device.as_path()));
    let block_readonly = disk::check(spec, guest, mon, disk_path, block_rootfs.as_ref())?;
    // The monitor reads the file that was resolved (the one it will get)
    // and says what is wrong with it; the key and the path are added here,
    // once for every monitor.
    let manifest = mon
        .inspect(&kernel.file)
        .map_err(|problem| PlanError::Monitor {
            monitor: hv.into(),
            problem: format!(
                "key {KEY_BINARY}: kernel {} {problem}",
                kernel.path.display()
            ),
        })?;
    let monitor_binary =
        monitor::find_binary(mon, &mcfg).map_err(|problem| PlanError::Monitor {
            monitor: hv.into(),
            problem,
        })?;

    let process = spec.process().as_ref();
    let args: Vec<String> = process.and_then(|p| p.args().clone()).unwrap_or_default();
    let app = if args.is_empty() {
        md.cmdline
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    } else {
        args
    };
    let env = process.and_then(|p| p.env().clone()).unwrap_or_default();

    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let mem_limit = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0);
    let memory_mib = match mem_limit {
        Some(bytes) => {
            let mib = (bytes as u64) >> 20;
            if mib == 0 {
                return Err(PlanError::Guest {
                    guest: ty.into(),
                    problem: format!("memory limit {bytes} bytes is below 1 MiB"),
                });
            }
            mib
        }
        None => mcfg.default_memory_mib.unwrap_or(cfg.default_memory_mib),
    };
    let min = guest.needs().min_memory_mib;
    if memory_mib < min {
        return Err(PlanError::Guest {
            guest: ty.into(),
            problem: format!("{memory_mib} MiB of memory is below its minimum of {min} MiB (raise the container's memory limit)"),
        });
    }
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    let from_quota = cpu.and_then(|c| match (c.quota(), c.period()) {
        (Some(q), Some(p)) if q > 0 && p > 0 => Some(((q as u64).div_ceil(p)).max(1) as u32),
        _ => None,
    });
    let vcpus = cfg
        .vcpus
        .or(from_quota)
        .or(mcfg.default_vcpus)
        .unwrap_or(cfg.default_vcpus)
        .max(1);
    let seccomp = cfg.seccomp
        && spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_some();
    Ok(Unikernel {
        guest,
        monitor: mon,
        overhead_mib: mcfg.overhead_mib.unwrap_or(mon.default_overhead_mib()),
        monitor_binary,
        monitor_config: mcfg,
        rootfs: rootfs.to_path_buf(),
        kernel,
        initrd,
        block,
        block_mount_point: md.blk_mnt_point.clone(),
        block_readonly,
        version: md.version.clone(),
        app,
        env,
        memory_mib,
        vcpus,
        seccomp,
        dns_fallback: cfg.dns_fallback,
        manifest,
        block_rootfs,
        shares,
        share_fs,
        virtiofsd,
    })
}

/// The shared directories (`mountRootfs`, volumes) and their transport;
/// an error when the guest or monitor cannot share directories.
fn plan_shares(
    spec: &Spec,
    rootfs: &Path,
    md: &Metadata,
    guest: &dyn Guest,
    mon: &dyn Monitor,
    mcfg: &MonitorConfig,
) -> Result<(Vec<Share>, ShareFs), PlanError> {
    let fs = match mcfg.shared_fs.as_deref() {
        None => ShareFs::NineP,
        Some(v) => ShareFs::parse(v).ok_or_else(|| PlanError::Monitor {
            monitor: mon.name().into(),
            problem: format!("config shared_fs = {v:?}: expected \"9p\" or \"virtiofs\""),
        })?,
    };
    let can_share = guest.needs().shared_dirs && mon.share_fs().contains(&fs);
    let why_not = || {
        if !guest.needs().shared_dirs {
            format!("{} guests cannot mount shared directories", guest.name())
        } else if mon.share_fs().is_empty() {
            format!("{} cannot share directories with the guest", mon.name())
        } else {
            format!("{} cannot share directories over {}", mon.name(), fs.name())
        }
    };
    let mut out = Vec::new();
    if md.mount_rootfs {
        use metadata::{KEY_MOUNT_ROOTFS, KEY_USE_DM_BLOCK};
        if !can_share {
            return Err(MetadataError::invalid(
                KEY_MOUNT_ROOTFS,
                format!(
                    "the container rootfs cannot be shared with the guest: {} (shared directories need QEMU and a Unikraft or Linux guest)",
                    why_not()
                ),
            )
            .into());
        }
        if md.use_dm_block {
            return Err(MetadataError::invalid(
                KEY_MOUNT_ROOTFS,
                format!("both mountRootfs and {KEY_USE_DM_BLOCK} hand the rootfs to the guest; set only one"),
            )
            .into());
        }
        let readonly = spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false);
        out.push(Share {
            tag: shares::ROOTFS_TAG.into(),
            source: rootfs.to_path_buf(),
            mount_point: "/".into(),
            readonly,
            recursive: true,
        });
    }
    let volumes = shares::volumes(spec, rootfs)?;
    if let (Some(v), false) = (volumes.first(), can_share) {
        return Err(PlanError::Mount {
            destination: v.mount_point.clone(),
            problem: format!(
                "this volume cannot be shared with the guest: {} (shared directories need QEMU and a Unikraft or Linux guest)",
                why_not()
            ),
        });
    }
    out.extend(volumes);
    Ok((out, fs))
}

/// A file the monitor gets: one the metadata names, as resolved at
/// `create` (see [`Unikernel::boot_files`]).
pub struct BootFile<'a> {
    /// Its name in the sandbox's boot directory (see [`View::Sandbox`]).
    pub name: &'static str,
    pub file: &'a RootFile,
    /// Given read-only: the kernel and initrd always, the disk with
    /// `root.readonly`.
    pub readonly: bool,
}

impl Unikernel {
    /// The files the monitor gets, as resolved at `create`: the kernel,
    /// the initrd and the disk image, whichever there are.
    pub fn boot_files(&self) -> Vec<BootFile<'_>> {
        let mut v = vec![BootFile {
            name: "kernel",
            file: &self.kernel,
            readonly: true,
        }];
        if let Some(f) = &self.initrd {
            v.push(BootFile {
                name: "initrd",
                file: f,
                readonly: true,
            });
        }
        if let Some(f) = &self.block {
            v.push(BootFile {
                name: "disk",
                file: f,
                readonly: self.block_readonly,
            });
        }
        v
    }

    /// `useDMBlock`: hands the block device behind the rootfs to the guest
    /// ([`storage::hand_over`]) and points the rootfs, kernel and initrd at
    /// copies kept in `state_dir`, made from the files resolved at
    /// `prepare` (whose descriptors must be closed before the rootfs can
    /// be unmounted). Nothing to do without one.
    pub fn hand_over_block(&mut self, state_dir: &Path) -> crate::error::Result<()> {
        let Some(b) = &self.block_rootfs else {
            return Ok(());
        };
        let files: Vec<&RootFile> = std::iter::once(&self.kernel)
            .chain(self.initrd.as_ref())
            .collect();
        let kept = storage::keep_aside(&self.rootfs, &files, state_dir)?;
        // The copies are urunc's own, in the state directory.
        let reopen = |f: &RootFile| {
            let rel = f.path.strip_prefix(&self.rootfs).unwrap_or(&f.path);
            open_in_root(&kept, &rel.to_string_lossy()).map_err(|e| {
                crate::error::Error::msg(format!(
                    "useDMBlock: the copy of {} in {}: {e:?}",
                    f.path.display(),
                    kept.display()
                ))
            })
        };
        let kernel = reopen(&self.kernel)?;
        let initrd = self.initrd.as_ref().map(reopen).transpose()?;
        self.kernel = kernel;
        self.initrd = initrd;
        storage::hand_over(b, state_dir)?;
        self.rootfs = kept;
        Ok(())
    }
}

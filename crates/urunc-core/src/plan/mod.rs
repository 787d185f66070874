//! The pure stage: everything urunc decides, decided without touching the
//! system. [`prepare`] validates the bundle and metadata at `create` (so
//! that bad input fails before anything exists); [`plan`] adds the facts
//! only known at `start` (the container's network) and yields a
//! [`LaunchPlan`], a plain value that `sandbox` applies.

mod prepare;

pub use prepare::{prepare, BootFile, Unikernel};

use crate::error::PlanError;
use crate::guest::{GuestArgs, GuestBlock, GuestNet, GuestShare};
use crate::monitor::solo5_manifest::DeviceKind;
use crate::monitor::{MonitorCommand, MonitorRequest, MonitorShare, Nic};
use crate::network::NetFacts;
use crate::shares::{self, FsDaemon, ShareFs};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// How host paths appear to the monitor.
#[derive(Debug, Clone)]
pub enum View {
    /// The monitor sees the host's paths (no mount namespace).
    Host,
    /// The monitor runs in a sandbox root where the container rootfs is
    /// mounted at this path, and its own work directory at `work`.
    /// Volumes are bound at `<shares>/<tag>`; `None`: at their host paths.
    /// The files resolved at `create` ([`Unikernel::boot_files`]) are
    /// attached at `<boot>/<name>`; `None`: the monitor inherits their
    /// descriptors and is given `/proc/self/fd/<n>`.
    Sandbox {
        rootfs: PathBuf,
        work: PathBuf,
        shares: Option<PathBuf>,
        boot: Option<PathBuf>,
    },
}

/// `/proc/self/fd/<n>`: the file open as `fd`, for a process that
/// inherits it.
pub fn fd_path(fd: &impl std::os::fd::AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Where the monitor finds `f` in `view`.
fn boot_path(view: &View, f: &BootFile) -> PathBuf {
    match view {
        View::Host => f.file.path.clone(),
        View::Sandbox {
            boot: Some(dir), ..
        } => dir.join(f.name),
        View::Sandbox { boot: None, .. } => fd_path(&f.file.file),
    }
}

/// The container's network as `start` found it.
#[derive(Debug, Clone)]
pub struct NetInput<'a> {
    pub facts: &'a NetFacts,
    pub tap: &'a str,
    pub dns: Option<Ipv4Addr>,
}

/// The monitor's launch and what must exist for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub command: MonitorCommand,
    pub nic: Option<Nic>,
    pub guest_net: Option<GuestNet>,
    /// virtiofsd instances to start before the monitor (virtio-fs shares).
    pub fs_daemons: Vec<FsDaemon>,
}

/// Plans once at `create`, so that errors in the user's input surface
/// before anything exists. Whether the container has a network is only
/// known at `start`; a kernel that declares a network device is planned
/// with a stand-in one (documentation addresses) so that the rest of its
/// command line is still checked.
pub fn validate(u: &Unikernel) -> Result<LaunchPlan, PlanError> {
    let wants_net = u
        .manifest
        .as_ref()
        .is_some_and(|m| m.of_kind(DeviceKind::Net).next().is_some());
    if !wants_net {
        return plan(u, &View::Host, None);
    }
    let facts = NetFacts {
        ifname: "eth0".into(),
        ifindex: 2,
        ip: Ipv4Addr::new(192, 0, 2, 2),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
        mac: [0x02, 0, 0, 0, 0, 2],
        mtu: 1500,
    };
    let probe = NetInput {
        facts: &facts,
        tap: "urunc-probe",
        dns: None,
    };
    plan(u, &View::Host, Some(&probe))
}

/// Builds the monitor's command line. Pure: no system access.
pub fn plan(u: &Unikernel, view: &View, net: Option<&NetInput>) -> Result<LaunchPlan, PlanError> {
    // A kernel that declares its devices (Solo5) gets only those: a network
    // or disk it does not declare is left out, of its command line too.
    let declares = |kind| {
        u.manifest
            .as_ref()
            .is_none_or(|m| m.of_kind(kind).next().is_some())
    };
    let net = match net {
        Some(_) if !declares(DeviceKind::Net) => {
            crate::log::warn(&format!(
                "kernel {} declares no network device: the container's network is not handed to it",
                u.kernel.path.display()
            ));
            None
        }
        n => n,
    };
    // The files as the monitor finds them; the disk is the image resolved
    // at `create`, or the rootfs's device node (`useDMBlock`).
    let files = u.boot_files();
    let path_of = |name| {
        files
            .iter()
            .find(|f| f.name == name)
            .map(|f| boot_path(view, f))
    };
    let disk = path_of("disk").or_else(|| u.block_rootfs.as_ref().map(|b| b.device.clone()));
    let disk = match disk {
        Some(_) if !declares(DeviceKind::Block) => {
            let host = u.block.as_ref().map(|f| &f.path);
            crate::log::warn(&format!(
                "kernel {} declares no block device: its disk {} is not handed to it",
                u.kernel.path.display(),
                host.or(u.block_rootfs.as_ref().map(|b| &b.device))
                    .map_or_else(String::new, |p| p.display().to_string())
            ));
            None
        }
        d => d,
    };
    let guest_net = net.map(|n| GuestNet {
        ip: n.facts.ip,
        prefix: n.facts.prefix,
        gateway: n.facts.gateway,
        dns: n.dns.or(Some(u.dns_fallback)),
    });
    let nic = net.map(|n| Nic {
        tap: n.tap.to_string(),
        mac: n.facts.mac,
    });
    let block = disk.as_ref().map(|_| GuestBlock {
        mount_point: u.block_mount_point.clone(),
        readonly: u.block_readonly,
    });
    let guest_shares: Vec<GuestShare> = u
        .shares
        .iter()
        .map(|s| GuestShare {
            tag: s.tag.clone(),
            mount_point: s.mount_point.clone(),
            readonly: s.readonly,
            fs: u.share_fs,
        })
        .collect();
    let monitor_shares: Vec<MonitorShare> = u
        .shares
        .iter()
        .map(|s| MonitorShare {
            tag: s.tag.clone(),
            path: match view {
                View::Sandbox { rootfs, .. } if s.is_rootfs() => rootfs.clone(),
                View::Sandbox {
                    shares: Some(dir), ..
                } => dir.join(&s.tag),
                _ => s.source.clone(),
            },
            readonly: s.readonly,
            fs: u.share_fs,
        })
        .collect();
    let gargs = GuestArgs {
        app: &u.app,
        env: &u.env,
        net: guest_net.as_ref(),
        initrd: u.initrd.is_some(),
        block: block.as_ref(),
        shares: &guest_shares,
        version: u.version.as_deref(),
        monitor: u.monitor.name(),
    };
    let mut words = u.guest.words(&gargs).map_err(|problem| PlanError::Guest {
        guest: u.guest.name().into(),
        problem,
    })?;
    // Extra kernel parameters from the config go before the application's
    // own arguments.
    let at = words.iter().position(|w| w == "--").unwrap_or(words.len());
    words.splice(at..at, u.monitor_config.extra_guest_args.iter().cloned());

    let kernel = path_of("kernel").unwrap_or_default();
    let initrd = path_of("initrd");
    let work = match view {
        View::Host => PathBuf::from("/tmp"),
        View::Sandbox { work, .. } => work.clone(),
    };
    let req = MonitorRequest {
        binary: &u.monitor_binary,
        kernel: &kernel,
        initrd: initrd.as_deref(),
        block_readonly: u.block_readonly,
        block: disk.as_deref(),
        shares: &monitor_shares,
        guest_words: &words,
        needs: u.guest.needs(),
        memory_mib: u.memory_mib,
        vcpus: u.vcpus,
        nic: nic.as_ref(),
        seccomp: u.seccomp,
        config: &u.monitor_config,
        work_dir: &work,
        manifest: u.manifest.as_ref(),
    };
    let mut command = u
        .monitor
        .command(&req)
        .map_err(|problem| PlanError::Monitor {
            monitor: u.monitor.name().into(),
            problem,
        })?;
    // The rootfs's own block device is opened by the monitor as a node.
    if let (Some(b), Some(_)) = (&u.block_rootfs, &disk) {
        if !command.devices.contains(&b.device) {
            command.devices.push(b.device.clone());
        }
    }
    let fs_daemons = match &u.virtiofsd {
        Some(bin) => monitor_shares
            .iter()
            .filter(|s| s.fs == ShareFs::VirtioFs)
            .map(|s| FsDaemon {
                argv: shares::virtiofsd_argv(bin, &s.path, &u.monitor_config.virtiofsd_options),
                socket: shares::virtiofs_socket(&work, &s.tag),
            })
            .collect(),
        None => vec![],
    };
    Ok(LaunchPlan {
        command,
        nic,
        guest_net,
        fs_daemons,
    })
}

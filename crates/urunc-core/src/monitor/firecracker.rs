//! Firecracker (`firecracker`, the Go urunc pins v1.7.0).
//!
//! # Launch
//!
//! `firecracker --no-api --config-file <work>/fc.json --level Warning
//! [--no-seccomp]`: no API socket, no log or metrics file; everything is in
//! one JSON config ([`FcConfig`]) that [`Monitor::command`] returns in
//! [`MonitorCommand::files`]. Firecracker logs to stdout, which is the
//! guest console: at its default level (Info) its lines land in the middle
//! of the guest's own lines, so only warnings and errors are kept (the
//! reason of a failure still reaches the container's log). The work
//! directory is the sandbox's tmpfs (`/run/urunc` inside the container's
//! mount namespace), so the config disappears with that namespace when the
//! monitor exits and `delete` has nothing to remove. Without a mount
//! namespace the waiting process plans with the container's `sandbox`
//! directory under the state directory as the work directory, which
//! `delete` removes with the state.
//!
//! Firecracker appends `virtio_mmio.device=<size>@<addr>:<irq>` for each
//! disk and NIC (and `root=/dev/vda rw` for the root drive) to the boot
//! arguments: linux-loader 0.10 (`src/cmdline/mod.rs`) splits them at the
//! first ` -- ` with an even number of `"` before it, adds these words to
//! the first part, and drops an empty second part with its ` -- `. Guests
//! that must have these words among their kernel parameters write a
//! non-empty part after ` -- ` (Unikraft: see `guest/unikraft.rs`).
//!
//! # Kernel
//!
//! Firecracker boots only an uncompressed 64-bit ELF (vmlinux) whose entry
//! is at or above 1 MiB; [`Monitor::inspect`] refuses anything else at
//! `create`, naming the `binary` key.
//!
//! # Exit status (v1.7.0, read from its source and checked with the
//! project's test kernel, `tests/fixtures/fckernel`)
//!
//! | what happens | Firecracker's exit status |
//! |---|---|
//! | guest resets through the i8042 (Linux `reboot=k`, also what `panic=1` ends in; fckernel's default) | 0 (observed) |
//! | KVM shutdown exit (triple fault on bare-metal KVM) or a vCPU exit on HLT | 0 (source) |
//! | KVM internal error / failed entry on a vCPU (a triple fault under this host's nested KVM: fckernel `triplefault`) | 1 (observed), logged as `Received KVM_EXIT_INTERNAL_ERROR` |
//! | bad config file or kernel that cannot be loaded | 152 (`BadConfiguration`) or 1 |
//! | bad command line | 153 |
//! | seccomp violation | 148; SIGBUS/SIGSEGV/SIGXFSZ/SIGXCPU/SIGPIPE/SIGHUP/SIGILL: 149/150/151/154/155/156/157 |
//! | SIGKILL | killed (status 137 as engines report it, observed) |
//! | SIGTERM | Firecracker installs no handler: without a PID namespace it dies (143, observed); as the init of the container's own PID namespace (the usual case) the kernel drops the signal, so `urunc kill ID` with the default SIGTERM leaves the guest running (observed); engines end it with their SIGKILL after the stop timeout |
//!
//! A Firecracker guest has no way to pass an exit code: a clean guest
//! shutdown, a Linux panic (with `panic=1`, which reboots) and, on bare
//! metal, a guest triple fault all end with status 0. urunc reports exactly
//! the monitor's status (the monitor is the container's process), so for
//! Firecracker 0 means "the VM ended without a monitor error", not "the
//! application succeeded"; non-zero means Firecracker itself failed (the
//! reason is on the container's stdout). Telling a guest crash apart would
//! need a wrapper process that reads the console (e.g. a Linux
//! `Kernel panic` line) and maps it to a status, at the price of the
//! monitor no longer being the container's process; urunc does not do it.

use super::kernel_image::{self, KernelImage};
use super::{format_mac, Manifest, Monitor, MonitorCommand, MonitorRequest};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub struct Firecracker;

/// Name of the config file in the work directory.
pub const CONFIG_FILE: &str = "fc.json";
/// Firecracker v1.7's limit (`MAX_SUPPORTED_VCPUS`).
const MAX_VCPUS: u32 = 32;
/// Guest memory below this cannot hold even a tiny kernel at 1 MiB.
const MIN_MEMORY_MIB: u64 = 2;

/// The `--config-file` JSON (Firecracker's `VmmConfig`; its parser denies
/// unknown fields, so only fields it knows are written).
#[derive(Debug, Serialize)]
pub struct FcConfig {
    #[serde(rename = "boot-source")]
    pub boot_source: BootSource,
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfig,
    pub drives: Vec<Drive>,
    #[serde(rename = "network-interfaces")]
    pub network_interfaces: Vec<NetworkInterface>,
}

#[derive(Debug, Serialize)]
pub struct BootSource {
    pub kernel_image_path: String,
    pub boot_args: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MachineConfig {
    pub vcpu_count: u32,
    pub mem_size_mib: u64,
    pub smt: bool,
}

#[derive(Debug, Serialize)]
pub struct Drive {
    pub drive_id: String,
    pub path_on_host: String,
    pub is_root_device: bool,
    pub is_read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct NetworkInterface {
    pub iface_id: String,
    pub host_dev_name: String,
    pub guest_mac: String,
}

fn utf8<'a>(what: &str, p: &'a Path) -> Result<&'a str, String> {
    p.to_str().ok_or_else(|| {
        format!(
            "{what} path {} is not UTF-8, which its JSON config cannot carry",
            p.display()
        )
    })
}

/// The config for a request (exposed for tests and the benchmark).
pub fn config(r: &MonitorRequest) -> Result<FcConfig, String> {
    if r.vcpus == 0 || r.vcpus > MAX_VCPUS {
        return Err(format!(
            "{} vCPUs requested; Firecracker runs 1 to {MAX_VCPUS}",
            r.vcpus
        ));
    }
    if r.memory_mib < MIN_MEMORY_MIB {
        return Err(format!(
            "{} MiB of guest memory is below its minimum of {MIN_MEMORY_MIB} MiB (it loads the kernel at 1 MiB; raise the container's memory limit)",
            r.memory_mib
        ));
    }
    let boot_args = r.guest_words.join(" ");
    if let Some(c) = boot_args.chars().find(|c| !matches!(c, ' '..='~')) {
        return Err(format!(
            "the guest command line contains {c:?}; Firecracker accepts printable ASCII only"
        ));
    }
    Ok(FcConfig {
        boot_source: BootSource {
            kernel_image_path: utf8("kernel", r.kernel)?.to_string(),
            boot_args,
            initrd_path: r
                .initrd
                .map(|i| utf8("initrd", i).map(String::from))
                .transpose()?,
        },
        machine_config: MachineConfig {
            vcpu_count: r.vcpus,
            mem_size_mib: r.memory_mib,
            smt: false,
        },
        drives: r
            .block
            .map(|b| {
                Ok::<_, String>(Drive {
                    drive_id: "rootfs".into(),
                    path_on_host: utf8("disk", b)?.to_string(),
                    is_root_device: true,
                    is_read_only: r.block_readonly,
                })
            })
            .transpose()?
            .into_iter()
            .collect(),
        network_interfaces: r
            .nic
            .map(|n| NetworkInterface {
                iface_id: "eth0".into(),
                host_dev_name: n.tap.clone(),
                guest_mac: format_mac(&n.mac),
            })
            .into_iter()
            .collect(),
    })
}

impl Monitor for Firecracker {
    fn name(&self) -> &'static str {
        "firecracker"
    }

    fn default_binary(&self) -> &'static str {
        "firecracker"
    }

    fn default_overhead_mib(&self) -> u64 {
        32
    }

    fn inspect(&self, kernel: &std::fs::File) -> Result<Option<Manifest>, String> {
        check_kernel(kernel).map(|()| None)
    }

    fn command(&self, r: &MonitorRequest) -> Result<MonitorCommand, String> {
        let cfg = config(r)?;
        let json = serde_json::to_vec_pretty(&cfg)
            .map_err(|e| format!("serialising the Firecracker config: {e}"))?;
        let path: PathBuf = r.work_dir.join(CONFIG_FILE);
        let mut argv = vec![
            r.binary.display().to_string(),
            "--no-api".into(),
            "--config-file".into(),
            path.display().to_string(),
            "--level".into(),
            "Warning".into(),
        ];
        if !r.seccomp {
            argv.push("--no-seccomp".into());
        }
        let mut devices = vec![PathBuf::from("/dev/kvm")];
        if r.nic.is_some() {
            devices.push("/dev/net/tun".into());
        }
        Ok(MonitorCommand {
            argv,
            files: vec![(path, json)],
            devices,
        })
    }
}

/// Checks that the kernel file is something Firecracker boots.
fn check_kernel(kernel: &std::fs::File) -> Result<(), String> {
    match kernel_image::identify(kernel).map_err(|p| format!("{p}; {NEEDS}"))? {
        KernelImage::BzImage => Err(format!(
            "is a compressed Linux boot image (bzImage); {NEEDS} (extract it, e.g. with the kernel's scripts/extract-vmlinux)"
        )),
        KernelImage::Other => Err(format!("is not an ELF file; {NEEDS}")),
        KernelImage::Elf(e) => kernel_image::check_x86_64_elf(&e, "Firecracker", NEEDS),
    }
}

const NEEDS: &str = "Firecracker needs an uncompressed 64-bit x86-64 vmlinux ELF";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MonitorConfig;
    use crate::monitor::golden::Case;
    use serde_json::{json, Value};

    fn run(c: &Case) -> (MonitorCommand, Value) {
        let cmd =
            crate::monitor::golden::command(&Firecracker, "/usr/local/bin/firecracker", c).unwrap();
        assert_eq!(cmd.files.len(), 1);
        assert_eq!(cmd.files[0].0, Path::new("/run/urunc/fc.json"));
        let v: Value = serde_json::from_slice(&cmd.files[0].1).unwrap();
        (cmd, v)
    }

    fn machine() -> Value {
        json!({"vcpu_count": 2, "mem_size_mib": 128, "smt": false})
    }

    fn eth0() -> Value {
        json!([{"iface_id": "eth0", "host_dev_name": "urunc0123abcd", "guest_mac": "02:42:ac:11:00:02"}])
    }

    fn rootfs_drive() -> Value {
        json!([{"drive_id": "rootfs", "path_on_host": "/rootfs/disk.img", "is_root_device": true, "is_read_only": false}])
    }

    #[test]
    fn unikraft_initrd_net() {
        let (cmd, v) = run(&Case {
            guest: "unikraft",
            initrd: true,
            block: false,
            net: true,
            seccomp: true,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "/app env.vars=[ A=1 ] netdev.ip=10.0.0.2/24:10.0.0.1:9.9.9.9 vfs.fstab=[ \"initrd0:/:extract:::\" ] -- 'hello world'",
                    "initrd_path": "/rootfs/unikernel/initrd"
                },
                "machine-config": machine(),
                "drives": [],
                "network-interfaces": eth0()
            })
        );
        assert_eq!(
            cmd.argv,
            [
                "/usr/local/bin/firecracker",
                "--no-api",
                "--config-file",
                "/run/urunc/fc.json",
                "--level",
                "Warning"
            ]
        );
        assert_eq!(
            cmd.devices,
            [PathBuf::from("/dev/kvm"), PathBuf::from("/dev/net/tun")]
        );
    }

    #[test]
    fn unikraft_initrd_no_net_without_seccomp() {
        let (cmd, v) = run(&Case {
            guest: "unikraft",
            initrd: true,
            block: false,
            net: false,
            seccomp: false,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "/app env.vars=[ A=1 ] vfs.fstab=[ \"initrd0:/:extract:::\" ] -- 'hello world'",
                    "initrd_path": "/rootfs/unikernel/initrd"
                },
                "machine-config": machine(),
                "drives": [],
                "network-interfaces": []
            })
        );
        assert_eq!(cmd.argv.last().unwrap(), "--no-seccomp");
        assert_eq!(cmd.devices, [PathBuf::from("/dev/kvm")]);
    }

    #[test]
    fn unikraft_disk_no_net() {
        let (_, v) = run(&Case {
            guest: "unikraft",
            initrd: false,
            block: true,
            net: false,
            seccomp: true,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "/app env.vars=[ A=1 ] -- 'hello world'"
                },
                "machine-config": machine(),
                "drives": rootfs_drive(),
                "network-interfaces": []
            })
        );
    }

    #[test]
    fn linux_initrd_net() {
        let (_, v) = run(&Case {
            guest: "linux",
            initrd: true,
            block: false,
            net: true,
            seccomp: true,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off root=/dev/ram0 rw ip=10.0.0.2::10.0.0.1:255.255.255.0:urunc:eth0:off:9.9.9.9 A=1 rdinit=/app -- 'hello world'",
                    "initrd_path": "/rootfs/unikernel/initrd"
                },
                "machine-config": machine(),
                "drives": [],
                "network-interfaces": eth0()
            })
        );
    }

    #[test]
    fn linux_disk_net() {
        let (_, v) = run(&Case {
            guest: "linux",
            initrd: false,
            block: true,
            net: true,
            seccomp: true,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw ip=10.0.0.2::10.0.0.1:255.255.255.0:urunc:eth0:off:9.9.9.9 A=1 init=/app -- 'hello world'"
                },
                "machine-config": machine(),
                "drives": rootfs_drive(),
                "network-interfaces": eth0()
            })
        );
    }

    #[test]
    fn linux_disk_no_net() {
        let (cmd, v) = run(&Case {
            guest: "linux",
            initrd: false,
            block: true,
            net: false,
            seccomp: true,
        });
        assert_eq!(
            v,
            json!({
                "boot-source": {
                    "kernel_image_path": "/rootfs/unikernel/kernel",
                    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw A=1 init=/app -- 'hello world'"
                },
                "machine-config": machine(),
                "drives": rootfs_drive(),
                "network-interfaces": []
            })
        );
        assert_eq!(cmd.devices, [PathBuf::from("/dev/kvm")]);
    }

    #[test]
    fn too_many_vcpus_is_an_error() {
        let cfg = MonitorConfig::default();
        let words = vec!["x".to_string()];
        let req = MonitorRequest {
            binary: Path::new("/fc"),
            kernel: Path::new("/k"),
            initrd: None,
            block_readonly: false,
            block: None,
            shares: &[],
            guest_words: &words,
            needs: Default::default(),
            memory_mib: 64,
            vcpus: 33,
            nic: None,
            seccomp: true,
            config: &cfg,
            work_dir: Path::new("/w"),
            manifest: None,
        };
        let e = Firecracker.command(&req).unwrap_err();
        assert!(e.contains("33 vCPUs") && e.contains("1 to 32"), "{e}");
    }

    #[test]
    fn kernel_checks() {
        use crate::monitor::kernel_image::testfiles::*;
        let check = |b: &[u8]| check_bytes(b, check_kernel);
        assert_eq!(check(&elf64(2, 62, 0x100000, &[])), Ok(()));
        let e = check(&bzimage()).unwrap_err();
        assert!(e.contains("bzImage") && e.contains("vmlinux ELF"), "{e}");
        assert!(check(b"#!/bin/sh\n").unwrap_err().contains("not an ELF"));
        assert!(check(b"").unwrap_err().contains("not an ELF"));
        assert!(check(&elf64(1, 3, 0x100000, &[]))
            .unwrap_err()
            .contains("32-bit"));
        assert!(check(&elf64(2, 183, 0x100000, &[]))
            .unwrap_err()
            .contains("machine 183"));
        assert!(check(&elf64(2, 62, 0x1000, &[]))
            .unwrap_err()
            .contains("entry point at 0x1000"));
        assert!(check(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
    }
}

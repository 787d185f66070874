//! Cloud Hypervisor (`clh`; built and checked with v49.0).
//!
//! # Name
//!
//! The metadata calls it `clh`, the name Kata Containers and most
//! unikernel tooling use for it; `cloud-hypervisor` (its binary's name) is
//! accepted as an alias (see [`super::ALIASES`]). The config file section
//! is `[monitors.clh]`.
//!
//! # Launch
//!
//! Everything is on the command line, no API socket and no file:
//!
//! ```text
//! cloud-hypervisor --kernel <k> [--initramfs <i>] [--cmdline "<guest words>"]
//!     --cpus boot=<n> --memory size=<M>M [--net tap=<tap>,mac=<mac>]
//!     [--disk path=<p>] --serial tty --console off [--seccomp false]
//! ```
//!
//! The guest's COM1 is the monitor's stdout (`--serial tty`); the
//! virtio-console is off, so guests write to `ttyS0`. Cloud Hypervisor
//! applies its own seccomp filter unless `--seccomp false` (written when
//! the spec has no seccomp section), so urunc installs none on it. It also
//! adds a virtio-rng device reading `/dev/urandom` (in every sandbox root).
//! A `--net` tap that does not exist is created by Cloud Hypervisor
//! (urunc always passes the one it made).
//! Values of `--net`/`--disk` are comma-separated `key=value` lists, so a
//! disk path holding `,`, `"`, `[` or `]` is refused. A disk image is
//! format-probed by Cloud Hypervisor (raw, qcow2, VHD, VHDx): a raw image
//! whose first bytes look like a qcow2 header is read as qcow2.
//!
//! # Kernel
//!
//! Cloud Hypervisor (x86-64) boots either a 64-bit ELF with a PVH entry
//! note (`XEN_ELFNOTE_PHYS32_ENTRY`; a Linux vmlinux has one) whose ELF
//! entry is at or above 1 MiB, or a Linux bzImage (since v39).
//! [`Monitor::inspect`] refuses anything else at `create`, naming the
//! `binary` key: a 32-bit ELF (its loader reads only 64-bit program
//! headers), an ELF without the PVH note, an entry below 1 MiB, a
//! non-x86-64 ELF, a file that is neither.
//!
//! # Exit status (v49.0, read from its source and checked with
//! `tests/fixtures/clhkernel`)
//!
//! | what happens | Cloud Hypervisor's exit status |
//! |---|---|
//! | guest ACPI power-off (S5 written to its PM port 0x600, which Linux finds through the FADT; clhkernel) | 0 (observed) |
//! | guest reset (i8042, ACPI reset, triple fault) | none: Cloud Hypervisor **reboots the VM** and keeps running (source) |
//! | a vCPU error (a KVM internal error: a Linux guest under this host's nested KVM) | 0 with `--seccomp false` (observed); with its seccomp filter on, its error path made a system call outside the filter and it died of SIGSYS, 159 (observed) |
//! | kernel that cannot be loaded, bad option value | 1, the reason on stderr (observed) |
//! | unknown command-line flag | 2 (observed) |
//! | SIGTERM or SIGINT | it handles them: stops the VM and exits 0, also as the init of the container's PID namespace, so `urunc kill ID` works (observed) |
//! | SIGKILL | killed (137, observed) |
//!
//! A guest cannot pass an exit code. Unlike QEMU's `-no-reboot` or
//! Firecracker, a reboot does not end it: a Linux guest that panics with
//! `panic=-1` (urunc's Linux command line) or reboots starts again. A
//! guest that is done must power off.

use super::kernel_image::{self, KernelImage};
use super::{format_mac, Manifest, Monitor, MonitorCommand, MonitorRequest};
use std::path::{Path, PathBuf};

pub struct Clh;

/// Its command line buffer (`CMDLINE_MAX_SIZE`, x86-64), with the NUL.
const MAX_CMDLINE: usize = 0x1_0000;
/// Guest memory below this cannot hold a kernel at 1 MiB plus its tables.
const MIN_MEMORY_MIB: u64 = 4;

fn path_str<'a>(what: &str, p: &'a Path) -> Result<&'a str, String> {
    let s = p.to_str().ok_or_else(|| {
        format!(
            "{what} path {} is not UTF-8, which Cloud Hypervisor's command line cannot carry",
            p.display()
        )
    })?;
    Ok(s)
}

/// A path inside a `key=value,...` option: no separators or quotes.
fn opt_path<'a>(what: &str, p: &'a Path) -> Result<&'a str, String> {
    let s = path_str(what, p)?;
    if let Some(c) = s.chars().find(|c| matches!(c, ',' | '"' | '[' | ']')) {
        return Err(format!(
            "{what} path {s:?} contains {c:?}, which Cloud Hypervisor's option syntax cannot carry"
        ));
    }
    if s.trim() != s {
        return Err(format!(
            "{what} path {s:?} starts or ends with white space, which Cloud Hypervisor trims"
        ));
    }
    Ok(s)
}

impl Monitor for Clh {
    fn name(&self) -> &'static str {
        "clh"
    }

    fn default_binary(&self) -> &'static str {
        "cloud-hypervisor"
    }

    fn default_overhead_mib(&self) -> u64 {
        32
    }

    fn inspect(&self, kernel: &std::fs::File) -> Result<Option<Manifest>, String> {
        check_kernel(kernel).map(|()| None)
    }

    fn command(&self, r: &MonitorRequest) -> Result<MonitorCommand, String> {
        if r.vcpus == 0 {
            return Err("0 vCPUs requested; Cloud Hypervisor needs at least 1".into());
        }
        if r.memory_mib < MIN_MEMORY_MIB {
            return Err(format!(
                "{} MiB of guest memory is below Cloud Hypervisor's minimum of {MIN_MEMORY_MIB} MiB (raise the container's memory limit)",
                r.memory_mib
            ));
        }
        let cmdline = r.guest_words.join(" ");
        if let Some(c) = cmdline.chars().find(|c| !matches!(c, ' '..='~')) {
            return Err(format!(
                "the guest command line contains {c:?}; Cloud Hypervisor accepts printable ASCII only"
            ));
        }
        if cmdline.len() >= MAX_CMDLINE {
            return Err(format!(
                "the guest command line is {} bytes; Cloud Hypervisor takes at most {}",
                cmdline.len(),
                MAX_CMDLINE - 1
            ));
        }
        let mut argv = vec![
            r.binary.display().to_string(),
            "--kernel".into(),
            path_str("kernel", r.kernel)?.into(),
        ];
        if let Some(i) = r.initrd {
            argv.extend(["--initramfs".into(), path_str("initrd", i)?.into()]);
        }
        if !cmdline.is_empty() {
            argv.extend(["--cmdline".into(), cmdline]);
        }
        argv.extend([
            "--cpus".into(),
            format!("boot={}", r.vcpus),
            "--memory".into(),
            format!("size={}M", r.memory_mib),
        ]);
        if let Some(n) = r.nic {
            if n.tap.contains([',', '"', '[', ']', '=']) {
                return Err(format!(
                    "tap name {:?} cannot be written in Cloud Hypervisor's option syntax",
                    n.tap
                ));
            }
            argv.extend([
                "--net".into(),
                format!("tap={},mac={}", n.tap, format_mac(&n.mac)),
            ]);
        }
        if let Some(b) = r.block {
            let ro = if r.block_readonly { ",readonly=on" } else { "" };
            argv.extend([
                "--disk".into(),
                format!("path={}{ro}", opt_path("disk", b)?),
            ]);
        }
        argv.extend(["--serial", "tty", "--console", "off"].map(String::from));
        if !r.seccomp {
            argv.extend(["--seccomp".into(), "false".into()]);
        }
        let mut devices = vec![PathBuf::from("/dev/kvm")];
        if r.nic.is_some() {
            devices.push("/dev/net/tun".into());
        }
        Ok(MonitorCommand {
            argv,
            files: vec![],
            devices,
        })
    }
}

/// What the open `kernel` is, as far as Cloud Hypervisor's loader goes.
fn check_kernel(kernel: &std::fs::File) -> Result<(), String> {
    match kernel_image::identify(kernel).map_err(|p| format!("{p}; {NEEDS}"))? {
        // Loaded through the Linux boot protocol.
        KernelImage::BzImage => Ok(()),
        KernelImage::Other => Err(format!("is neither an ELF file nor a bzImage; {NEEDS}")),
        KernelImage::Elf(e) => {
            kernel_image::check_x86_64_elf(&e, "Cloud Hypervisor", NEEDS)?;
            if e.pvh {
                Ok(())
            } else {
                Err(format!(
                    "is an ELF file without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); {NEEDS}"
                ))
            }
        }
    }
}

const NEEDS: &str =
    "Cloud Hypervisor boots a 64-bit x86-64 ELF with a PVH entry note (e.g. a Linux vmlinux) or a Linux bzImage";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MonitorConfig;
    use crate::monitor::golden::Case;

    fn run(c: &Case) -> MonitorCommand {
        let cmd =
            crate::monitor::golden::command(&Clh, "/usr/local/bin/cloud-hypervisor", c).unwrap();
        assert!(cmd.files.is_empty());
        let mut devices = vec![PathBuf::from("/dev/kvm")];
        if c.net {
            devices.push("/dev/net/tun".into());
        }
        assert_eq!(cmd.devices, devices);
        cmd
    }

    const HEAD: [&str; 3] = [
        "/usr/local/bin/cloud-hypervisor",
        "--kernel",
        "/rootfs/unikernel/kernel",
    ];
    const MACHINE: [&str; 4] = ["--cpus", "boot=2", "--memory", "size=128M"];
    const NET: [&str; 2] = ["--net", "tap=urunc0123abcd,mac=02:42:ac:11:00:02"];
    const DISK: [&str; 2] = ["--disk", "path=/rootfs/disk.img"];
    const INITRD: [&str; 2] = ["--initramfs", "/rootfs/unikernel/initrd"];
    const TAIL: [&str; 4] = ["--serial", "tty", "--console", "off"];

    fn argv(parts: &[&[&str]]) -> Vec<String> {
        parts.concat().into_iter().map(String::from).collect()
    }

    #[test]
    fn unikraft_initrd_net() {
        let cmd = run(&Case {
            guest: "unikraft",
            initrd: true,
            block: false,
            net: true,
            seccomp: true,
        });
        let cl = "/app env.vars=[ A=1 ] netdev.ip=10.0.0.2/24:10.0.0.1:9.9.9.9 vfs.fstab=[ \"initrd0:/:extract:::\" ] -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &INITRD, &["--cmdline", cl], &MACHINE, &NET, &TAIL])
        );
    }

    #[test]
    fn unikraft_initrd_no_net_without_seccomp() {
        let cmd = run(&Case {
            guest: "unikraft",
            initrd: true,
            block: false,
            net: false,
            seccomp: false,
        });
        let cl = "/app env.vars=[ A=1 ] vfs.fstab=[ \"initrd0:/:extract:::\" ] -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[
                &HEAD,
                &INITRD,
                &["--cmdline", cl],
                &MACHINE,
                &TAIL,
                &["--seccomp", "false"]
            ])
        );
    }

    #[test]
    fn unikraft_disk_no_net() {
        let cmd = run(&Case {
            guest: "unikraft",
            initrd: false,
            block: true,
            net: false,
            seccomp: true,
        });
        let cl = "/app env.vars=[ A=1 ] -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &["--cmdline", cl], &MACHINE, &DISK, &TAIL])
        );
    }

    #[test]
    fn unikraft_disk_net() {
        let cmd = run(&Case {
            guest: "unikraft",
            initrd: false,
            block: true,
            net: true,
            seccomp: true,
        });
        let cl = "/app env.vars=[ A=1 ] netdev.ip=10.0.0.2/24:10.0.0.1:9.9.9.9 -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &["--cmdline", cl], &MACHINE, &NET, &DISK, &TAIL])
        );
    }

    #[test]
    fn linux_initrd_net() {
        let cmd = run(&Case {
            guest: "linux",
            initrd: true,
            block: false,
            net: true,
            seccomp: true,
        });
        let cl = "panic=-1 console=ttyS0 root=/dev/ram0 rw ip=10.0.0.2::10.0.0.1:255.255.255.0:urunc:eth0:off:9.9.9.9 A=1 rdinit=/app -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &INITRD, &["--cmdline", cl], &MACHINE, &NET, &TAIL])
        );
    }

    #[test]
    fn linux_initrd_no_net() {
        let cmd = run(&Case {
            guest: "linux",
            initrd: true,
            block: false,
            net: false,
            seccomp: true,
        });
        let cl = "panic=-1 console=ttyS0 root=/dev/ram0 rw A=1 rdinit=/app -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &INITRD, &["--cmdline", cl], &MACHINE, &TAIL])
        );
    }

    #[test]
    fn linux_disk_net() {
        let cmd = run(&Case {
            guest: "linux",
            initrd: false,
            block: true,
            net: true,
            seccomp: true,
        });
        let cl = "panic=-1 console=ttyS0 root=/dev/vda rw ip=10.0.0.2::10.0.0.1:255.255.255.0:urunc:eth0:off:9.9.9.9 A=1 init=/app -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[&HEAD, &["--cmdline", cl], &MACHINE, &NET, &DISK, &TAIL])
        );
    }

    #[test]
    fn linux_disk_no_net() {
        let cmd = run(&Case {
            guest: "linux",
            initrd: false,
            block: true,
            net: false,
            seccomp: false,
        });
        let cl = "panic=-1 console=ttyS0 root=/dev/vda rw A=1 init=/app -- 'hello world'";
        assert_eq!(
            cmd.argv,
            argv(&[
                &HEAD,
                &["--cmdline", cl],
                &MACHINE,
                &DISK,
                &TAIL,
                &["--seccomp", "false"]
            ])
        );
    }

    fn bare<'a>(words: &'a [String], cfg: &'a MonitorConfig) -> MonitorRequest<'a> {
        MonitorRequest {
            binary: Path::new("/clh"),
            kernel: Path::new("/k"),
            initrd: None,
            block_readonly: false,
            block: None,
            shares: &[],
            guest_words: words,
            needs: Default::default(),
            memory_mib: 64,
            vcpus: 1,
            nic: None,
            seccomp: true,
            config: cfg,
            work_dir: Path::new("/w"),
            manifest: None,
        }
    }

    #[test]
    fn empty_command_line_is_left_out() {
        let cfg = MonitorConfig::default();
        let cmd = Clh.command(&bare(&[], &cfg)).unwrap();
        assert_eq!(
            cmd.argv,
            [
                "/clh",
                "--kernel",
                "/k",
                "--cpus",
                "boot=1",
                "--memory",
                "size=64M",
                "--serial",
                "tty",
                "--console",
                "off"
            ]
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        let cfg = MonitorConfig::default();
        let words = vec!["x".to_string()];
        let mut r = bare(&words, &cfg);
        r.vcpus = 0;
        let e = Clh.command(&r).unwrap_err();
        assert!(e.contains("0 vCPUs"), "{e}");

        let mut r = bare(&words, &cfg);
        r.memory_mib = 3;
        let e = Clh.command(&r).unwrap_err();
        assert!(e.contains("3 MiB") && e.contains("minimum of 4 MiB"), "{e}");

        let mut r = bare(&words, &cfg);
        r.block = Some(Path::new("/rootfs/a,b.img"));
        let e = Clh.command(&r).unwrap_err();
        assert!(
            e.contains("\"/rootfs/a,b.img\"") && e.contains("','"),
            "{e}"
        );

        let tab = vec!["a\tb".to_string()];
        let e = Clh.command(&bare(&tab, &cfg)).unwrap_err();
        assert!(e.contains("'\\t'") && e.contains("printable ASCII"), "{e}");

        let long = vec!["x".repeat(MAX_CMDLINE)];
        let e = Clh.command(&bare(&long, &cfg)).unwrap_err();
        assert!(
            e.contains("65536 bytes") && e.contains("at most 65535"),
            "{e}"
        );
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        crate::monitor::kernel_image::testfiles::check_bytes(bytes, check_kernel)
    }

    #[test]
    fn kernel_checks() {
        use crate::monitor::kernel_image::testfiles::*;
        let pvh = pvh_note();
        let gnu = note(b"GNU\0", 3, &[1; 20]);
        assert_eq!(check(&elf64(2, 62, 0x100000, &pvh)), Ok(()));
        // the PVH note after another one in the same segment
        assert_eq!(
            check(&elf64(
                2,
                62,
                0x100000,
                &[gnu.clone(), pvh.clone()].concat()
            )),
            Ok(())
        );
        let e = check(&elf64(2, 62, 0x100000, &gnu)).unwrap_err();
        assert!(e.contains("without a PVH entry note"), "{e}");
        let e = check(&elf64(2, 62, 0x100000, &note(b"Xen\0", 18, &[1, 2]))).unwrap_err();
        assert!(e.contains("without a PVH entry note"), "{e}");
        let e = check(&elf64(1, 3, 0x100000, &pvh)).unwrap_err();
        assert!(e.contains("32-bit ELF") && e.contains("bzImage"), "{e}");
        let e = check(&elf64(2, 183, 0x100000, &pvh)).unwrap_err();
        assert!(e.contains("machine 183"), "{e}");
        let e = check(&elf64(2, 62, 0x1000, &pvh)).unwrap_err();
        assert!(e.contains("entry point at 0x1000"), "{e}");
        let mut bad = elf64(2, 62, 0x100000, &pvh);
        bad[54] = 32;
        assert!(check(&bad).unwrap_err().contains("malformed"));
        let mut cut = elf64(2, 62, 0x100000, &pvh);
        cut.truncate(100);
        assert!(check(&cut).unwrap_err().contains("cannot be read"));
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(check(&bz), Ok(()));
        let e = check(b"#!/bin/sh\n").unwrap_err();
        assert!(e.contains("neither an ELF file nor a bzImage"), "{e}");
        assert!(check(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
    }

    #[test]
    fn alias_and_registry() {
        assert_eq!(crate::monitor::canonical("cloud-hypervisor"), "clh");
        assert_eq!(crate::monitor::canonical("qemu"), "qemu");
        assert_eq!(crate::monitor::lookup("clh").unwrap().name(), "clh");
        assert!(crate::compat::supported("unikraft", "clh"));
        assert!(crate::compat::supported("linux", "clh"));
        assert!(!crate::compat::supported("rumprun", "clh"));
    }
}

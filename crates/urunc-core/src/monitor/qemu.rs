//! QEMU (`qemu-system-x86_64`).

use super::{format_mac, qemu_opt_escape, Monitor, MonitorCommand, MonitorRequest};
use crate::shares::ShareFs;

pub struct Qemu;

/// The host's vhost-net device: with it, QEMU's virtio-net datapath runs
/// in the host kernel instead of QEMU's own thread (`vhost=on`).
pub const VHOST_NET: &str = "/dev/vhost-net";

const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

impl Monitor for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn default_binary(&self) -> &'static str {
        "qemu-system-x86_64"
    }

    fn default_overhead_mib(&self) -> u64 {
        64
    }

    fn share_fs(&self) -> &'static [ShareFs] {
        &[ShareFs::NineP, ShareFs::VirtioFs]
    }

    fn command(&self, r: &MonitorRequest) -> Result<MonitorCommand, String> {
        let mut a: Vec<String> = vec![r.binary.display().to_string()];
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        let mem = format!("{}M", r.memory_mib);
        let smp = r.vcpus.to_string();
        push(&["-m", &mem, "-smp", &smp]);
        let mut devices = vec![];
        match r.config.accel.as_deref().unwrap_or("kvm") {
            "tcg" => push(&["-accel", "tcg"]),
            "kvm-tcg" => {
                push(&["-accel", "kvm", "-accel", "tcg"]);
                devices.push("/dev/kvm".into());
            }
            _ => {
                push(&["-accel", "kvm"]);
                devices.push("/dev/kvm".into());
            }
        }
        if let Some(cpu) = &r.config.cpu {
            push(&["-cpu", cpu]);
        }
        if let Some(m) = &r.config.machine {
            push(&["-M", m]);
        }
        if let Some(d) = &r.config.data_dir {
            push(&["-L", &d.display().to_string()]);
        }
        push(&["-nographic", "-vga", "none"]);
        if r.needs.exit_on_reboot {
            push(&["-no-reboot"]);
        }
        if r.needs.serial_console {
            push(&["-nodefaults", "-serial", "stdio"]);
        }
        if r.needs.debug_exit {
            push(&["-device", "isa-debug-exit,iobase=0x501,iosize=2"]);
        }
        if r.seccomp {
            push(&["-sandbox", SANDBOX]);
        }
        push(&["-kernel", &r.kernel.display().to_string()]);
        if let Some(i) = r.initrd {
            // QEMU's multiboot loader (Unikraft's kernels boot that way)
            // reads `-initrd` as a comma-separated module list, each
            // module's name ending at its first space (the rest are the
            // module's arguments); the Linux and PVH loaders take it
            // plain. No escaping suits both, so such a path is refused:
            // `initrd=/k,/etc/shadow` would load a second, host file
            // (QEMU hw/i386/multiboot.c, `get_opt_value`).
            let p = i.display().to_string();
            if let Some(c) = p.chars().find(|c| *c == ',' || c.is_whitespace()) {
                return Err(format!(
                    "initrd path {p:?} contains {c:?}, which QEMU's multiboot loader reads as a separator (key {})",
                    crate::metadata::KEY_INITRD
                ));
            }
            push(&["-initrd", &p]);
        }
        match r.nic {
            Some(nic) => {
                let mut netdev = format!(
                    "tap,id=n0,ifname={},script=no,downscript=no",
                    qemu_opt_escape(&nic.tap)
                );
                // `vhost` is settled at create (plan::prepare): unset or
                // false here means off.
                if r.config.vhost == Some(true) {
                    netdev.push_str(",vhost=on");
                    devices.push(VHOST_NET.into());
                }
                let mut dev = format!("virtio-net-pci,netdev=n0,mac={}", format_mac(&nic.mac));
                if r.needs.modern_virtio {
                    dev.push_str(",disable-legacy=on,disable-modern=off");
                }
                push(&["-netdev", &netdev, "-device", &dev]);
                devices.push("/dev/net/tun".into());
            }
            None => push(&["-nic", "none"]),
        }
        if let Some(b) = r.block {
            let mut drive = format!(
                "if=none,id=hd0,format=raw,file={}",
                qemu_opt_escape(&b.display().to_string())
            );
            if r.block_readonly {
                drive.push_str(",readonly=on");
            }
            let mut dev = "virtio-blk-pci,drive=hd0".to_string();
            if r.needs.modern_virtio {
                dev.push_str(",disable-legacy=on,disable-modern=off");
            }
            push(&["-drive", &drive, "-device", &dev]);
        }
        // Shared directories: 9p served by QEMU itself; virtio-fs through
        // the virtiofsd socket `<work_dir>/<tag>.sock`, which needs guest
        // RAM shared with virtiofsd. microvm has no PCI bus: virtio-mmio.
        let bus = match r.config.machine.as_deref() {
            Some(m) if m.starts_with("microvm") => "device",
            _ => "pci",
        };
        let mut shared_memory = false;
        for s in r.shares {
            let tag = qemu_opt_escape(&s.tag);
            match s.fs {
                ShareFs::NineP => {
                    let mut fsdev = format!(
                        "local,id={tag},path={},security_model=none",
                        qemu_opt_escape(&s.path.display().to_string())
                    );
                    if s.readonly {
                        fsdev.push_str(",readonly=on");
                    }
                    let dev = format!("virtio-9p-{bus},fsdev={tag},mount_tag={tag}");
                    push(&["-fsdev", &fsdev, "-device", &dev]);
                }
                ShareFs::VirtioFs => {
                    let sock = crate::shares::virtiofs_socket(r.work_dir, &s.tag);
                    let chardev = format!(
                        "socket,id=c{tag},path={}",
                        qemu_opt_escape(&sock.display().to_string())
                    );
                    let dev = format!("vhost-user-fs-{bus},chardev=c{tag},tag={tag}");
                    push(&["-chardev", &chardev, "-device", &dev]);
                    shared_memory = true;
                }
            }
        }
        if shared_memory {
            let obj = format!("memory-backend-memfd,id=mem,size={mem},share=on");
            push(&["-object", &obj, "-numa", "node,memdev=mem"]);
        }
        let cmdline = r.guest_words.join(" ");
        if !cmdline.is_empty() {
            push(&["-append", &cmdline]);
        }
        Ok(MonitorCommand {
            argv: a,
            files: vec![],
            devices,
        })
    }
}

//! Linux kernels used as unikernels: `panic=-1 console=ttyS0 root=... ip=...
//! K=V... init=<args[0]> -- <args[1..]>`.
//!
//! Shared directories: with `mountRootfs` the root is the share `fs0`,
//! `root=fs0 rootfstype=9p rootflags=trans=virtio,version=9p2000.L rw`
//! (virtio-fs: `rootfstype=virtiofs`) and `init=<args[0]>`. A kernel with
//! 9p (or virtio-fs) built in mounts it itself; with an initrd (Debian's
//! kernels have 9p as modules), the kernel runs the initrd's `/init`, which
//! is expected to load the modules, mount `root=` and switch to `init=`
//! (the usual `root=`/`rootfstype=`/`rootflags=`/`init=` convention).
//! Volumes are listed for the guest's init in one environment variable,
//! `URUNC_SHARES=<tag>:<mount point>:<9p|virtiofs>:<ro|rw>[,...]`; the init
//! mounts each by tag (`mount -t 9p -o trans=virtio,version=9p2000.L fs1
//! /data`).

use super::{quote_word, Guest, GuestArgs, GuestNeeds};
use crate::shares::ShareFs;

pub struct Linux;

impl Guest for Linux {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            exit_on_reboot: true,
            serial_console: true,
            shared_dirs: true,
            ..GuestNeeds::default()
        }
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let mut w: Vec<String> = if a.monitor == "firecracker" {
            ["console=ttyS0", "reboot=k", "panic=1", "pci=off"]
                .map(String::from)
                .to_vec()
        } else {
            ["panic=-1", "console=ttyS0"].map(String::from).to_vec()
        };
        let root_share = a.shares.iter().find(|s| s.mount_point == "/");
        if let Some(r) = root_share {
            if a.block.is_some() {
                return Err(
                    "both the shared container rootfs (mountRootfs) and a disk would be its root; set only one"
                        .into(),
                );
            }
            w.push(format!("root={}", r.tag));
            match r.fs {
                ShareFs::NineP => w.extend([
                    "rootfstype=9p".into(),
                    "rootflags=trans=virtio,version=9p2000.L".into(),
                ]),
                ShareFs::VirtioFs => w.push("rootfstype=virtiofs".into()),
            }
            w.push(if r.readonly { "ro" } else { "rw" }.into());
        } else if let Some(b) = a.block {
            w.extend([
                "root=/dev/vda".into(),
                if b.readonly { "ro" } else { "rw" }.into(),
            ]);
        } else if a.initrd {
            w.extend(["root=/dev/ram0".into(), "rw".into()]);
        }
        if let Some(n) = a.net {
            let gw = n.gateway.map(|g| g.to_string()).unwrap_or_default();
            let mut ip = format!("ip={}::{gw}:{}:urunc:eth0:off", n.ip, n.netmask());
            if let Some(d) = n.dns {
                ip.push_str(&format!(":{d}"));
            }
            w.push(ip);
        }
        let volumes: Vec<String> = a
            .shares
            .iter()
            .filter(|s| s.mount_point != "/")
            .map(|s| {
                if s.mount_point
                    .chars()
                    .any(|c| c == ',' || c == ':' || c == '"' || c.is_whitespace())
                {
                    return Err(format!(
                        "volume {:?}: a mount point in URUNC_SHARES cannot contain ',', ':', '\"' or spaces",
                        s.mount_point
                    ));
                }
                let fs = match s.fs {
                    ShareFs::NineP => "9p",
                    ShareFs::VirtioFs => "virtiofs",
                };
                let mode = if s.readonly { "ro" } else { "rw" };
                Ok(format!("{}:{}:{fs}:{mode}", s.tag, s.mount_point))
            })
            .collect::<Result<_, String>>()?;
        if !volumes.is_empty() {
            w.push(format!("URUNC_SHARES={}", volumes.join(",")));
        }
        for e in a.env {
            let Some((k, v)) = e.split_once('=') else {
                continue;
            };
            if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c == '"') {
                return Err(format!(
                    "environment variable {k:?} cannot be passed on a kernel command line"
                ));
            }
            if v.contains('"') {
                return Err(format!("environment variable {k}: value contains '\"', which a kernel command line cannot carry"));
            }
            w.push(if v.chars().any(char::is_whitespace) {
                format!("{k}=\"{v}\"")
            } else {
                e.clone()
            });
        }
        if let Some(init) = a.app.first() {
            let key = if a.initrd && a.block.is_none() && root_share.is_none() {
                "rdinit"
            } else {
                "init"
            };
            w.push(format!("{key}={init}"));
            // `--` only before init arguments (see unikraft.rs: monitors
            // may append parameters after the command line).
            if a.app.len() > 1 {
                w.push("--".into());
                w.extend(a.app.iter().skip(1).map(|s| quote_word(s)));
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestBlock, GuestNet};

    #[test]
    fn initrd_with_net_and_env() {
        let app = vec!["/init".to_string(), "print".into(), "two words".into()];
        let env = vec!["PATH=/bin".to_string(), "GREETING=hi there".into()];
        let net = GuestNet {
            ip: "172.16.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("172.16.0.1".parse().unwrap()),
            dns: Some("9.9.9.9".parse().unwrap()),
        };
        let a = GuestArgs {
            app: &app,
            env: &env,
            net: Some(&net),
            initrd: true,
            block: None,
            shares: &[],
            version: None,
            monitor: "qemu",
        };
        assert_eq!(
            Linux.words(&a).unwrap().join(" "),
            "panic=-1 console=ttyS0 root=/dev/ram0 rw ip=172.16.0.2::172.16.0.1:255.255.255.0:urunc:eth0:off:9.9.9.9 PATH=/bin GREETING=\"hi there\" rdinit=/init -- print 'two words'"
        );
    }

    #[test]
    fn disk_on_firecracker_without_net() {
        let app = vec!["/sbin/init".to_string()];
        let b = GuestBlock {
            mount_point: None,
            readonly: false,
        };
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: None,
            initrd: false,
            block: Some(&b),
            shares: &[],
            version: None,
            monitor: "firecracker",
        };
        assert_eq!(
            Linux.words(&a).unwrap().join(" "),
            "console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/init"
        );
    }

    #[test]
    fn bad_env_is_an_error() {
        let env = vec!["A=say \"x\"".to_string()];
        let a = GuestArgs {
            app: &[],
            env: &env,
            net: None,
            initrd: false,
            block: None,
            shares: &[],
            version: None,
            monitor: "qemu",
        };
        assert!(Linux
            .words(&a)
            .unwrap_err()
            .contains("environment variable A"));
    }
}

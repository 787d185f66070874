//! Linux kernels used as unikernels: `panic=-1 console=ttyS0 root=... ip=...
//! K=V... init=<args[0]> -- <args[1..]>`.

use super::{quote_word, Guest, GuestArgs, GuestNeeds};

pub struct Linux;

impl Guest for Linux {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            exit_on_reboot: true,
            serial_console: true,
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
        if a.block.is_some() {
            w.extend(["root=/dev/vda".into(), "rw".into()]);
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
            let key = if a.initrd && a.block.is_none() {
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
        let b = GuestBlock { mount_point: None };
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: None,
            initrd: false,
            block: Some(&b),
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
            version: None,
            monitor: "qemu",
        };
        assert!(Linux
            .words(&a)
            .unwrap_err()
            .contains("environment variable A"));
    }
}

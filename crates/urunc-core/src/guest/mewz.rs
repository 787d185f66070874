//! Mewz: `ip=<ip>/<prefix> gateway=<gw>`; the application is linked into
//! the kernel, so there are no application arguments.
//!
//! Checked against mewz (mewz-project/mewz at c27f60a, `src/param.zig`
//! `parseFromArgs`, called from `src/main.zig` with the multiboot command
//! line): words split at single spaces, each `key=value`; `ip` is
//! `<a.b.c.d>/<0..32>`, `gateway` a dotted quad (canonical, no leading
//! zeros), other words (QEMU's leading kernel path) are skipped, and a
//! malformed value panics the kernel. The network is enabled only when
//! address, mask **and** gateway are all set (`isNetworkEnabled`), so a
//! pod without a default route gets no network in Mewz.

use super::{Guest, GuestArgs, GuestNeeds};

pub struct Mewz;

impl Guest for Mewz {
    fn name(&self) -> &'static str {
        "mewz"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            min_memory_mib: 512,
            exit_on_reboot: true,
            debug_exit: true,
            modern_virtio: true,
            ..GuestNeeds::default()
        }
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let mut w = Vec::new();
        if let Some(n) = a.net {
            w.push(format!("ip={}/{}", n.ip, n.prefix));
            if let Some(g) = n.gateway {
                w.push(format!("gateway={g}"));
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestNet;

    #[test]
    fn net_only() {
        let net = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: None,
        };
        let app = vec!["ignored".to_string()];
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: Some(&net),
            initrd: false,
            block: None,
            shares: &[],
            version: None,
            monitor: "qemu",
        };
        assert_eq!(
            Mewz.words(&a).unwrap(),
            ["ip=10.0.0.2/24", "gateway=10.0.0.1"]
        );
        assert!(Mewz
            .words(&GuestArgs { net: None, ..a })
            .unwrap()
            .is_empty());
    }
}

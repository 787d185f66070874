//! Rumprun: one JSON object as the command line.
//! `{"cmdline":..,"net":{..},"blk":{..}}` (`net` only with a network, `blk`
//! only with a disk). The netmask is forced to `1` (so that the gateway is
//! always on-link) unless the gateway is inside the real prefix.

use super::{Guest, GuestArgs, GuestNeeds};
use serde_json::{json, Map, Value};

pub struct Rumprun;

impl Guest for Rumprun {
    fn name(&self) -> &'static str {
        "rumprun"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            ext2_block_rootfs: true,
            ..GuestNeeds::default()
        }
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let mut o = Map::new();
        o.insert("cmdline".into(), Value::String(a.app.join(" ")));
        if let Some(n) = a.net {
            // Without a gateway there is nothing to keep on-link.
            let mask = match n.gateway {
                Some(g) if !same_subnet(n.ip, g, n.prefix) => "1".to_string(),
                _ => n.prefix.to_string(),
            };
            let mut net = json!({
                "if": "ukvmif0", "cloner": "True", "type": "inet", "method": "static",
                "addr": n.ip.to_string(), "mask": mask,
            });
            if let Some(g) = n.gateway {
                net["gw"] = Value::String(g.to_string());
            }
            o.insert("net".into(), net);
        }
        if let Some(b) = a.block {
            o.insert(
                "blk".into(),
                json!({
                    "source": "etfs", "path": "/dev/ld0a", "fstype": "blk",
                    "mountpoint": b.mount_point.clone().unwrap_or_else(|| "/data".into()),
                }),
            );
        }
        Ok(vec![Value::Object(o).to_string()])
    }
}

fn same_subnet(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr, prefix: u8) -> bool {
    let m = u32::from(super::prefix_to_mask(prefix));
    u32::from(a) & m == u32::from(b) & m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestBlock, GuestNet};

    #[test]
    fn json_cmdline() {
        let app = vec!["/hello".to_string(), "x".into()];
        let net = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: None,
        };
        let b = GuestBlock {
            mount_point: Some("/mnt".into()),
            readonly: false,
        };
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: Some(&net),
            initrd: false,
            block: Some(&b),
            shares: &[],
            version: None,
            monitor: "hvt",
        };
        let w = Rumprun.words(&a).unwrap();
        assert_eq!(w.len(), 1);
        let v: Value = serde_json::from_str(&w[0]).unwrap();
        assert_eq!(v["cmdline"], "/hello x");
        assert_eq!(v["net"]["addr"], "10.0.0.2");
        assert_eq!(v["net"]["mask"], "24");
        assert_eq!(v["net"]["if"], "ukvmif0");
        assert_eq!(v["blk"]["mountpoint"], "/mnt");
        let off = GuestNet {
            gateway: Some("192.168.1.1".parse().unwrap()),
            ..net
        };
        let v: Value = serde_json::from_str(
            &Rumprun
                .words(&GuestArgs {
                    net: Some(&off),
                    block: None,
                    ..a
                })
                .unwrap()[0],
        )
        .unwrap();
        assert_eq!(v["net"]["mask"], "1");
        assert!(v.get("blk").is_none());
        let none = GuestNet {
            gateway: None,
            ..net
        };
        let v: Value = serde_json::from_str(
            &Rumprun
                .words(&GuestArgs {
                    net: Some(&none),
                    block: None,
                    ..a
                })
                .unwrap()[0],
        )
        .unwrap();
        assert_eq!(v["net"]["mask"], "24");
        assert!(v["net"].get("gw").is_none());
        assert!(Rumprun.needs().ext2_block_rootfs);
    }
}

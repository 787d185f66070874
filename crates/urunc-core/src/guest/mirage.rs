//! MirageOS: `--ipv4=<ip>/<prefix> --ipv4-gateway=<gw> <args>`.
//!
//! Checked against mirage 4.11 (`lib_runtime/mirage_runtime_network.ml`):
//! the network device's runtime arguments are Cmdliner options named
//! `ipv4` (an `Ipaddr.V4.Prefix`, "address and netmask, e.g.
//! 192.168.0.1/16") and `ipv4-gateway` (an `Ipaddr.V4` address), each
//! prefixed with `<group>-` when the unikernel's network is in a named
//! group (then these defaults do not reach it). Being Cmdliner options,
//! they are given as `--ipv4=...`; an option the unikernel does not
//! declare makes Cmdliner refuse the whole command line, so the
//! application arguments must be options the unikernel knows.

use super::{Guest, GuestArgs};

pub struct Mirage;

impl Guest for Mirage {
    fn name(&self) -> &'static str {
        "mirage"
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let mut w = Vec::new();
        if let Some(n) = a.net {
            w.push(format!("--ipv4={}/{}", n.ip, n.prefix));
            if let Some(g) = n.gateway {
                w.push(format!("--ipv4-gateway={g}"));
            }
        }
        w.extend(a.app.iter().cloned());
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestNet;

    #[test]
    fn flags() {
        let net = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 8,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: None,
        };
        let app = vec!["-l".to_string(), "*:debug".into()];
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: Some(&net),
            initrd: false,
            block: None,
            shares: &[],
            version: None,
            monitor: "hvt",
        };
        assert_eq!(
            Mirage.words(&a).unwrap(),
            [
                "--ipv4=10.0.0.2/8",
                "--ipv4-gateway=10.0.0.1",
                "-l",
                "*:debug"
            ]
        );
        let a = GuestArgs { net: None, ..a };
        assert_eq!(Mirage.words(&a).unwrap(), ["-l", "*:debug"]);
    }
}

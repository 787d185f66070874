//! MirageOS: `--ipv4=<ip>/<prefix> --ipv4-gateway=<gw> <args>`.

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

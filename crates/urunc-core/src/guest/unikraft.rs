//! Unikraft. From 0.16.1 on: `<app> [env.vars=[ K=V ]] netdev.ip=<ip>/<prefix>:<gw>:<dns>
//! [vfs.fstab=[ "initrd0:/:extract:::" ]] -- <args>`; before that, the
//! `netdev.ipv4_*` parameters and `vfs.rootfs=initrd`.

use super::{quote_word, Guest, GuestArgs};

pub struct Unikraft;

/// True when `version` is older than 0.16.1. Unknown or absent versions are
/// taken as current.
fn is_legacy(version: Option<&str>) -> bool {
    let Some(v) = version else { return false };
    let nums: Vec<u64> = v
        .trim()
        .trim_start_matches(['v', 'V'])
        .split(['.', '-', '+'])
        .take(3)
        .map_while(|p| p.parse().ok())
        .collect();
    if nums.is_empty() {
        return false;
    }
    let get = |i: usize| nums.get(i).copied().unwrap_or(0);
    (get(0), get(1), get(2)) < (0, 16, 1)
}

impl Guest for Unikraft {
    fn name(&self) -> &'static str {
        "unikraft"
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let legacy = is_legacy(a.version);
        let mut w = Vec::new();
        w.push(
            a.app
                .first()
                .map(|s| quote_word(s))
                .unwrap_or_else(|| "unikernel".into()),
        );
        if !legacy && !a.env.is_empty() {
            w.push("env.vars=[".into());
            w.extend(a.env.iter().map(|e| quote_word(e)));
            w.push("]".into());
        }
        if let Some(n) = a.net {
            let gw = n.gateway.map(|g| g.to_string()).unwrap_or_default();
            if legacy {
                w.push(format!("netdev.ipv4_addr={}", n.ip));
                w.push(format!("netdev.ipv4_gw_addr={gw}"));
                w.push(format!("netdev.ipv4_subnet_mask={}", n.netmask()));
            } else {
                let dns = n.dns.map(|d| d.to_string()).unwrap_or_default();
                w.push(format!("netdev.ip={}/{}:{gw}:{dns}", n.ip, n.prefix));
            }
        }
        if a.initrd {
            if legacy {
                w.push("vfs.rootfs=initrd".into());
            } else {
                w.extend([
                    "vfs.fstab=[".into(),
                    "\"initrd0:/:extract:::\"".into(),
                    "]".into(),
                ]);
            }
        }
        // `--` only before application arguments: monitors such as
        // Firecracker append kernel parameters (virtio_mmio.device=...)
        // after the command line, and Unikraft reads parameters only
        // before `--`.
        if a.app.len() > 1 {
            w.push("--".into());
            w.extend(a.app.iter().skip(1).map(|s| quote_word(s)));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestNet;

    fn args<'a>(
        app: &'a [String],
        env: &'a [String],
        net: Option<&'a GuestNet>,
        initrd: bool,
        v: Option<&'a str>,
    ) -> GuestArgs<'a> {
        GuestArgs {
            app,
            env,
            net,
            initrd,
            block: None,
            version: v,
            monitor: "qemu",
        }
    }

    #[test]
    fn versions() {
        assert!(is_legacy(Some("0.15.0")));
        assert!(is_legacy(Some("v0.16.0")));
        assert!(!is_legacy(Some("0.16.1")));
        assert!(!is_legacy(Some("0.17")));
        assert!(!is_legacy(Some("1.0.0")));
        assert!(!is_legacy(None));
        assert!(!is_legacy(Some("latest")));
    }

    #[test]
    fn current_format() {
        let app = vec![
            "nginx".to_string(),
            "-c".into(),
            "/nginx/conf/nginx.conf".into(),
        ];
        let env = vec!["A=1".to_string(), "B=2".into()];
        let net = GuestNet {
            ip: "10.4.0.2".parse().unwrap(),
            prefix: 16,
            gateway: Some("10.4.0.1".parse().unwrap()),
            dns: Some("1.1.1.1".parse().unwrap()),
        };
        let w = Unikraft
            .words(&args(&app, &env, Some(&net), true, Some("0.17.0")))
            .unwrap();
        assert_eq!(
            w.join(" "),
            "nginx env.vars=[ A=1 B=2 ] netdev.ip=10.4.0.2/16:10.4.0.1:1.1.1.1 vfs.fstab=[ \"initrd0:/:extract:::\" ] -- -c /nginx/conf/nginx.conf"
        );
        let w = Unikraft
            .words(&args(&app[..1], &[], None, false, None))
            .unwrap();
        assert_eq!(w.join(" "), "nginx");
    }

    #[test]
    fn legacy_format() {
        let app = vec!["hello".to_string()];
        let net = GuestNet {
            ip: "10.4.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.4.0.1".parse().unwrap()),
            dns: None,
        };
        let w = Unikraft
            .words(&args(
                &app,
                &["X=1".to_string()],
                Some(&net),
                true,
                Some("0.15.0"),
            ))
            .unwrap();
        assert_eq!(
            w.join(" "),
            "hello netdev.ipv4_addr=10.4.0.2 netdev.ipv4_gw_addr=10.4.0.1 netdev.ipv4_subnet_mask=255.255.255.0 vfs.rootfs=initrd"
        );
    }
}

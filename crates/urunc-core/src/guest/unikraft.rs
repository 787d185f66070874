//! Unikraft. From 0.16.1 on: `<app> [env.vars=[ K=V ]] netdev.ip=<ip>/<prefix>:<gw>:<dns>
//! [vfs.fstab=[ "initrd0:/:extract:::" ]] -- <args>`; before that, the
//! `netdev.ipv4_*` parameters and `vfs.rootfs=initrd`.
//!
//! Shared directories (9p only): the container rootfs is the root,
//! `"fs0:/:9pfs:::"` in `vfs.fstab` instead of the initrd entry
//! (`vfs.rootdev=fs0 vfs.rootfs=9pfs` before 0.16.1); each volume adds
//! `"fsN:<mount point>:9pfs:::"` (0.16.1 and later only).

use super::{quote_word, Guest, GuestArgs, GuestNeeds};
use crate::shares::ShareFs;

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

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            shared_dirs: true,
            ..GuestNeeds::default()
        }
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
        let mut fstab = Vec::new();
        let root_share = a.shares.iter().find(|s| s.mount_point == "/");
        for s in a.shares {
            if s.fs != ShareFs::NineP {
                return Err(format!(
                    "it mounts shared directories over 9p only, not {} (set shared_fs = \"9p\" for the monitor in the config file)",
                    s.fs.name()
                ));
            }
            if s.mount_point == "/" {
                continue;
            }
            if legacy {
                return Err(format!(
                    "volume {}: Unikraft before 0.16.1 (unikernelVersion {}) takes no vfs.fstab to mount it",
                    s.mount_point,
                    a.version.unwrap_or_default()
                ));
            }
            if s.mount_point
                .chars()
                .any(|c| c == ':' || c == '"' || c.is_whitespace())
            {
                return Err(format!(
                    "volume {:?}: a vfs.fstab mount point cannot contain ':', '\"' or spaces",
                    s.mount_point
                ));
            }
            fstab.push(format!("\"{}:{}:9pfs:::\"", s.tag, s.mount_point));
        }
        if let Some(r) = root_share {
            if legacy {
                w.push(format!("vfs.rootdev={}", r.tag));
                w.push("vfs.rootfs=9pfs".into());
            } else {
                fstab.insert(0, format!("\"{}:/:9pfs:::\"", r.tag));
            }
        } else if a.initrd {
            if legacy {
                w.push("vfs.rootfs=initrd".into());
            } else {
                fstab.insert(0, "\"initrd0:/:extract:::\"".into());
            }
        }
        if !fstab.is_empty() {
            w.push("vfs.fstab=[".into());
            w.extend(fstab);
            w.push("]".into());
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
            shares: &[],
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

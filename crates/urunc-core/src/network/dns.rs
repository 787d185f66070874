//! The nameserver handed to the guest, read from the container's
//! resolv.conf.

use std::net::Ipv4Addr;
use std::path::Path;

/// The nameserver the container would use: its /etc/resolv.conf as the
/// spec's mounts provide it (docker, nerdctl and CRI bind-mount one over
/// the image's), else the rootfs's own, resolved inside the rootfs and read
/// from the file found ([`crate::rootfs::open_in_root`]: an image's link,
/// absolute or swapped in meanwhile, must not read the host's file).
pub fn container_nameserver(spec: &oci_spec::runtime::Spec, rootfs: &Path) -> Option<Ipv4Addr> {
    let mounted = spec.mounts().as_ref().and_then(|ms| {
        ms.iter()
            .rev()
            .find(|m| {
                Path::new(m.destination())
                    .components()
                    .eq(Path::new("/etc/resolv.conf").components())
            })
            .and_then(|m| m.source().clone())
            .filter(|s| s.is_absolute())
    });
    let text = match mounted {
        Some(src) => std::fs::read_to_string(src).ok()?,
        None => {
            let f = crate::rootfs::open_in_root(rootfs, "/etc/resolv.conf").ok()?;
            std::io::read_to_string(&f.file).ok()?
        }
    };
    nameserver(&text)
}

/// First IPv4 nameserver in a resolv.conf's text.
pub fn nameserver(resolv_conf: &str) -> Option<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_from_the_spec_mount_else_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(rootfs.join("run")).unwrap();
        std::fs::write(rootfs.join("run/resolv.conf"), "nameserver 10.1.1.1\n").unwrap();
        // An absolute link, as images have: it must stay in the rootfs.
        std::os::unix::fs::symlink("/run/resolv.conf", rootfs.join("etc/resolv.conf")).unwrap();
        let spec = |mounts: serde_json::Value| -> oci_spec::runtime::Spec {
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts})).unwrap()
        };
        let none = spec(serde_json::json!([]));
        assert_eq!(
            container_nameserver(&none, &rootfs),
            Some(Ipv4Addr::new(10, 1, 1, 1))
        );
        let host = d.path().join("engine-resolv.conf");
        std::fs::write(&host, "search x\nnameserver fd00::1\nnameserver 10.2.2.2\n").unwrap();
        let mounted = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": host, "options": ["rbind", "ro"]},
        ]));
        assert_eq!(
            container_nameserver(&mounted, &rootfs),
            Some(Ipv4Addr::new(10, 2, 2, 2))
        );
        std::fs::remove_file(rootfs.join("run/resolv.conf")).unwrap();
        assert_eq!(container_nameserver(&none, &rootfs), None);
    }
}

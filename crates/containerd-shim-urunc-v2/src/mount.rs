//! Mounting the rootfs containerd hands over in `Create` (e.g. an overlay
//! from the overlayfs snapshotter) onto `<bundle>/rootfs`, and unmounting it.

use std::path::Path;

use nix::{
    errno::Errno,
    mount::{mount, umount2, MntFlags, MsFlags},
};

/// Mount flags and filesystem data split out of fstab-style options.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedOptions {
    pub flags: MsFlags,
    /// Propagation change applied after the mount (`rprivate`, ...).
    pub propagation: MsFlags,
    /// Comma-joined options the filesystem itself interprets.
    pub data: String,
}

/// Largest `data` string the kernel accepts (one page).
const MAX_DATA: usize = 4096;

/// Split mount options into `MS_*` flags and filesystem data.
pub fn parse_options(options: &[String]) -> ParsedOptions {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        // (flag, true = clear it)
        let f: Option<(MsFlags, bool)> = match opt.as_str() {
            "defaults" => Some((MsFlags::empty(), false)),
            "ro" => Some((MsFlags::MS_RDONLY, false)),
            "rw" => Some((MsFlags::MS_RDONLY, true)),
            "suid" => Some((MsFlags::MS_NOSUID, true)),
            "nosuid" => Some((MsFlags::MS_NOSUID, false)),
            "dev" => Some((MsFlags::MS_NODEV, true)),
            "nodev" => Some((MsFlags::MS_NODEV, false)),
            "exec" => Some((MsFlags::MS_NOEXEC, true)),
            "noexec" => Some((MsFlags::MS_NOEXEC, false)),
            "sync" => Some((MsFlags::MS_SYNCHRONOUS, false)),
            "async" => Some((MsFlags::MS_SYNCHRONOUS, true)),
            "dirsync" => Some((MsFlags::MS_DIRSYNC, false)),
            "remount" => Some((MsFlags::MS_REMOUNT, false)),
            "mand" => Some((MsFlags::MS_MANDLOCK, false)),
            "nomand" => Some((MsFlags::MS_MANDLOCK, true)),
            "atime" => Some((MsFlags::MS_NOATIME, true)),
            "noatime" => Some((MsFlags::MS_NOATIME, false)),
            "diratime" => Some((MsFlags::MS_NODIRATIME, true)),
            "nodiratime" => Some((MsFlags::MS_NODIRATIME, false)),
            "relatime" => Some((MsFlags::MS_RELATIME, false)),
            "norelatime" => Some((MsFlags::MS_RELATIME, true)),
            "strictatime" => Some((MsFlags::MS_STRICTATIME, false)),
            "bind" => Some((MsFlags::MS_BIND, false)),
            "rbind" => Some((MsFlags::MS_BIND | MsFlags::MS_REC, false)),
            _ => None,
        };
        let p = match opt.as_str() {
            "private" => Some(MsFlags::MS_PRIVATE),
            "rprivate" => Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => Some(MsFlags::MS_SHARED),
            "rshared" => Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => Some(MsFlags::MS_SLAVE),
            "rslave" => Some(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => Some(MsFlags::MS_UNBINDABLE),
            "runbindable" => Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            _ => None,
        };
        match (f, p) {
            (Some((flag, true)), _) => flags.remove(flag),
            (Some((flag, false)), _) => flags.insert(flag),
            (None, Some(p)) => propagation.insert(p),
            (None, None) => data.push(opt),
        }
    }
    ParsedOptions {
        flags,
        propagation,
        data: data.join(","),
    }
}

/// Mount one containerd mount (type, source, options) onto `target`.
pub fn mount_one(
    fs_type: &str,
    source: &str,
    options: &[String],
    target: &Path,
) -> Result<(), String> {
    let parsed = parse_options(options);
    let what = format!(
        "mount {fs_type} {source} on {} (options {})",
        target.display(),
        options.join(",")
    );
    if parsed.data.len() >= MAX_DATA {
        return Err(format!(
            "{what}: the filesystem options are {} bytes, over the kernel's limit of {MAX_DATA}",
            parsed.data.len()
        ));
    }
    let fs_type = (!fs_type.is_empty() && fs_type != "bind").then_some(fs_type);
    let source = (!source.is_empty()).then_some(source);
    let data = (!parsed.data.is_empty()).then_some(parsed.data.as_str());
    mount(source, target, fs_type, parsed.flags, data).map_err(|e| format!("{what}: {e}"))?;
    // A read-only bind mount needs a remount to take effect.
    if parsed.flags.contains(MsFlags::MS_BIND) && parsed.flags.contains(MsFlags::MS_RDONLY) {
        mount::<str, Path, str, str>(None, target, None, parsed.flags | MsFlags::MS_REMOUNT, None)
            .map_err(|e| format!("{what}: remount read-only: {e}"))?;
    }
    if !parsed.propagation.is_empty() {
        mount::<str, Path, str, str>(None, target, None, parsed.propagation, None)
            .map_err(|e| format!("{what}: set propagation: {e}"))?;
    }
    Ok(())
}

/// Unmount everything stacked on `target` (lazy, so a busy mount cannot
/// block the shim). Not being a mount point, or not existing, is success.
pub fn unmount_all(target: &Path) -> Result<(), String> {
    // Bounded: each successful umount removes one layer of the stack.
    for _ in 0..64 {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(format!("unmount {}: {e}", target.display())),
        }
    }
    Err(format!(
        "unmount {}: still mounted after 64 unmounts",
        target.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options_are_data() {
        let p = parse_options(&opts(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l1:/l2",
        ]));
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(p.propagation, MsFlags::empty());
        assert_eq!(p.data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l1:/l2");
    }

    #[test]
    fn flags_set_and_clear() {
        let p = parse_options(&opts(&[
            "rbind", "ro", "nosuid", "rw", "rprivate", "mode=755",
        ]));
        assert_eq!(
            p.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID
        );
        assert_eq!(p.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(p.data, "mode=755");
    }

    #[test]
    fn too_long_data_is_refused_by_name() {
        let long = format!("lowerdir={}", "/x".repeat(3000));
        let dir = tempfile::tempdir().unwrap();
        let e = mount_one("overlay", "overlay", &[long], dir.path()).unwrap_err();
        assert!(e.contains("over the kernel's limit"), "{e}");
        assert!(e.contains("mount overlay overlay on"), "{e}");
    }

    #[test]
    fn unmount_of_plain_dir_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        unmount_all(dir.path()).unwrap();
        unmount_all(&dir.path().join("absent")).unwrap();
    }

    #[test]
    fn bind_mount_round_trip() {
        if !nix::unistd::Uid::effective().is_root() {
            println!("SKIP: bind_mount_round_trip: needs root to mount");
            return;
        }
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("marker"), b"x").unwrap();
        let dst = tempfile::tempdir().unwrap();
        mount_one(
            "bind",
            src.path().to_str().unwrap(),
            &opts(&["rbind", "ro"]),
            dst.path(),
        )
        .unwrap();
        assert!(dst.path().join("marker").exists());
        let write = std::fs::write(dst.path().join("new"), b"y");
        unmount_all(dst.path()).unwrap();
        assert!(write.is_err(), "read-only bind mount accepted a write");
        assert!(!dst.path().join("marker").exists());
    }
}

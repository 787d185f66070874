//! Block-backed rootfs hand-over (`useDMBlock`, SPEC §8) and the file
//! system checks for guests that read only some file systems.
//!
//! With containerd's devmapper snapshotter the container rootfs is a mounted
//! thin device (`/dev/mapper/...`); a loop device (`/dev/loopN`) works the
//! same way. With `useDMBlock` the guest gets that device as its disk. For
//! the guest to use it exclusively nothing else may have the file system
//! mounted, so at `create` urunc
//!
//! 1. copies what the monitor still needs from the rootfs (kernel, initrd,
//!    `urunc.json`, `etc/resolv.conf`) into the state directory, which then
//!    serves as the rootfs the monitor sees;
//! 2. records the mount (device, mount point, type, options) in the state
//!    directory;
//! 3. unmounts the rootfs **on the host** (before the container's mount
//!    namespace exists, so that namespace never has it either) and checks,
//!    by opening the device with `O_EXCL`, that no other mount anywhere (a
//!    bind mount, another namespace) still holds the file system — the
//!    unmount is undone and `create` fails otherwise;
//!
//! and `delete` (or a failed `create`) mounts it back as it was, so that
//! the snapshotter finds the rootfs as it left it.

use crate::error::{Context, Error, Result};
use crate::rootfs::RootFile;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the kept files live inside the state directory.
pub const KEPT_DIR: &str = "rootfs-kept";
/// The record of the unmounted rootfs, inside the state directory.
pub const RECORD: &str = "block-rootfs.json";

/// A rootfs that is a whole block device's file system, mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRootfs {
    /// The device node, as the mount table names it.
    pub device: PathBuf,
    /// The rootfs (mount point), canonical.
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// Per-mount flags (`MS_*` bits) to mount it back with.
    pub flags: u64,
    /// File-system options to mount it back with.
    pub data: String,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountInfo {
    dev: (u64, u64),
    root: String,
    mountpoint: PathBuf,
    opts: String,
    fstype: String,
    source: String,
    super_opts: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (maj, min) = pre.get(2)?.split_once(':')?;
            Some(MountInfo {
                dev: (maj.parse().ok()?, min.parse().ok()?),
                root: unescape(pre.get(3)?),
                mountpoint: PathBuf::from(unescape(pre.get(4)?)),
                opts: pre.get(5)?.to_string(),
                fstype: post.first()?.to_string(),
                source: unescape(post.get(1)?),
                super_opts: post.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn mount_flags(opts: &str) -> MsFlags {
    let mut f = MsFlags::empty();
    for o in opts.split(',') {
        f |= match o {
            "ro" => MsFlags::MS_RDONLY,
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            "sync" => MsFlags::MS_SYNCHRONOUS,
            "dirsync" => MsFlags::MS_DIRSYNC,
            "lazytime" => MsFlags::MS_LAZYTIME,
            _ => MsFlags::empty(),
        };
    }
    f
}

/// Is `source` a device-mapper or loop device node?
fn is_dm_or_loop(source: &str) -> bool {
    source.starts_with("/dev/mapper/")
        || source.starts_with("/dev/dm-")
        || source.starts_with("/dev/loop")
}

/// The block device behind `rootfs`, from a mount table.
fn find_in(table: &str, rootfs: &Path) -> Result<BlockRootfs, String> {
    let mounts = parse_mountinfo(table);
    // The top-most mount on that path is the one the container would see.
    let Some(m) = mounts.iter().rev().find(|m| m.mountpoint == rootfs) else {
        return Err(format!(
            "the rootfs {} is not a mount point, so no block device backs it (useDMBlock needs containerd's devmapper snapshotter or a loop-mounted rootfs)",
            rootfs.display()
        ));
    };
    if !is_dm_or_loop(&m.source) {
        return Err(format!(
            "the rootfs {} is a {} mount of {:?}, not of a devmapper or loop block device (useDMBlock needs containerd's devmapper snapshotter or a loop-mounted rootfs)",
            rootfs.display(),
            m.fstype,
            m.source
        ));
    }
    if m.root != "/" {
        return Err(format!(
            "the rootfs {} is only the directory {:?} of {}: handing the device over would give the guest more than the rootfs",
            rootfs.display(),
            m.root,
            m.source
        ));
    }
    let data = m
        .super_opts
        .split(',')
        .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
        .collect::<Vec<_>>()
        .join(",");
    Ok(BlockRootfs {
        device: PathBuf::from(&m.source),
        mountpoint: rootfs.to_path_buf(),
        fstype: m.fstype.clone(),
        flags: mount_flags(&m.opts).bits(),
        data,
    })
}

/// Finds the block device mounted on `rootfs` (a host path) and checks it
/// is the device the mount table says.
pub fn find_block_rootfs(rootfs: &Path) -> Result<BlockRootfs, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let rootfs = std::fs::canonicalize(rootfs)
        .map_err(|e| format!("the rootfs {}: {e}", rootfs.display()))?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let b = find_in(&table, &rootfs)?;
    let md = std::fs::metadata(&b.device)
        .map_err(|e| format!("the rootfs's device {}: {e}", b.device.display()))?;
    if !md.file_type().is_block_device() {
        return Err(format!(
            "the rootfs's device {} is not a block device node",
            b.device.display()
        ));
    }
    let dev_of_mount = std::fs::metadata(&rootfs).map(|m| m.dev()).ok();
    if dev_of_mount.is_some() && dev_of_mount != Some(md.rdev()) {
        return Err(format!(
            "the rootfs {} is not on {} (device numbers differ)",
            rootfs.display(),
            b.device.display()
        ));
    }
    Ok(b)
}

/// What the ext2 superblock at byte 1024 says.
fn ext_superblock(path: &Path) -> Result<(u32, u32, u32), String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut sb = [0u8; 1024];
    f.read_exact_at(&mut sb, 1024)
        .map_err(|_| "too small to hold a file system".to_string())?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if u16::from_le_bytes([sb[56], sb[57]]) != 0xEF53 {
        return Err("holds no ext2 file system (no ext2/3/4 superblock)".into());
    }
    if u32_at(76) == 0 {
        return Ok((0, 0, 0));
    }
    Ok((u32_at(92), u32_at(96), u32_at(100)))
}

/// Incompatible ext features and their names (those beyond ext2's).
const EXT_INCOMPAT: &[(u32, &str)] = &[
    (0x1, "compression"),
    (0x4, "needs_recovery"),
    (0x8, "journal_dev"),
    (0x10, "meta_bg"),
    (0x40, "extent"),
    (0x80, "64bit"),
    (0x100, "mmp"),
    (0x200, "flex_bg"),
    (0x400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];

/// Checks that the disk at `path` (image or device) holds a file system an
/// ext2-only guest can mount: an ext2 superblock with no incompatible
/// feature beyond `filetype` (a clean ext3 journal is a compatible feature
/// and is ignored; ext4's extents, 64bit, flex_bg… are not).
pub fn check_ext2(path: &Path) -> Result<(), String> {
    let (_compat, incompat, _ro) = ext_superblock(path)?;
    let extra = incompat & !0x2;
    if extra != 0 {
        let mut names: Vec<String> = EXT_INCOMPAT
            .iter()
            .filter(|(bit, _)| extra & bit != 0)
            .map(|(_, n)| n.to_string())
            .collect();
        let known = EXT_INCOMPAT.iter().fold(0, |a, (b, _)| a | b);
        if extra & !known != 0 {
            names.push(format!("{:#x}", extra & !known));
        }
        return Err(format!(
            "holds an ext3/ext4 file system with features an ext2 driver cannot read ({}); make it with mke2fs -t ext2",
            names.join(", ")
        ));
    }
    Ok(())
}

fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join(RECORD)
}

/// Copies `file` (resolved at `host`, a path under `from`) to the same
/// relative path under `to`, reading the open file, not the name.
fn keep(from: &Path, to: &Path, host: &Path, file: &std::fs::File) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let rel = host.strip_prefix(from).map_err(|_| {
        Error::msg(format!(
            "{} is not inside the rootfs {}",
            host.display(),
            from.display()
        ))
    })?;
    let dst = to.join(rel);
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p).ctx(|| format!("creating {}", p.display()))?;
    }
    let what = || format!("keeping {} aside in {}", host.display(), dst.display());
    let mut src = file;
    src.seek(SeekFrom::Start(0)).ctx(what)?;
    let mut out = std::fs::File::create(&dst).ctx(what)?;
    std::io::copy(&mut src, &mut out).ctx(what)?;
    Ok(())
}

/// Keeps aside in `state_dir` what the monitor still needs once the block
/// device behind the rootfs is handed over: `files` (the kernel and
/// initrd, resolved inside `rootfs`), the metadata file and
/// `etc/resolv.conf` (resolved inside the rootfs here, left out when
/// absent). Returns the directory of the copies, which then serves as the
/// rootfs the monitor sees. This module knows nothing of the plan
/// (`plan` depends on it, not the reverse):
/// `Unikernel::hand_over_block` calls it, then [`hand_over`].
pub fn keep_aside(rootfs: &Path, files: &[&RootFile], state_dir: &Path) -> Result<PathBuf> {
    let kept = state_dir.join(KEPT_DIR);
    std::fs::create_dir_all(&kept).ctx(|| format!("creating {}", kept.display()))?;
    for f in files {
        keep(rootfs, &kept, &f.path, &f.file)?;
    }
    for extra in [crate::metadata::FILE_NAME, "etc/resolv.conf"] {
        if let Ok(f) = crate::rootfs::open_in_root(rootfs, extra) {
            keep(rootfs, &kept, &f.path, &f.file)?;
        }
    }
    Ok(kept)
}

/// Hands the block device `b` behind the rootfs over to the guest (see the
/// module documentation): unmounts the rootfs, once [`keep_aside`] has
/// copied what the monitor still needs and nothing of urunc's holds a file
/// of it open.
pub fn hand_over(b: &BlockRootfs, state_dir: &Path) -> Result<()> {
    let rec = serde_json::to_vec_pretty(b).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(record_path(state_dir), rec)
        .ctx(|| format!("writing {}", record_path(state_dir).display()))?;
    umount2(&b.mountpoint, MntFlags::empty()).map_err(|e| {
        let _ = std::fs::remove_file(record_path(state_dir));
        Error::sys(
            format!(
                "useDMBlock: unmounting the rootfs {} to hand {} to the guest",
                b.mountpoint.display(),
                b.device.display()
            ),
            e,
        )
    })?;
    // O_EXCL on a block device fails with EBUSY while any file system on it
    // is mounted, in any mount namespace.
    let excl = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&b.device);
    if let Err(e) = excl {
        let _ = restore(state_dir);
        return Err(Error::msg(format!(
            "useDMBlock: {} is still in use after unmounting the rootfs {} ({e}): it is mounted elsewhere too (a bind mount or another mount namespace), so the guest cannot have it to itself",
            b.device.display(),
            b.mountpoint.display()
        )));
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

/// Mounts back a rootfs that [`hand_over`] unmounted, if any; idempotent.
/// A device or mount point that no longer exists is only warned about (the
/// snapshot may already be gone).
pub fn restore(state_dir: &Path) -> Result<()> {
    let rp = record_path(state_dir);
    let data = match std::fs::read(&rp) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::sys(format!("reading {}", rp.display()), e)),
    };
    let b: BlockRootfs =
        serde_json::from_slice(&data).map_err(|e| Error::msg(format!("{}: {e}", rp.display())))?;
    if !b.device.exists() || !b.mountpoint.is_dir() {
        crate::log::warn(&format!(
            "useDMBlock: not mounting {} back on {}: one of them is gone",
            b.device.display(),
            b.mountpoint.display()
        ));
    } else {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mounted = parse_mountinfo(&table)
            .iter()
            .any(|m| m.mountpoint == b.mountpoint && Path::new(&m.source) == b.device);
        if !mounted {
            let flags = MsFlags::from_bits_truncate(b.flags);
            let data = (!b.data.is_empty()).then_some(b.data.as_str());
            let r = mount(
                Some(&b.device),
                &b.mountpoint,
                Some(b.fstype.as_str()),
                flags,
                data,
            );
            // Options shown in the mount table are not always accepted back.
            let r = match r {
                Err(nix::errno::Errno::EINVAL) if data.is_some() => mount(
                    Some(&b.device),
                    &b.mountpoint,
                    Some(b.fstype.as_str()),
                    flags,
                    None::<&str>,
                ),
                r => r,
            };
            r.ctx(|| {
                format!(
                    "useDMBlock: mounting {} back on the rootfs {}",
                    b.device.display(),
                    b.mountpoint.display()
                )
            })?;
        }
    }
    std::fs::remove_file(&rp).ctx(|| format!("removing {}", rp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
30 22 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
40 22 7:3 / /b/one\\040space/rootfs rw,nosuid,relatime shared:9 - ext2 /dev/loop3 rw,errors=continue
41 22 253:4 / /c/rootfs ro,noatime - ext4 /dev/mapper/pool-snap-7 ro,stripe=16
42 22 253:4 /sub /d/rootfs rw - ext4 /dev/mapper/pool-snap-7 rw
43 22 0:40 / /e/rootfs rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
";

    #[test]
    fn finds_loop_and_devmapper_rootfs() {
        let b = find_in(TABLE, Path::new("/b/one space/rootfs")).unwrap();
        assert_eq!(b.device, Path::new("/dev/loop3"));
        assert_eq!(b.fstype, "ext2");
        assert_eq!(b.data, "errors=continue");
        assert_eq!(
            MsFlags::from_bits_truncate(b.flags),
            MsFlags::MS_NOSUID | MsFlags::MS_RELATIME
        );
        let b = find_in(TABLE, Path::new("/c/rootfs")).unwrap();
        assert_eq!(b.device, Path::new("/dev/mapper/pool-snap-7"));
        assert_eq!(
            MsFlags::from_bits_truncate(b.flags),
            MsFlags::MS_RDONLY | MsFlags::MS_NOATIME
        );
        assert_eq!(b.data, "stripe=16");
    }

    #[test]
    fn other_rootfs_are_clear_errors() {
        let e = find_in(TABLE, Path::new("/e/rootfs")).unwrap_err();
        assert!(e.contains("overlay mount of \"overlay\""), "{e}");
        let e = find_in(TABLE, Path::new("/d/rootfs")).unwrap_err();
        assert!(e.contains("only the directory \"/sub\""), "{e}");
        let e = find_in(TABLE, Path::new("/x/rootfs")).unwrap_err();
        assert!(e.contains("not a mount point"), "{e}");
        let e = find_in(TABLE, Path::new("/")).unwrap_err();
        assert!(e.contains("\"/dev/sda1\""), "{e}");
    }

    fn superblock(incompat: u32, compat: u32) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let sb = &mut d[1024..2048];
        sb[56..58].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[76..80].copy_from_slice(&1u32.to_le_bytes());
        sb[92..96].copy_from_slice(&compat.to_le_bytes());
        sb[96..100].copy_from_slice(&incompat.to_le_bytes());
        d
    }

    #[test]
    fn ext2_check() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        std::fs::write(&p, superblock(0x2, 0)).unwrap();
        check_ext2(&p).unwrap();
        // A clean ext3 (journal is a compatible feature) reads as ext2.
        std::fs::write(&p, superblock(0x2, 0x4)).unwrap();
        check_ext2(&p).unwrap();
        std::fs::write(&p, superblock(0x2 | 0x40 | 0x80 | 0x200, 0x4)).unwrap();
        let e = check_ext2(&p).unwrap_err();
        assert!(e.contains("(extent, 64bit, flex_bg)"), "{e}");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(check_ext2(&p).unwrap_err().contains("no ext2"));
        std::fs::write(&p, b"tiny").unwrap();
        assert!(check_ext2(&p).unwrap_err().contains("too small"));
    }

    #[test]
    fn real_images_from_mkdisk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        if std::process::Command::new("mke2fs")
            .arg("-V")
            .output()
            .is_err()
            && !Path::new("/sbin/mke2fs").exists()
        {
            println!("SKIP: real_images_from_mkdisk: mke2fs not found");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let two = d.path().join("2.img");
        let four = d.path().join("4.img");
        let run = |out: &Path, fstype: &str| {
            let st = std::process::Command::new("bash")
                .arg(root.join("mkdisk.sh"))
                .arg(out)
                .arg("a=b")
                .env("FSTYPE", fstype)
                .output()
                .unwrap();
            assert!(st.status.success(), "{st:?}");
        };
        run(&two, "ext2");
        run(&four, "ext4");
        check_ext2(&two).unwrap();
        assert!(check_ext2(&four).unwrap_err().contains("extent"));
    }

    #[test]
    fn restore_without_record_is_a_no_op() {
        let d = tempfile::tempdir().unwrap();
        restore(d.path()).unwrap();
    }
}

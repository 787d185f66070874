//! The monitor's root: a fresh tmpfs holding only what the monitor needs —
//! read-only binds of the host's `/usr` (binary, libraries, firmware), the
//! dynamic linker cache, the device nodes it opens, `/proc`, and the
//! container rootfs at [`ROOTFS`], and the files the metadata names, as
//! resolved at `create`, at [`BOOT`]. Nothing is written into the container's
//! rootfs, and everything disappears with the container's mount namespace
//! when the monitor exits, so `delete` has nothing to undo here.

use crate::error::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the container rootfs appears inside the sandbox.
pub const ROOTFS: &str = "/rootfs";
/// The monitor's private work directory inside the sandbox.
pub const WORK: &str = "/run/urunc";
/// Where volumes shared with the guest are bound: `<SHARES>/<tag>`.
pub const SHARES: &str = "/run/urunc/shares";
/// Where the files resolved at `create` (kernel, initrd, disk image) are
/// attached: `<BOOT>/<name>` (see [`detach`]).
pub const BOOT: &str = "/run/urunc/boot";

// linux/include/uapi/linux/mount.h (Linux 5.2): open_tree(2) and
// move_mount(2) flags.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

const NONE: Option<&str> = None;

/// Device nodes every monitor may open.
const BASE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Host top-level entries mirrored read-only (symlinks stay symlinks).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

pub struct RootRequest<'a> {
    /// Empty directory to mount the sandbox on.
    pub mountpoint: &'a Path,
    pub rootfs: &'a Path,
    pub rootfs_readonly: bool,
    pub monitor_binary: &'a Path,
    pub devices: &'a [PathBuf],
    /// `process.user` (uid, gid): owns the monitor's device nodes and files.
    pub owner: (u32, u32),
    /// Files to write (path inside the sandbox, contents).
    pub files: &'a [(PathBuf, Vec<u8>)],
    /// Volumes shared with the guest, bound at [`SHARES`]`/<tag>` (the
    /// rootfs share is [`ROOTFS`] itself).
    pub shares: &'a [crate::shares::Share],
    /// Other executables started in the sandbox (virtiofsd).
    pub helpers: &'a [PathBuf],
    /// Detached mounts made by [`detach`] at `create`, attached at
    /// (path inside the sandbox, read-only).
    pub attach: &'a [(PathBuf, &'a OwnedFd, bool)],
}

/// A detached bind mount of the open file `file` (`open_tree(2)` with
/// `OPEN_TREE_CLONE`, Linux 5.2), made at `create` in the mount namespace
/// the file was resolved in. The sandbox attaches it in the container's
/// own mount namespace with `move_mount(2)` ([`enter`]); a bind mount of
/// `/proc/self/fd/N` cannot do that, since its source must be a mount of
/// the caller's namespace (`EINVAL` otherwise, fs/namespace.c
/// `__do_loopback`), while a detached mount may be attached in any.
pub fn detach(file: &impl AsRawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: open_tree takes a descriptor, a NUL-terminated path and
    // flags, and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: open_tree just returned this descriptor; it is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches the detached mount `tree` on `dst` (an empty file made here,
/// in the sandbox's own tmpfs), read-only when asked.
fn attach(tree: &OwnedFd, dst: &Path, readonly: bool) -> Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .ctx(|| format!("sandbox: creating {}", parent.display()))?;
    }
    std::fs::File::create(dst).ctx(|| format!("sandbox: creating {}", dst.display()))?;
    let c = std::ffi::CString::new(dst.as_os_str().as_encoded_bytes())
        .map_err(|_| crate::error::Error::msg(format!("sandbox: {} has a NUL", dst.display())))?;
    // SAFETY: move_mount takes two (descriptor, NUL-terminated path) pairs
    // and flags; both strings outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(crate::error::Error::sys(
            format!("sandbox: attaching a resolved file on {}", dst.display()),
            std::io::Error::last_os_error(),
        ));
    }
    if readonly {
        mount(
            NONE,
            dst,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            NONE,
        )
        .ctx(|| format!("sandbox: making {} read-only", dst.display()))?;
    }
    Ok(())
}

fn bind(src: &Path, dst: &Path, readonly: bool, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dst, NONE, flags, NONE)
        .ctx(|| format!("sandbox: binding {} on {}", src.display(), dst.display()))?;
    if readonly {
        mount(
            NONE,
            dst,
            NONE,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            NONE,
        )
        .ctx(|| format!("sandbox: making {} read-only", dst.display()))?;
    }
    Ok(())
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn bind_file(root: &Path, host: &Path, readonly: bool) -> Result<()> {
    let dst = inside(root, host);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .ctx(|| format!("sandbox: creating {}", parent.display()))?;
    }
    std::fs::File::create(&dst).ctx(|| format!("sandbox: creating {}", dst.display()))?;
    bind(host, &dst, readonly, false)
}

fn chown(p: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    if uid == 0 && gid == 0 {
        return Ok(());
    }
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .ctx(|| format!("sandbox: chown {uid}:{gid} {}", p.display()))
}

/// A device node for the monitor: a fresh node with the host node's
/// numbers (`md`, the host node's metadata) in the sandbox's own /dev (so
/// that it can be handed to a non-root `process.user` without touching the
/// host's node); a bind of the host node where nodes cannot be made. Runs
/// with the umask cleared (see [`enter`]), so the node gets the host
/// node's mode as it is made.
fn make_device(
    root: &Path,
    host: &Path,
    md: &std::fs::Metadata,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let kind = if md.file_type().is_char_device() {
        SFlag::S_IFCHR
    } else if md.file_type().is_block_device() {
        SFlag::S_IFBLK
    } else {
        return bind_file(root, host, false);
    };
    let dst = inside(root, host);
    // /dev itself exists already.
    if let Some(parent) = dst
        .parent()
        .filter(|p| *p != inside(root, Path::new("/dev")))
    {
        // 0755 spelt out: the umask is cleared here.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o755)
            .create(parent)
            .ctx(|| format!("sandbox: creating {}", parent.display()))?;
    }
    let mode = Mode::from_bits_truncate(md.mode() & 0o7777);
    if mknod(&dst, kind, mode, md.rdev()).is_err() {
        return bind_file(root, host, false);
    }
    match owner {
        Some(o) => chown(&dst, o),
        None => Ok(()),
    }
}

/// Builds the sandbox on `req.mountpoint` and makes it the root.
pub fn enter(req: &RootRequest) -> Result<()> {
    let root = req.mountpoint;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755,size=64m"),
    )
    .ctx(|| format!("sandbox: mounting tmpfs on {}", root.display()))?;
    for s in SYSTEM {
        let host = Path::new(s);
        let dst = inside(root, host);
        // readlink first: on a merged-/usr host all but /usr are links,
        // one call each instead of lstat + readlink.
        match std::fs::read_link(host) {
            Ok(target) => {
                std::os::unix::fs::symlink(&target, &dst)
                    .ctx(|| format!("sandbox: linking {}", dst.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // EINVAL: there, and not a link.
            Err(_) => {
                if std::fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()) {
                    std::fs::create_dir(&dst)
                        .ctx(|| format!("sandbox: creating {}", dst.display()))?;
                    bind(host, &dst, true, true)?;
                }
            }
        }
    }
    for bin in std::iter::once(req.monitor_binary).chain(req.helpers.iter().map(PathBuf::as_path)) {
        if !SYSTEM.iter().any(|s| bin.starts_with(s)) {
            bind_file(root, bin, true)?;
        }
    }
    if Path::new("/etc/ld.so.cache").exists() {
        bind_file(root, Path::new("/etc/ld.so.cache"), true)?;
    }
    std::fs::create_dir_all(inside(root, Path::new("/dev")))
        .ctx(|| "sandbox: creating /dev".to_string())?;
    // The tmpfs is fresh: a node exists only if it was made in this loop,
    // so duplicates are skipped by name instead of by stat. The umask is
    // cleared meanwhile so that mknod gives each node the host node's mode
    // (one syscall for all nodes instead of a chmod per node).
    let mut made: Vec<&Path> = vec![];
    // SAFETY: umask only changes this process's file creation mask.
    let umask = unsafe { libc::umask(0) };
    let devices = (|| -> Result<()> {
        for d in BASE_DEVICES
            .iter()
            .map(Path::new)
            .chain(req.devices.iter().map(PathBuf::as_path))
        {
            if made.contains(&d) {
                continue;
            }
            made.push(d);
            let Ok(md) = std::fs::metadata(d) else {
                continue;
            };
            let owner = (!BASE_DEVICES.contains(&d.to_str().unwrap_or(""))).then_some(req.owner);
            make_device(root, d, &md, owner)?;
        }
        Ok(())
    })();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(umask) };
    devices?;
    // Parents first, one mkdir each (the tmpfs is empty but for the above).
    for dir in ["/proc", "/tmp", "/run", WORK, ROOTFS] {
        std::fs::create_dir(inside(root, Path::new(dir)))
            .ctx(|| format!("sandbox: creating {dir}"))?;
    }
    mount(
        Some("proc"),
        &inside(root, Path::new("/proc")),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    )
    .ctx(|| "sandbox: mounting /proc".to_string())?;
    bind(
        req.rootfs,
        &inside(root, Path::new(ROOTFS)),
        req.rootfs_readonly,
        true,
    )?;
    for (p, tree, readonly) in req.attach {
        attach(tree, &inside(root, p), *readonly)?;
    }
    for s in req.shares.iter().filter(|s| !s.is_rootfs()) {
        let dst = inside(root, &Path::new(SHARES).join(&s.tag));
        std::fs::create_dir_all(&dst).ctx(|| format!("sandbox: creating {}", dst.display()))?;
        bind(&s.source, &dst, s.readonly, s.recursive)?;
    }
    for (p, data) in req.files {
        let dst = inside(root, p);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .ctx(|| format!("sandbox: creating {}", parent.display()))?;
        }
        std::fs::write(&dst, data).ctx(|| format!("sandbox: writing {}", p.display()))?;
        chown(&dst, req.owner)?;
    }
    pivot(root)
}

/// `pivot_root(".", ".")` then detach the old root: no directory for the
/// old root is needed.
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).ctx(|| format!("sandbox: chdir {}", root.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| "sandbox: pivot_root".to_string())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "sandbox: detaching the old root".to_string())?;
    nix::unistd::chdir("/").ctx(|| "sandbox: chdir /".to_string())?;
    Ok(())
}

/// Stops mounts made in this mount namespace from reaching the host.
pub fn make_private() -> Result<()> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .ctx(|| "making / private in the container's mount namespace".to_string())
}

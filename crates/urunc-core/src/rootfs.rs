//! Paths from metadata are untrusted: each is resolved once, inside the
//! rootfs, to an open file ([`RootFile`]), and what the monitor gets later
//! is that file, never the name again (see `sandbox::root::attach`). A
//! symlink swapped in after the check cannot redirect anyone.
//!
//! The resolution is a walk of `O_PATH | O_NOFOLLOW` descriptors, one
//! component at a time, each opened relative to the directory descriptor
//! before it ([`open_in_root`]):
//!
//! - a symlink is read (`readlinkat` on its own descriptor) and its target
//!   walked in its place, the way the container would see it: an absolute
//!   target starts again at the rootfs, never at the host's `/`; a magic
//!   link of `/proc` is never followed by the kernel, since no component is
//!   ever opened with `O_NOFOLLOW` unset;
//! - `..` goes back to the directory descriptor held before, never to the
//!   kernel's `..`, and a `..` that would climb above the rootfs is an
//!   error rather than being clamped (SPEC §4: a path that escapes the
//!   rootfs fails `create`);
//! - the last component must be a regular file; it is opened for reading
//!   through its own `O_PATH` descriptor (`/proc/self/fd/N`), so a FIFO or
//!   a device node is never opened at all.
//!
//! Why not `openat2(RESOLVE_IN_ROOT)`: it clamps `..` at the root (chroot
//! semantics), which would turn "escapes the rootfs" into a silent
//! redirect, and it is missing before Linux 5.6; one walk with one meaning
//! on every kernel is simpler than two.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

const MAX_SYMLINKS: usize = 40;

/// A file of the rootfs, resolved once and held open.
#[derive(Debug)]
pub struct RootFile {
    /// Where it was found, as a host path: for messages only, never
    /// opened again.
    pub path: PathBuf,
    /// The file itself, open for reading.
    pub file: File,
    /// A detached bind mount of the file (`open_tree(OPEN_TREE_CLONE)`,
    /// made at `create` by `sandbox::root::detach`), which the sandbox
    /// attaches at a fixed path; `None` where the descriptor itself is
    /// handed to the monitor instead.
    pub tree: Option<OwnedFd>,
}

impl RootFile {
    pub fn new(path: PathBuf, file: File) -> RootFile {
        RootFile {
            path,
            file,
            tree: None,
        }
    }

    /// Device and inode numbers: the file's identity.
    pub fn id(&self) -> std::io::Result<(u64, u64)> {
        let m = self.file.metadata()?;
        Ok((m.dev(), m.ino()))
    }
}

/// Why a path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such file (or a directory on the way is missing).
    Missing,
    /// Anything else, said in words that follow the path.
    Problem(String),
}

fn problem(p: impl Into<String>) -> Refused {
    Refused::Problem(p.into())
}

/// The components of `p` as the walk takes them (`.`, `/` dropped).
fn push_components(out: &mut Vec<OsString>, p: &Path) {
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

fn open_path(dir: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    let fd = openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this descriptor; it is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resolves `path` (as the container sees it) inside the directory `root`
/// (a trusted host path) to a regular file, opened for reading. Errors say
/// what is wrong, to follow the quoted path.
pub fn open_in_root(root: &Path, path: &str) -> Result<RootFile, Refused> {
    if path.is_empty() {
        return Err(problem("is an empty path"));
    }
    if path.contains('\0') {
        return Err(problem("contains a NUL byte"));
    }
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    // SAFETY: open just returned this descriptor; it is owned here.
    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    .map_err(|e| {
        problem(format!(
            "cannot be looked up: rootfs {}: {e}",
            root.display()
        ))
    })?;
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, Path::new(path));
    pending.reverse();
    // The directories walked into, below the root, with their names.
    let mut dirs: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut links = 0;
    let mut found: Option<(OwnedFd, OsString)> = None;
    while let Some(c) = pending.pop() {
        if c == ".." {
            if dirs.pop().is_none() {
                return Err(problem("escapes the rootfs"));
            }
            continue;
        }
        let here = dirs.last().map_or(&root_fd, |(fd, _)| fd);
        let fd = match open_path(here, &c) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Err(Refused::Missing),
            Err(e) => return Err(problem(format!("cannot be looked up: {e}"))),
        };
        let st = fstat(fd.as_raw_fd()).map_err(|e| problem(format!("cannot be looked up: {e}")))?;
        match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFLNK => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(problem("has too many levels of symbolic links"));
                }
                let target = readlinkat(Some(fd.as_raw_fd()), "").map_err(|e| {
                    problem(format!("has a symbolic link that cannot be read: {e}"))
                })?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    dirs.clear();
                }
                let mut t = Vec::new();
                push_components(&mut t, target);
                pending.extend(t.into_iter().rev());
            }
            SFlag::S_IFDIR => dirs.push((fd, c)),
            _ if pending.is_empty() => found = Some((fd, c)),
            _ => {
                return Err(problem(format!(
                    "goes through {:?}, which is not a directory",
                    Path::new(&c)
                )))
            }
        }
    }
    let mut host = root.to_path_buf();
    host.extend(dirs.iter().map(|(_, n)| n));
    let Some((fd, name)) = found else {
        return Err(problem("is a directory, not a regular file"));
    };
    host.push(name);
    let st = fstat(fd.as_raw_fd()).map_err(|e| problem(format!("cannot be looked up: {e}")))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(problem("is not a regular file"));
    }
    // Reopening through the O_PATH descriptor opens that inode, whatever
    // the name leads to by now.
    let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| problem(format!("cannot be opened: {e}")))?;
    Ok(RootFile::new(host, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn found(r: &Path, p: &str) -> PathBuf {
        open_in_root(r, p).unwrap().path
    }

    fn refused(r: &Path, p: &str) -> String {
        match open_in_root(r, p).unwrap_err() {
            Refused::Missing => "missing".into(),
            Refused::Problem(p) => p,
        }
    }

    #[test]
    fn confines_paths() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("unikernel")).unwrap();
        std::fs::write(r.join("unikernel/k"), "x").unwrap();
        symlink("/unikernel/k", r.join("abs")).unwrap();
        symlink("../../../../etc/passwd", r.join("unikernel/out")).unwrap();
        symlink("/etc/passwd", r.join("hostabs")).unwrap();
        symlink("/proc/self/root/etc/passwd", r.join("magic")).unwrap();
        assert_eq!(found(r, "/unikernel/k"), r.join("unikernel/k"));
        assert_eq!(found(r, "unikernel/../unikernel/k"), r.join("unikernel/k"));
        assert_eq!(found(r, "/abs"), r.join("unikernel/k"));
        assert!(refused(r, "../../etc/passwd").contains("escapes"));
        assert!(refused(r, "/unikernel/out").contains("escapes"));
        // An absolute link target stays inside the rootfs, where there is
        // no /etc/passwd, and no /proc to reach the host through.
        assert_eq!(refused(r, "/hostabs"), "missing");
        assert_eq!(refused(r, "/magic"), "missing");
        assert!(refused(r, "/unikernel").contains("is a directory"));
        assert!(refused(r, "/unikernel/k/x").contains("not a directory"));
        assert!(refused(r, "").contains("empty"));
    }

    #[test]
    fn reads_the_file_it_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("k"), "kernel").unwrap();
        let f = open_in_root(d.path(), "/k").unwrap();
        // Replaced after the walk: the descriptor still reads the old file.
        std::fs::remove_file(d.path().join("k")).unwrap();
        std::fs::write(d.path().join("k"), "other").unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &f.file, &mut s).unwrap();
        assert_eq!(s, "kernel");
    }

    #[test]
    fn only_regular_files() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&d.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        // A FIFO is refused without being opened (an open would block).
        assert!(refused(d.path(), "/fifo").contains("not a regular file"));
        symlink("/dev/null", d.path().join("null")).unwrap();
        assert_eq!(refused(d.path(), "/null"), "missing");
    }

    #[test]
    fn symlink_loops_end() {
        let d = tempfile::tempdir().unwrap();
        symlink("b", d.path().join("a")).unwrap();
        symlink("a", d.path().join("b")).unwrap();
        assert!(refused(d.path(), "a").contains("symbolic links"));
    }
}

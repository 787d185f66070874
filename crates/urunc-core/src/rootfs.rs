//! Paths from metadata are untrusted: they are resolved inside the rootfs,
//! component by component, following symlinks the way the container would
//! see them (absolute targets are relative to the rootfs), and a `..` that
//! would climb above the rootfs is an error rather than being clamped.

use std::path::{Component, Path, PathBuf};

const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (as seen inside the container) to a host path under
/// `root`. Missing final components are allowed (the caller checks
/// existence so that it can say which key names a missing file).
pub fn resolve_in_root(root: &Path, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    // Pending components, processed front to back.
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, Path::new(path));
    pending.reverse();
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            if resolved.pop().is_none() {
                return Err(format!("{path:?} escapes the rootfs"));
            }
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!("{path:?}: too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| format!("{path:?}: reading symlink: {e}"))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut t = Vec::new();
                push_components(&mut t, &target);
                for comp in t.into_iter().rev() {
                    pending.push(comp);
                }
            }
            _ => resolved.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

fn push_components(out: &mut Vec<std::ffi::OsString>, p: &Path) {
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn confines_paths() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("unikernel")).unwrap();
        std::fs::write(r.join("unikernel/k"), "x").unwrap();
        symlink("/unikernel/k", r.join("abs")).unwrap();
        symlink("../../../../etc/passwd", r.join("unikernel/out")).unwrap();
        symlink("/etc/passwd", r.join("hostabs")).unwrap();
        assert_eq!(
            resolve_in_root(r, "/unikernel/k").unwrap(),
            r.join("unikernel/k")
        );
        assert_eq!(
            resolve_in_root(r, "unikernel/../unikernel/k").unwrap(),
            r.join("unikernel/k")
        );
        assert_eq!(resolve_in_root(r, "/abs").unwrap(), r.join("unikernel/k"));
        assert!(resolve_in_root(r, "../../etc/passwd")
            .unwrap_err()
            .contains("escapes"));
        assert!(resolve_in_root(r, "/unikernel/out")
            .unwrap_err()
            .contains("escapes"));
        // An absolute link target stays inside the rootfs.
        assert_eq!(
            resolve_in_root(r, "/hostabs").unwrap(),
            r.join("etc/passwd")
        );
    }

    #[test]
    fn symlink_loops_end() {
        let d = tempfile::tempdir().unwrap();
        symlink("b", d.path().join("a")).unwrap();
        symlink("a", d.path().join("b")).unwrap();
        assert!(resolve_in_root(d.path(), "a")
            .unwrap_err()
            .contains("symbolic links"));
    }
}

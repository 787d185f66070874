//! Shared directories (SPEC §8): the container rootfs (`mountRootfs`) and
//! the spec's `bind` mounts (volumes), exposed to QEMU guests by tag over
//! 9p or virtio-fs.
//!
//! Tags are fixed: `fs0` is always the container rootfs, volumes are `fs1`,
//! `fs2`, … in the spec's order, whether or not the rootfs is shared, so a
//! guest (or its init) can rely on them.
//!
//! Which spec mounts are volumes: those of type `bind` (or with a `bind` /
//! `rbind` option) whose source is a directory, except the engine's own
//! plumbing (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, anything
//! under `/dev`, `/proc`, `/sys`, `/run/secrets`, `/var/run/secrets`,
//! `/run/.containerenv`). A file bind cannot be shared as a directory: it is
//! left out with a warning. A source that does not exist is an error.

use crate::error::PlanError;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// The transport a shared directory uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareFs {
    /// virtio-9p, served by the monitor itself.
    NineP,
    /// virtio-fs, served by a virtiofsd next to the monitor.
    VirtioFs,
}

impl ShareFs {
    /// The config file's name for it (`shared_fs`).
    pub fn name(self) -> &'static str {
        match self {
            ShareFs::NineP => "9p",
            ShareFs::VirtioFs => "virtiofs",
        }
    }

    pub fn parse(s: &str) -> Option<ShareFs> {
        match s {
            "9p" => Some(ShareFs::NineP),
            "virtiofs" | "virtio-fs" => Some(ShareFs::VirtioFs),
            _ => None,
        }
    }
}

/// A virtiofsd the waiting process starts before exec'ing the monitor: it
/// serves one share on the listening socket `socket`, which it gets as
/// descriptor 3 (`--fd=3`), so the socket exists before the monitor
/// connects. Paths are as the monitor sees them (the daemon runs in the
/// same sandbox root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsDaemon {
    pub argv: Vec<String>,
    pub socket: PathBuf,
}

/// The vhost-user socket of the virtio-fs share `tag` in the monitor's
/// work directory.
pub fn virtiofs_socket(work_dir: &Path, tag: &str) -> PathBuf {
    work_dir.join(format!("{tag}.sock"))
}

/// virtiofsd's command line for sharing `dir` (as the sandbox sees it).
pub fn virtiofsd_argv(binary: &Path, dir: &Path, options: &[String]) -> Vec<String> {
    // virtiofsd splits -o values at commas; `\,` is a literal comma.
    let source = dir.display().to_string().replace(',', "\\,");
    let mut argv = vec![
        binary.display().to_string(),
        "--fd=3".into(),
        "-o".into(),
        format!("source={source}"),
        "-o".into(),
        "cache=auto".into(),
        "-o".into(),
        "log_level=warn".into(),
    ];
    // The config's extra options (`[extra_binaries.virtiofsd] options`).
    argv.extend(options.iter().cloned());
    argv
}

/// Finds virtiofsd: the config's path, else `$PATH`, else the usual
/// libexec locations.
pub fn find_virtiofsd(configured: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if let Some(p) = configured {
        return if exec(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "virtiofsd = {:?} (from the config file) is not an executable file",
                p.display().to_string()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("virtiofsd"))
        .chain(["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"].map(PathBuf::from))
        .find(|p| exec(p))
        .ok_or_else(|| {
            "shared_fs = \"virtiofs\" needs virtiofsd, found neither in $PATH nor in /usr/libexec or /usr/lib/qemu; install it or set virtiofsd = \"<path>\" for the monitor in the config file".to_string()
        })
}

/// Tag of the container rootfs share.
pub const ROOTFS_TAG: &str = "fs0";

/// A host directory the guest gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Device tag: `fs0` the rootfs, `fs1`.. volumes.
    pub tag: String,
    /// Host path.
    pub source: PathBuf,
    /// Where the guest mounts it (`/` for the container rootfs).
    pub mount_point: String,
    pub readonly: bool,
    /// Bind the source recursively into the monitor's sandbox (`rbind`).
    pub recursive: bool,
}

impl Share {
    /// True for the container rootfs (`mountRootfs`), false for a volume.
    pub fn is_rootfs(&self) -> bool {
        self.tag == ROOTFS_TAG
    }
}

/// Destinations that engines bind for their own purposes.
const PLUMBING_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/run/.containerenv",
    "/.dockerenv",
];
const PLUMBING_TREES: &[&str] = &["/dev", "/proc", "/sys", "/run/secrets", "/var/run/secrets"];

fn is_plumbing(dst: &Path) -> bool {
    PLUMBING_FILES.iter().any(|p| dst == Path::new(p))
        || PLUMBING_TREES.iter().any(|p| dst.starts_with(p))
}

fn mount_err(dst: &Path, problem: impl Into<String>) -> PlanError {
    PlanError::Mount {
        destination: dst.display().to_string(),
        problem: problem.into(),
    }
}

/// The bundle directory, derived from the rootfs when `root.path` is
/// relative (the usual `rootfs`); relative bind sources are relative to it.
fn bundle_dir(spec: &Spec, rootfs: &Path) -> Option<PathBuf> {
    let root = spec.root().as_ref()?.path();
    if root.is_absolute() || !rootfs.ends_with(root) {
        return None;
    }
    rootfs
        .ancestors()
        .nth(root.components().count())
        .map(Path::to_path_buf)
}

/// The spec's volumes, as shares `fs1`, `fs2`, … (see the module doc).
pub fn volumes(spec: &Spec, rootfs: &Path) -> Result<Vec<Share>, PlanError> {
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let opts = m.options().as_deref().unwrap_or_default();
        let has = |o: &str| opts.iter().any(|x| x == o);
        let bind = match m.typ().as_deref() {
            Some("bind") => true,
            None | Some("none") | Some("") => has("bind") || has("rbind"),
            _ => false,
        };
        let dst = m.destination();
        // Normalise `/data/` and `/data/.` to `/data`.
        let dst_clean: PathBuf = dst.components().collect();
        if !bind || is_plumbing(&dst_clean) {
            continue;
        }
        if !dst_clean.is_absolute() {
            return Err(mount_err(dst, "the destination is not an absolute path"));
        }
        if dst_clean == Path::new("/") {
            return Err(mount_err(
                dst,
                "a volume cannot replace the guest's root (use mountRootfs for the container rootfs)",
            ));
        }
        let Some(src) = m.source() else {
            return Err(mount_err(dst, "bind mount without a source"));
        };
        let src = if src.is_absolute() {
            src.clone()
        } else {
            match bundle_dir(spec, rootfs) {
                Some(b) => b.join(src),
                None => {
                    return Err(mount_err(
                        dst,
                        format!(
                            "relative source {} and no bundle to resolve it against (give an absolute path)",
                            src.display()
                        ),
                    ))
                }
            }
        };
        match std::fs::metadata(&src) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(mount_err(
                    dst,
                    format!("bind source {} does not exist", src.display()),
                ))
            }
            Err(e) => {
                return Err(mount_err(
                    dst,
                    format!("bind source {}: {e}", src.display()),
                ))
            }
            Ok(md) if !md.is_dir() => {
                crate::log::warn(&format!(
                    "spec mount {}: bind source {} is not a directory; only directories can be shared with the guest, so it is left out",
                    dst.display(),
                    src.display()
                ));
                continue;
            }
            Ok(_) => {}
        }
        out.push(Share {
            tag: format!("fs{}", out.len() + 1),
            source: src,
            mount_point: dst_clean.display().to_string(),
            readonly: has("ro"),
            recursive: has("rbind"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": mounts,
        }))
        .unwrap()
    }

    #[test]
    fn volumes_are_directory_binds_minus_plumbing() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        let rel = d.path().join("rel");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::create_dir_all(d.path().join("rootfs")).unwrap();
        let file = d.path().join("hosts");
        std::fs::write(&file, "x").unwrap();
        let v = vol.to_str().unwrap();
        let s = spec(json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/shm", "type": "bind", "source": v, "options": ["rbind"]},
            {"destination": "/etc/hosts", "type": "bind", "source": file, "options": ["rbind", "ro"]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": file},
            {"destination": "/var/run/secrets/kubernetes.io/serviceaccount", "type": "bind", "source": v},
            {"destination": "/data/", "type": "bind", "source": v, "options": ["rbind", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/cfg.json", "type": "bind", "source": file},
            {"destination": "/cache", "source": "rel", "options": ["bind", "rw"]},
        ]));
        let got = volumes(&s, &d.path().join("rootfs")).unwrap();
        assert_eq!(
            got,
            vec![
                Share {
                    tag: "fs1".into(),
                    source: vol.clone(),
                    mount_point: "/data".into(),
                    readonly: true,
                    recursive: true,
                },
                Share {
                    tag: "fs2".into(),
                    source: rel,
                    mount_point: "/cache".into(),
                    readonly: false,
                    recursive: false,
                },
            ]
        );
    }

    #[test]
    fn missing_source_names_the_mount() {
        let s = spec(json!([
            {"destination": "/data", "type": "bind", "source": "/nonexistent/urunc-vol"},
        ]));
        let e = volumes(&s, Path::new("/b/rootfs")).unwrap_err().to_string();
        assert!(
            e.contains("/data") && e.contains("/nonexistent/urunc-vol does not exist"),
            "{e}"
        );
    }

    #[test]
    fn root_destination_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = spec(json!([
            {"destination": "/", "type": "bind", "source": d.path()},
        ]));
        let e = volumes(&s, Path::new("/b/rootfs")).unwrap_err().to_string();
        assert!(e.contains("mountRootfs"), "{e}");
    }

    #[test]
    fn bundle_is_derived_from_a_relative_root() {
        let s = spec(json!([]));
        assert_eq!(
            bundle_dir(&s, Path::new("/b/x/rootfs")),
            Some(PathBuf::from("/b/x"))
        );
        assert_eq!(bundle_dir(&s, Path::new("/b/x/other")), None);
    }
}

//! Unikernel metadata: the `com.urunc.unikernel.*` keys.
//!
//! Sources, first match wins: the OCI spec's annotations (when any key of
//! ours is there), else `/urunc.json` at the root of the container rootfs.
//! A CRI sandbox (pause) container is never a unikernel, whatever it carries
//! (see [`is_cri_sandbox`]).
//!
//! # Value encoding rule
//!
//! Images built for the Go urunc store every value base64-encoded; users
//! write plain text. A value is taken as base64 **iff** it is canonical
//! padded standard base64 (length a multiple of 4, alphabet `A-Za-z0-9+/`,
//! `=` only as trailing padding) **and** decodes to non-empty UTF-8 text
//! without control characters (tab and newline allowed). Otherwise it is
//! plain text. Every plain value a user would write for these keys fails
//! that test (`qemu`, `unikraft`, `true` decode to invalid UTF-8; paths
//! contain `.` or have lengths that are not a multiple of 4, ...); a user
//! can always force plain text by writing the value base64-encoded.

use crate::error::MetadataError;
use base64::Engine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const PREFIX: &str = "com.urunc.unikernel.";
pub const KEY_TYPE: &str = "com.urunc.unikernel.unikernelType";
pub const KEY_HYPERVISOR: &str = "com.urunc.unikernel.hypervisor";
pub const KEY_BINARY: &str = "com.urunc.unikernel.binary";
pub const KEY_CMDLINE: &str = "com.urunc.unikernel.cmdline";
pub const KEY_VERSION: &str = "com.urunc.unikernel.unikernelVersion";
pub const KEY_INITRD: &str = "com.urunc.unikernel.initrd";
pub const KEY_BLOCK: &str = "com.urunc.unikernel.block";
pub const KEY_BLK_MNT: &str = "com.urunc.unikernel.blkMntPoint";
pub const KEY_USE_DM_BLOCK: &str = "com.urunc.unikernel.useDMBlock";
pub const KEY_MOUNT_ROOTFS: &str = "com.urunc.unikernel.mountRootfs";

/// containerd's CRI plugin marks the pod's sandbox (pause) container with
/// `io.kubernetes.cri.container-type: sandbox` (containerd
/// `pkg/cri/annotations`); CRI-O with `io.kubernetes.cri-o.ContainerType:
/// sandbox` (cri-o `pkg/annotations`).
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";

/// True for a CRI sandbox container. CRI copies the pod's annotations onto
/// the pause container too, so a pod whose unikernel metadata lives in pod
/// annotations would otherwise have its pause container taken for the
/// unikernel (SPEC §4).
pub fn is_cri_sandbox(annotations: &HashMap<String, String>) -> bool {
    [CRI_CONTAINER_TYPE, CRIO_CONTAINER_TYPE]
        .iter()
        .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

/// The metadata file at the root of the container rootfs.
pub const FILE_NAME: &str = "urunc.json";

/// Decoded metadata values (still untrusted text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub unikernel_type: Option<String>,
    pub hypervisor: Option<String>,
    pub binary: Option<String>,
    pub cmdline: Option<String>,
    pub version: Option<String>,
    pub initrd: Option<String>,
    pub block: Option<String>,
    pub blk_mnt_point: Option<String>,
    pub use_dm_block: bool,
    pub mount_rootfs: bool,
    /// Keys whose value was decoded from base64 (the others were read as
    /// plain text), for [`Metadata::base64_hint`].
    pub decoded: Vec<String>,
}

/// Where the metadata was found (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Annotations,
    File,
}

/// The text of `/urunc.json` at the root of `rootfs`, `None` when absent.
/// It is opened with `O_NOFOLLOW`: an image whose `urunc.json` is a symlink
/// (say to `/etc/shadow`) would otherwise make urunc read a host file.
pub fn read_file(rootfs: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = rootfs.join(FILE_NAME);
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(
                "is a symbolic link (refused: it could point outside the rootfs)",
            ))
        }
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(Some(text))
}

/// Applies the documented rule: base64 when canonical and printable text.
pub fn decode_value(raw: &str) -> String {
    if raw.is_empty() || !raw.len().is_multiple_of(4) {
        return raw.to_string();
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw) else {
        return raw.to_string();
    };
    match String::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.chars().any(|c| c.is_control() && c != '\t' && c != '\n') => s,
        _ => raw.to_string(),
    }
}

/// Keys whose value is one word or a path: no control characters at all.
const WORD_KEYS: &[&str] = &[
    KEY_TYPE,
    KEY_HYPERVISOR,
    KEY_BINARY,
    KEY_VERSION,
    KEY_INITRD,
    KEY_BLOCK,
    KEY_BLK_MNT,
];

/// Refuses what no value may carry: a NUL byte anywhere (it cannot reach
/// an argv or a path intact), and control characters (newline, ...) in
/// the one-word and path keys, where they could only split or fake a line
/// of a monitor's command line or config. `cmdline` may hold tabs and
/// newlines: they separate words like spaces.
fn check_value(key: &str, v: &str) -> Result<(), MetadataError> {
    if v.contains('\0') {
        return Err(MetadataError::invalid(key, "the value contains a NUL byte"));
    }
    if WORD_KEYS.contains(&key) {
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(MetadataError::invalid(
                key,
                format!("{v:?} contains the control character {c:?}"),
            ));
        }
    }
    Ok(())
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MetadataError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(MetadataError::invalid(
            key,
            format!("{v:?} is not a boolean (true or false)"),
        )),
    }
}

impl Metadata {
    /// Builds metadata from a map of raw (possibly base64) values.
    pub fn from_map<'a, I>(entries: I) -> Result<Metadata, MetadataError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut m = Metadata::default();
        for (k, raw) in entries {
            if !k.starts_with(PREFIX) {
                continue;
            }
            let v = decode_value(raw);
            check_value(k, &v)?;
            if v != raw {
                m.decoded.push(k.to_string());
            }
            let slot = match k {
                KEY_TYPE => &mut m.unikernel_type,
                KEY_HYPERVISOR => &mut m.hypervisor,
                KEY_BINARY => &mut m.binary,
                KEY_CMDLINE => &mut m.cmdline,
                KEY_VERSION => &mut m.version,
                KEY_INITRD => &mut m.initrd,
                KEY_BLOCK => &mut m.block,
                KEY_BLK_MNT => &mut m.blk_mnt_point,
                KEY_USE_DM_BLOCK => {
                    m.use_dm_block = parse_bool(k, &v)?;
                    continue;
                }
                KEY_MOUNT_ROOTFS => {
                    m.mount_rootfs = parse_bool(k, &v)?;
                    continue;
                }
                // Unknown keys under our prefix are ignored: newer images
                // may carry keys this version does not use.
                _ => continue,
            };
            *slot = (!v.is_empty()).then_some(v);
        }
        Ok(m)
    }

    /// True when the metadata names a unikernel at all.
    pub fn is_unikernel(&self) -> bool {
        self.unikernel_type.is_some() || self.hypervisor.is_some() || self.binary.is_some()
    }

    /// Reads `/urunc.json` in `rootfs`. `Ok(None)` when there is none.
    pub fn from_rootfs(rootfs: &Path) -> Result<Option<Metadata>, MetadataError> {
        let path = rootfs.join(FILE_NAME);
        let text = match read_file(rootfs) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(MetadataError::File {
                    path,
                    problem: e.to_string(),
                })
            }
        };
        Self::from_file_text(&text, path).map(Some)
    }

    /// The contents of `/urunc.json` (read by [`Metadata::from_rootfs`];
    /// given as text by the fuzz target, `fuzz/fuzz_targets/urunc_json.rs`).
    /// `path` names the file in errors.
    pub fn from_file_text(text: &str, path: PathBuf) -> Result<Metadata, MetadataError> {
        let map: HashMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| MetadataError::File {
                path: path.clone(),
                problem: format!("not a flat JSON object of strings: {e}"),
            })?;
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in &map {
            match v {
                serde_json::Value::String(s) => pairs.push((k.as_str(), s.as_str())),
                other => {
                    return Err(MetadataError::File {
                        path,
                        problem: format!("key {k}: value {other} is not a string"),
                    })
                }
            }
        }
        Self::from_map(pairs)
    }

    /// The one classification: `Ok(None)` means "not a unikernel, delegate".
    /// A CRI sandbox container is never one; otherwise annotations first,
    /// then the rootfs file.
    /// `rootfs` is `None` when the bundle has none (only annotations count).
    pub fn discover(
        annotations: Option<&HashMap<String, String>>,
        rootfs: Option<&Path>,
    ) -> Result<Option<(Metadata, Source)>, MetadataError> {
        if annotations.is_some_and(is_cri_sandbox) {
            return Ok(None);
        }
        if let Some(a) = annotations {
            let m = Self::from_map(a.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            if m.is_unikernel() {
                return Ok(Some((m, Source::Annotations)));
            }
        }
        let Some(rootfs) = rootfs else {
            return Ok(None);
        };
        Ok(Self::from_rootfs(rootfs)?.map(|m| (m, Source::File)))
    }
}

/// A hint appended to validation errors for a value that was read as plain
/// text although it nearly is base64: it decodes to text once padding and
/// trailing bits are not insisted on (e.g. `dW5pa3JhZn`, "unikraft" with
/// its end cut off). Empty otherwise, so that it only appears when true.
pub fn base64_hint(raw: &str) -> String {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    if decode_value(raw) != raw || raw.len() < 4 {
        return String::new();
    }
    let lenient = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    for alphabet in [&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE] {
        let engine = GeneralPurpose::new(alphabet, lenient);
        let Ok(bytes) = base64::Engine::decode(&engine, raw) else {
            continue;
        };
        if let Ok(text) = String::from_utf8(bytes) {
            if !text.is_empty() && !text.chars().any(char::is_control) {
                return format!(
                    " (the value looks like base64 of {text:?} but is not valid padded standard base64, so it was read as plain text)"
                );
            }
        }
    }
    String::new()
}

impl Metadata {
    /// [`base64_hint`] for the value of `key`: empty when that value was
    /// decoded from base64.
    pub fn base64_hint(&self, key: &str, value: &str) -> String {
        if self.decoded.iter().any(|k| k == key) {
            String::new()
        } else {
            base64_hint(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn urunc_json_symlink_is_refused_naming_the_file() {
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("secret.json");
        std::fs::write(&secret, r#"{"com.urunc.unikernel.binary":"/host-only"}"#).unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, rootfs.path().join(FILE_NAME)).unwrap();
        let e = Metadata::from_rootfs(rootfs.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("urunc.json") && e.contains("symbolic link"),
            "{e}"
        );
        assert!(!e.contains("host-only"), "{e}");
        // A regular file is still read.
        std::fs::remove_file(rootfs.path().join(FILE_NAME)).unwrap();
        std::fs::copy(&secret, rootfs.path().join(FILE_NAME)).unwrap();
        let m = Metadata::from_rootfs(rootfs.path()).unwrap().unwrap();
        assert_eq!(m.binary.as_deref(), Some("/host-only"));
    }

    #[test]
    fn plain_values_stay_plain() {
        for v in [
            "qemu",
            "hvt",
            "spt",
            "firecracker",
            "unikraft",
            "rumprun",
            "mirage",
            "mewz",
            "linux",
            "true",
            "false",
            "/unikernel/kernel",
            "/boot/kernel",
            "0.16.1",
            "nginx -c /nginx/conf/nginx.conf",
        ] {
            assert_eq!(decode_value(v), v, "{v}");
        }
    }

    #[test]
    fn base64_values_are_decoded() {
        for v in [
            "qemu",
            "unikraft",
            "/unikernel/app_qemu-x86_64",
            "a b c",
            "true",
        ] {
            assert_eq!(decode_value(&b64(v)), v);
        }
    }

    #[test]
    fn from_map_mixed_forms() {
        let t = b64("unikraft");
        let m = Metadata::from_map([
            (KEY_TYPE, t.as_str()),
            (KEY_HYPERVISOR, "qemu"),
            (KEY_BINARY, "/unikernel/kernel"),
            (KEY_USE_DM_BLOCK, "dHJ1ZQ=="),
            ("other.key", "x"),
        ])
        .unwrap();
        assert_eq!(m.unikernel_type.as_deref(), Some("unikraft"));
        assert_eq!(m.hypervisor.as_deref(), Some("qemu"));
        assert_eq!(m.binary.as_deref(), Some("/unikernel/kernel"));
        assert!(m.use_dm_block);
    }

    #[test]
    fn bad_bool_names_key() {
        let e = Metadata::from_map([(KEY_USE_DM_BLOCK, "maybe")]).unwrap_err();
        assert!(e.to_string().contains(KEY_USE_DM_BLOCK), "{e}");
    }

    #[test]
    fn rootfs_file_and_annotations_precedence() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(FILE_NAME),
            format!(
                r#"{{"{KEY_TYPE}":"{}","{KEY_HYPERVISOR}":"{}"}}"#,
                b64("linux"),
                b64("qemu")
            ),
        )
        .unwrap();
        let (m, src) = Metadata::discover(None, Some(d.path())).unwrap().unwrap();
        assert_eq!(
            (m.unikernel_type.as_deref(), src),
            (Some("linux"), Source::File)
        );
        let ann: HashMap<_, _> = [(KEY_TYPE.to_string(), "mewz".to_string())].into();
        let (m, src) = Metadata::discover(Some(&ann), Some(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.unikernel_type.as_deref(), src),
            (Some("mewz"), Source::Annotations)
        );
        std::fs::write(d.path().join(FILE_NAME), "[1,2]").unwrap();
        assert!(Metadata::discover(None, Some(d.path())).is_err());
    }

    #[test]
    fn cri_sandbox_is_never_a_unikernel() {
        let d = tempfile::tempdir().unwrap();
        // Even with a urunc.json in its rootfs and our keys in annotations.
        std::fs::write(
            d.path().join(FILE_NAME),
            format!(r#"{{"{KEY_TYPE}":"linux","{KEY_HYPERVISOR}":"qemu"}}"#),
        )
        .unwrap();
        for marker in [CRI_CONTAINER_TYPE, CRIO_CONTAINER_TYPE] {
            let ann: HashMap<_, _> = [
                (marker.to_string(), "sandbox".to_string()),
                (KEY_TYPE.to_string(), "linux".to_string()),
                (KEY_HYPERVISOR.to_string(), "qemu".to_string()),
                (KEY_BINARY.to_string(), "/unikernel/missing".to_string()),
            ]
            .into();
            assert_eq!(
                Metadata::discover(Some(&ann), Some(d.path())).unwrap(),
                None
            );
            // The pod's application containers are still classified.
            let mut app = ann.clone();
            app.insert(marker.to_string(), "container".to_string());
            let (m, src) = Metadata::discover(Some(&app), Some(d.path()))
                .unwrap()
                .unwrap();
            assert_eq!(
                (m.binary.as_deref(), src),
                (Some("/unikernel/missing"), Source::Annotations)
            );
        }
    }

    #[test]
    fn hint_for_broken_base64() {
        assert!(base64_hint("dW5pa3JhZn").contains(r#"base64 of "unikraf""#));
        assert!(base64_hint("dW5pa3JhZnQ").contains(r#"base64 of "unikraft""#));
        for plain in [
            "qemu",
            "hvt",
            "/unikernel/kernel",
            "/boot/kernel",
            "unikraft",
            "0.16.1",
        ] {
            assert_eq!(base64_hint(plain), "", "{plain}");
        }
        // A value that was decoded gets no hint, whatever it decoded to.
        let m = Metadata::from_map([(KEY_BINARY, b64("/unikernel/kernel").as_str())]).unwrap();
        assert_eq!(m.binary.as_deref(), Some("/unikernel/kernel"));
        assert_eq!(m.base64_hint(KEY_BINARY, "/unikernel/kernel"), "");
        let m = Metadata::from_map([(KEY_BINARY, "dW5pa3JhZn")]).unwrap();
        assert_ne!(m.base64_hint(KEY_BINARY, "dW5pa3JhZn"), "");
    }
}

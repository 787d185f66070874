//! Reading an OCI bundle's `config.json` in two steps, so that urunc never
//! rejects a container that runc would run.
//!
//! Step one ([`Bundle::read`]) reads only what deciding "unikernel or not"
//! needs: `annotations`, `root.path` (where `/urunc.json` is) and the
//! network namespace's path in `linux.namespaces` (a delegated container
//! must not join a pod whose unikernel owns eth0, SPEC §7). Every other
//! field — capabilities, mounts, fields newer than oci-spec — is left alone
//! and reaches the delegate untouched (urunc hands runc the bundle, never a
//! rewritten config.json). Step two ([`Bundle::spec`]) is the full,
//! typed parse, done only for unikernels. Both name the field that is wrong
//! (its JSON path) and the line.

use crate::error::BundleError;
use oci_spec::runtime::Spec;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The fields classification reads; serde skips all others unparsed.
#[derive(Debug, Default, Deserialize)]
struct ClassifyView {
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    root: Option<RootView>,
    #[serde(default)]
    linux: Option<LinuxView>,
}

/// Only `linux.namespaces`, kept as raw JSON: a shape this view does not
/// expect is no reason to refuse what the delegate may accept.
#[derive(Debug, Default, Deserialize)]
struct LinuxView {
    #[serde(default)]
    namespaces: Option<serde_json::Value>,
}

/// The `path` of the `network` entry in `linux.namespaces`, if any.
fn netns_path(ns: Option<&serde_json::Value>) -> Option<PathBuf> {
    ns?.as_array()?
        .iter()
        .find(|n| n.get("type").and_then(|t| t.as_str()) == Some("network"))?
        .get("path")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

#[derive(Debug, Default, Deserialize)]
struct RootView {
    #[serde(default)]
    path: Option<PathBuf>,
}

/// A bundle as classification sees it.
#[derive(Debug)]
pub struct Bundle {
    /// Canonical bundle directory.
    pub dir: PathBuf,
    /// config.json as read (parsed again in full by [`Bundle::spec`]).
    text: String,
    pub annotations: HashMap<String, String>,
    /// The rootfs directory; `None` when `root.path` is unset or is not a
    /// directory (then only annotations can make it a unikernel).
    pub rootfs: Option<PathBuf>,
    /// Why `rootfs` is `None`, for the unikernel's error message.
    pub rootfs_problem: Option<String>,
    /// The network namespace the container joins by path (a pod's).
    pub netns: Option<PathBuf>,
}

/// `T` from config.json text, with the failing field's JSON path.
fn parse<'a, T: Deserialize<'a>>(bundle: &Path, text: &'a str) -> Result<T, BundleError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        BundleError::Spec {
            bundle: bundle.to_path_buf(),
            problem: if path.is_empty() || path == "." {
                inner.to_string()
            } else {
                format!("field {path}: {inner}")
            },
        }
    })
}

impl Bundle {
    /// Reads config.json for classification only.
    pub fn read(bundle: &Path) -> Result<Bundle, BundleError> {
        let dir = std::fs::canonicalize(bundle).map_err(|e| BundleError::Invalid {
            bundle: bundle.to_path_buf(),
            problem: format!("cannot open the bundle directory: {e}"),
        })?;
        let file = dir.join("config.json");
        let text = std::fs::read_to_string(&file).map_err(|e| BundleError::Spec {
            bundle: dir.clone(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::from_text(dir, text)
    }

    /// [`Bundle::read`] once config.json is read: `dir` is the canonical
    /// bundle directory (a relative `root.path` is resolved against it),
    /// `text` the file. Also the fuzz target's entry point
    /// (`fuzz/fuzz_targets/config_json.rs`).
    pub fn from_text(dir: PathBuf, text: String) -> Result<Bundle, BundleError> {
        let view: ClassifyView = parse(&dir, &text)?;
        let (rootfs, rootfs_problem) = match view.root.and_then(|r| r.path) {
            None => (None, Some("config.json has no root.path".to_string())),
            Some(p) => {
                let p = if p.is_absolute() { p } else { dir.join(p) };
                if p.is_dir() {
                    (Some(p), None)
                } else {
                    let m = format!("root.path: rootfs {} is not a directory", p.display());
                    (None, Some(m))
                }
            }
        };
        let netns = netns_path(view.linux.as_ref().and_then(|l| l.namespaces.as_ref()));
        Ok(Bundle {
            dir,
            text,
            netns,
            annotations: view.annotations.unwrap_or_default(),
            rootfs,
            rootfs_problem,
        })
    }

    /// The rootfs, required (a unikernel needs one).
    pub fn require_rootfs(&self) -> Result<&Path, BundleError> {
        self.rootfs.as_deref().ok_or_else(|| BundleError::Invalid {
            bundle: self.dir.clone(),
            problem: self.rootfs_problem.clone().unwrap_or_default(),
        })
    }

    /// The full OCI spec (for unikernels), errors naming the field.
    pub fn spec(&self) -> Result<Spec, BundleError> {
        parse(&self.dir, &self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        std::fs::write(d.path().join("config.json"), config).unwrap();
        d
    }

    #[test]
    fn classification_ignores_fields_runc_accepts_and_oci_spec_does_not() {
        let d = bundle(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
                "process":{"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_FOO"]}},
                "annotations":{"a":"b"},"someFutureField":{"x":[1,2]}}"#,
        );
        let b = Bundle::read(d.path()).unwrap();
        assert_eq!(b.annotations["a"], "b");
        assert_eq!(
            b.rootfs.as_deref(),
            Some(d.path().canonicalize().unwrap().join("rootfs").as_path())
        );
        // The full parse (unikernels only) names the field.
        let e = b.spec().unwrap_err().to_string();
        assert!(e.contains("field process.capabilities.bounding[0]"), "{e}");
        assert!(e.contains("CAP_FOO") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn netns_path_is_read_leniently() {
        let d = bundle(
            r#"{"root":{"path":"rootfs"},"linux":{"resources":{"x":1},"namespaces":[
                {"type":"pid"},{"type":"network","path":"/var/run/netns/p1"}]}}"#,
        );
        let b = Bundle::read(d.path()).unwrap();
        assert_eq!(b.netns.as_deref(), Some(Path::new("/var/run/netns/p1")));
        for odd in [
            r#"{"linux":{"namespaces":[{"type":"network"}]}}"#,
            r#"{"linux":{"namespaces":{"network":"/x"}}}"#,
            r#"{"linux":{"namespaces":[7,{"type":"network","path":9}]}}"#,
            r#"{"linux":null}"#,
        ] {
            assert!(
                Bundle::read(bundle(odd).path()).unwrap().netns.is_none(),
                "{odd}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let d = bundle(r#"{"root":{"path":"rootfs"},"annotations":{"k":1}}"#);
        let e = Bundle::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("field annotations.k"),
            "{e}"
        );
        let d = bundle(r#"{"root":{"path":7}}"#);
        let e = Bundle::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("field root.path"), "{e}");
        let d = bundle("{not json");
        let e = Bundle::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn missing_rootfs_is_only_a_problem_for_unikernels() {
        let d = bundle(r#"{"root":{"path":"nope"}}"#);
        let b = Bundle::read(d.path()).unwrap();
        assert!(b.rootfs.is_none());
        let e = b.require_rootfs().unwrap_err().to_string();
        assert!(
            e.contains("root.path") && e.contains("not a directory"),
            "{e}"
        );
        let d = bundle("{}");
        let e = Bundle::read(d.path())
            .unwrap()
            .require_rootfs()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no root.path"), "{e}");
    }
}

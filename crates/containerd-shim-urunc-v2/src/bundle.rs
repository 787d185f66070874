//! What the shim reads from and keeps in a container's bundle: which
//! runtime and root drive it (shim options, environment, the state file the
//! `delete` action reads after a shim died) and whether its init's exit
//! must take the rest of its processes along.

use std::path::{Path, PathBuf};

use containerd_shim::{
    self as shim,
    protos::{protobuf::Message, shim::oci::Options},
};
use log::info;

use crate::runtime;

/// File in the bundle remembering which runtime and root a container uses,
/// for the `delete` action after a shim died.
pub const RUNTIME_STATE_FILE: &str = "urunc-shim.json";

/// The runtime binary to use: shim options, else `$URUNC_SHIM_RUNTIME`,
/// else `urunc`.
pub fn runtime_binary(option: &str) -> String {
    if !option.is_empty() {
        return option.to_string();
    }
    match std::env::var(runtime::RUNTIME_ENV) {
        Ok(v) if !v.is_empty() => v,
        _ => runtime::DEFAULT_RUNTIME.to_string(),
    }
}

/// The runtime's `--root` for a namespace (unless the options name one).
pub fn runtime_root(option: &str, namespace: &str) -> PathBuf {
    if !option.is_empty() {
        return PathBuf::from(option);
    }
    Path::new(runtime::DEFAULT_ROOT).join(namespace)
}

/// Decode runc-style shim options (`containerd.runc.v1.Options`) from the
/// `Create` request; other option types are ignored.
pub fn decode_options(
    any: Option<&shim::protos::protobuf::well_known_types::any::Any>,
) -> Result<Options, String> {
    let Some(any) = any else {
        return Ok(Options::default());
    };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        Options::parse_from_bytes(&any.value)
            .map_err(|e| format!("shim options ({}): {e}", any.type_url))
    } else {
        if !any.type_url.is_empty() {
            info!("ignoring shim options of type {}", any.type_url);
        }
        Ok(Options::default())
    }
}

/// Whether the container's other processes must be killed when its init
/// exits: unless the bundle gives it a PID namespace of its own (one that
/// the kernel tears down with its init), they would outlive it, holding its
/// output FIFOs open. containerd's runc shim decides the same way
/// (containerd v1.6 `runtime/v2/runc/util.go`, `ShouldKillAllOnExit`: a
/// `pid` namespace without a path means its own; an unreadable config means
/// kill).
pub fn kill_all_on_exit(bundle: &Path) -> bool {
    let Some(spec) = std::fs::read_to_string(bundle.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    else {
        return true;
    };
    let own_pid_ns = spec
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .is_some_and(|nss| {
            nss.iter().any(|ns| {
                ns.get("type").and_then(|t| t.as_str()) == Some("pid")
                    && ns
                        .get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .is_empty()
            })
        });
    !own_pid_ns
}

pub fn read_runtime_state(bundle: &Path) -> Option<(String, PathBuf)> {
    let s = std::fs::read_to_string(bundle.join(RUNTIME_STATE_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    Some((
        v.get("binary")?.as_str()?.to_string(),
        PathBuf::from(v.get("root")?.as_str()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_choice_order() {
        assert_eq!(runtime_binary("/opt/x/urunc"), "/opt/x/urunc");
        assert_eq!(
            runtime_root("", "k8s.io"),
            PathBuf::from("/run/containerd/urunc/k8s.io")
        );
        assert_eq!(runtime_root("/r", "default"), PathBuf::from("/r"));
    }

    #[test]
    fn options_decoding() {
        use shim::protos::protobuf::well_known_types::any::Any;
        assert_eq!(decode_options(None).unwrap().binary_name, "");
        let opts = Options {
            binary_name: "runc".into(),
            root: "/tmp/r".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let d = decode_options(Some(&any)).unwrap();
        assert_eq!(
            (d.binary_name.as_str(), d.root.as_str()),
            ("runc", "/tmp/r")
        );
        let bad = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        assert!(decode_options(Some(&bad))
            .unwrap_err()
            .contains("shim options"));
        let other = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(decode_options(Some(&other)).unwrap().binary_name, "");
    }

    #[test]
    fn kill_all_unless_the_container_has_its_own_pid_namespace() {
        let dir = tempfile::tempdir().unwrap();
        // No config: kill, as the runc shim does.
        assert!(kill_all_on_exit(dir.path()));
        let with = |nss: serde_json::Value| {
            let spec = serde_json::json!({"linux": {"namespaces": nss}});
            std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
            kill_all_on_exit(dir.path())
        };
        assert!(!with(
            serde_json::json!([{"type": "pid"}, {"type": "mount"}])
        ));
        assert!(!with(serde_json::json!([{"type": "pid", "path": ""}])));
        assert!(with(
            serde_json::json!([{"type": "pid", "path": "/proc/42/ns/pid"}])
        ));
        assert!(with(serde_json::json!([{"type": "network"}])));
    }

    #[test]
    fn runtime_state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_runtime_state(dir.path()).is_none());
        std::fs::write(
            dir.path().join(RUNTIME_STATE_FILE),
            serde_json::json!({"binary": "runc", "root": "/run/x"}).to_string(),
        )
        .unwrap();
        assert_eq!(
            read_runtime_state(dir.path()).unwrap(),
            ("runc".to_string(), PathBuf::from("/run/x"))
        );
    }
}

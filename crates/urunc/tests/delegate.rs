//! Containers that are not unikernels go to the delegate runtime (runc):
//! a busybox bundle behaves through urunc exactly as through runc.

mod support;
use serde_json::json;
use support::*;

fn busybox_bundle(args: &[&str]) -> Option<Bundle> {
    let busybox = which("busybox")
        .or_else(|| Some("/bin/busybox".into()))
        .filter(|p| p.exists())?;
    let mut b = Bundle::new();
    b.add_file(&busybox, "/bin/busybox");
    for l in ["sh", "echo", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", b.rootfs().join("bin").join(l)).unwrap();
    }
    b.args(args);
    b.spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]);
    b.spec["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    b.spec["process"]["noNewPrivileges"] = json!(true);
    b.write();
    Some(b)
}

fn ready(test: &str) -> bool {
    need_root(test)
        && need_bin(test, "runc")
        && (which("busybox").is_some() || std::path::Path::new("/bin/busybox").exists() || {
            println!("SKIP: {test}: busybox not found (install busybox-static)");
            false
        })
}

#[test]
fn busybox_run_matches_runc() {
    if !ready("busybox_run_matches_runc") {
        return;
    }
    let env = Env::new("");
    let b = busybox_bundle(&["/bin/sh", "-c", "echo hello from busybox; exit 3"]).unwrap();
    let bundle = b.write();
    let ours = env.urunc(&["run", "--bundle", &bundle, "bb-urunc"]);
    let theirs = std::process::Command::new("runc")
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "run",
            "--bundle",
            &bundle,
            "bb-runc",
        ])
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(3), "{}", text(&ours));
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        "hello from busybox\n"
    );
    assert_eq!(ours.stdout, theirs.stdout);
}

#[test]
fn busybox_create_start_state_delete_through_urunc() {
    if !ready("busybox_create_start_state_delete_through_urunc") {
        return;
    }
    subreaper();
    let env = Env::new("");
    let b = busybox_bundle(&["/bin/sleep", "100"]).unwrap();
    let pid = env.create(&b.write(), "bb1", &[]);
    let st = env.state("bb1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    // runc's own state file, not urunc's.
    assert!(env.root.join("bb1/state.json").exists());
    assert!(!env.root.join("bb1/urunc-state.json").exists());
    env.ok(&["start", "bb1"]);
    assert_eq!(env.status("bb1"), "running");
    let o = env.ok(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        list.as_array().unwrap().iter().any(|c| c["id"] == "bb1"),
        "{list}"
    );
    env.ok(&["kill", "bb1", "KILL"]);
    assert_eq!(
        wait_exit(pid, std::time::Duration::from_secs(30)),
        Some(137)
    );
    env.ok(&["delete", "bb1"]);
    assert!(!env.state_dir("bb1").exists());
    // Commands urunc does not implement go to the delegate too.
    let o = env.ok(&["spec", "--bundle", env.dir.path().to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        env.dir.path().join("config.json").exists(),
        "runc spec wrote no config.json"
    );
}

/// SPEC §4: a CRI sandbox (pause) container carries the pod's annotations,
/// urunc's keys included; it is still delegated to runc and runs.
#[test]
fn cri_sandbox_with_unikernel_annotations_is_delegated() {
    let t = "cri_sandbox_with_unikernel_annotations_is_delegated";
    if !ready(t) {
        return;
    }
    let env = Env::new("");
    for (marker, id) in [
        ("io.kubernetes.cri.container-type", "sb-containerd"),
        ("io.kubernetes.cri-o.ContainerType", "sb-crio"),
    ] {
        let mut b = busybox_bundle(&["/bin/sh", "-c", "echo pause ok"]).unwrap();
        b.annotate(marker, "sandbox")
            .unikernel("linux", "qemu", "/unikernel/missing-kernel");
        let bundle = b.write();
        let o = env.urunc(&["run", "--bundle", &bundle, id]);
        assert_eq!(o.status.code(), Some(0), "{marker}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "pause ok\n", "{marker}");
        // The same bundle marked as an application container is a unikernel
        // and fails on its missing kernel, naming the key.
        b.annotate(marker, "container");
        b.write();
        let err = env.create_fails(&b, &format!("{id}-app"));
        assert!(
            err.contains("com.urunc.unikernel.binary") && err.contains("does not exist"),
            "{marker}: {err}"
        );
    }
}

//! A container that is not a unikernel (delegated to runc) joining a
//! network namespace whose unikernel runs in tc mode would get no network
//! (tc redirects all of eth0 to the guest): urunc refuses it, naming the
//! unikernel and the fix (SPEC §7). Elsewhere it still runs via runc.
//! Needs root, QEMU (for the unikernel's `create`), runc, busybox, `ip`.

mod support;
use serde_json::json;
use support::netns::Netns;
use support::*;

fn busybox_in(netns: &str, annotations: &[(&str, &str)]) -> Bundle {
    let busybox = which("busybox").unwrap_or_else(|| "/bin/busybox".into());
    let mut b = Bundle::new();
    b.add_file(&busybox, "/bin/busybox");
    std::os::unix::fs::symlink("busybox", b.rootfs().join("bin/sh")).unwrap();
    b.args(&["/bin/sh", "-c", "echo sidecar ran"]);
    b.spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
        {"type": "uts"}, {"type": "network", "path": netns}]);
    b.spec["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    for (k, v) in annotations {
        b.annotate(k, v);
    }
    b.write();
    b
}

#[test]
fn delegated_container_beside_a_tc_unikernel_is_refused() {
    let t = "delegated_container_beside_a_tc_unikernel_is_refused";
    if !need_qemu(t) || !need_bin(t, "runc") || !need_bin(t, "ip") || !need_bin(t, "busybox") {
        return;
    }
    subreaper();
    let pod = Netns::new("a");
    let other = Netns::new("b");
    let env = Env::new(TINY_CONFIG);

    let mut uk = tiny_bundle(&[]);
    uk.netns(&pod.path());
    env.create(&uk.write(), "uk-tc", &[]);
    assert_eq!(env.status("uk-tc"), "created");

    // The sidecar in the tc unikernel's namespace: refused, not run.
    let side = busybox_in(&pod.path(), &[]);
    let o = env.urunc(&["run", "--bundle", &side.write(), "side-a"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    println!("sidecar beside tc: rc={:?} {err}", o.status.code());
    assert!(!o.status.success(), "the sidecar ran: {}", text(&o));
    assert!(
        err.contains("uk-tc")
            && err.contains("tc mode")
            && err.contains("com.urunc.network.mode=shared"),
        "{err}"
    );
    assert!(!text(&o).contains("sidecar ran"), "{}", text(&o));
    assert!(!env.root.join("side-a").exists(), "runc state left behind");
    let o = env.urunc(&["create", "--bundle", &side.write(), "side-c"]);
    assert!(!o.status.success(), "create of the sidecar: {}", text(&o));
    assert!(!env.root.join("side-c").exists(), "runc state left behind");

    // The pod's sandbox (pause) is not refused.
    let pause = busybox_in(
        &pod.path(),
        &[("io.kubernetes.cri.container-type", "sandbox")],
    );
    let o = env.urunc(&["run", "--bundle", &pause.write(), "pause-a"]);
    println!("sandbox beside tc: {}", text(&o).trim());
    assert!(
        o.status.success() && text(&o).contains("sidecar ran"),
        "{}",
        text(&o)
    );

    // The same sidecar in a namespace of no unikernel runs via runc.
    let free = busybox_in(&other.path(), &[]);
    let o = env.urunc(&["run", "--bundle", &free.write(), "side-b"]);
    println!("sidecar elsewhere: {}", text(&o).trim());
    assert!(
        o.status.success() && text(&o).contains("sidecar ran"),
        "{}",
        text(&o)
    );

    // Once the unikernel is gone, the pod's namespace takes it again.
    env.ok(&["delete", "--force", "uk-tc"]);
    let o = env.urunc(&["run", "--bundle", &side.write(), "side-a2"]);
    println!("sidecar after the unikernel: {}", text(&o).trim());
    assert!(
        o.status.success() && text(&o).contains("sidecar ran"),
        "{}",
        text(&o)
    );
}

/// A shared-mode unikernel with no ports: `create` says nothing reaches it.
#[test]
fn shared_mode_without_ports_warns() {
    let t = "shared_mode_without_ports_warns";
    if !need_qemu(t) || !need_bin(t, "ip") {
        return;
    }
    subreaper();
    let pod = Netns::new("w");
    let env = Env::new(TINY_CONFIG);
    let mut uk = tiny_bundle(&[]);
    uk.netns(&pod.path());
    uk.annotate("com.urunc.network.mode", "shared");
    env.create(&uk.write(), "uk-np", &[]);
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    let warn = log
        .lines()
        .find(|l| l.contains("no ports"))
        .unwrap_or_default()
        .to_string();
    println!("log: {warn}");
    env.ok(&["delete", "--force", "uk-np"]);
    assert!(warn.contains("\"level\":\"warning\""), "{log}");
    assert!(
        warn.contains("nothing is forwarded to uk-np") && warn.contains("com.urunc.network.ports"),
        "{log}"
    );
}

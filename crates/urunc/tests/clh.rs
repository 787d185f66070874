//! Cloud Hypervisor (`clh`) through the urunc CLI: bad input refused at
//! `create`, and real boots of the project's PVH test kernel
//! (`clhkernel.elf`).

mod support;
use std::time::Duration;
use support::*;

const KERNEL: &str = "/unikernel/kernel";

fn clh_bundle(kernel_fixture: &str, hv: &str, args: &[&str]) -> Bundle {
    let mut b = Bundle::new();
    b.add_file(&fixtures().join(kernel_fixture), KERNEL)
        .unikernel("unikraft", hv, KERNEL)
        .args(args)
        .env(&[]);
    b
}

const NEEDS: &str = "Cloud Hypervisor boots a 64-bit x86-64 ELF with a PVH entry note";

#[test]
fn kernels_it_cannot_load_are_refused_at_create() {
    // Our QEMU test kernel is a 32-bit ELF (with a PVH note): its loader
    // reads only 64-bit ELF headers.
    let b = clh_bundle("testkernel-pvh.elf", "clh", &["app"]);
    assert_create_fails(
        &b,
        "clh-elf32",
        &[
            "com.urunc.unikernel.binary",
            "monitor clh",
            "is a 32-bit ELF file",
            NEEDS,
        ],
    );
    // The Firecracker test kernel is a 64-bit ELF without a PVH note.
    let b = clh_bundle("fckernel.elf", "clh", &["app"]);
    assert_create_fails(
        &b,
        "clh-nopvh",
        &[
            "com.urunc.unikernel.binary",
            "without a PVH entry note",
            NEEDS,
        ],
    );
    let mut b = Bundle::new();
    std::fs::create_dir_all(b.rootfs().join("unikernel")).unwrap();
    std::fs::write(b.rootfs().join("unikernel/kernel"), "#!/bin/sh\n").unwrap();
    b.unikernel("linux", "clh", KERNEL);
    assert_create_fails(
        &b,
        "clh-text",
        &[
            "com.urunc.unikernel.binary",
            "is neither an ELF file nor a bzImage",
        ],
    );
}

#[test]
fn alias_cloud_hypervisor_is_clh() {
    // The alias reaches the same monitor (its kernel check), not "unknown
    // monitor".
    let b = clh_bundle("fckernel.elf", "cloud-hypervisor", &["app"]);
    assert_create_fails(
        &b,
        "clh-alias",
        &[
            "com.urunc.unikernel.binary",
            "monitor clh",
            "PVH entry note",
        ],
    );
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("clhkernel.elf"), KERNEL)
        .unikernel("rumprun", "cloud-hypervisor", KERNEL);
    assert_create_fails(
        &b,
        "clh-rump",
        &[
            "com.urunc.unikernel.hypervisor",
            "rumprun cannot run on clh (it runs on: hvt, spt)",
        ],
    );
}

/// Root, cloud-hypervisor on PATH, a usable /dev/kvm.
fn need_clh(test: &str) -> bool {
    if !need_root(test) || !need_bin(test, "cloud-hypervisor") {
        return false;
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        println!("SKIP: {test}: /dev/kvm is not usable: {e}");
        return false;
    }
    true
}

#[test]
fn clhkernel_boots_with_unikraft_args_and_exits_0() {
    if !need_clh("clhkernel_boots_with_unikraft_args_and_exits_0") {
        return;
    }
    subreaper();
    let env = Env::new("");
    let mut b = clh_bundle("clhkernel.elf", "clh", &["app", "one", "two words"]);
    b.env(&["A=1", "B=two"]);
    let bundle = b.write();
    let pid = env.create(&bundle, "clh-boot", &[]);
    let _cleanup = DeleteOnDrop(&env, "clh-boot");
    assert_eq!(env.status("clh-boot"), "created");
    env.ok(&["start", "clh-boot"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(60)),
        Some(0),
        "out: {}\nerr: {}",
        env.out("clh-boot"),
        env.err("clh-boot")
    );
    let out = env.out("clh-boot");
    assert_eq!(
        marker_lines(&out, "URUNC-CLHKERNEL cmdline:"),
        ["URUNC-CLHKERNEL cmdline: app env.vars=[ A=1 B=two ] -- one 'two words'"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-CLHKERNEL poweroff"),
        ["URUNC-CLHKERNEL poweroff"],
        "{out}"
    );
    assert_eq!(env.status("clh-boot"), "stopped");
    env.ok(&["delete", "clh-boot"]);
    assert!(!env.state_dir("clh-boot").exists());
}

#[test]
fn clhkernel_via_run_with_the_alias_and_without_seccomp() {
    if !need_clh("clhkernel_via_run_with_the_alias_and_without_seccomp") {
        return;
    }
    let env = Env::new("");
    let mut b = clh_bundle("clhkernel.elf", "cloud-hypervisor", &["hello", "world"]);
    // seccomp=unconfined: Cloud Hypervisor gets --seccomp false.
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, "clh-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        marker_lines(&out, "URUNC-CLHKERNEL cmdline:"),
        ["URUNC-CLHKERNEL cmdline: hello urunc -- world"],
        "{}",
        text(&o)
    );
    assert!(
        !env.state_dir("clh-run").exists(),
        "run must delete the container"
    );
}

/// Starts a hanging guest and delivers `signal` once it is up.
fn kill_hanging(id: &str, signal: &str) -> (Option<i32>, String) {
    subreaper();
    let env = Env::new("");
    let b = clh_bundle("clhkernel.elf", "clh", &["hang"]);
    let bundle = b.write();
    let pid = env.create(&bundle, id, &[]);
    let _cleanup = DeleteOnDrop(&env, id);
    env.ok(&["start", id]);
    assert!(
        env.wait_out(id, "URUNC-CLHKERNEL hang", Duration::from_secs(30)),
        "guest did not come up: {}\n{}",
        env.out(id),
        env.err(id)
    );
    env.ok(&["kill", id, signal]);
    let code = wait_exit(pid, Duration::from_secs(30));
    let out = env.out(id);
    env.ok(&["delete", id]);
    assert!(!env.state_dir(id).exists());
    (code, out)
}

#[test]
fn sigterm_stops_the_vm_with_status_0() {
    if !need_clh("sigterm_stops_the_vm_with_status_0") {
        return;
    }
    // Cloud Hypervisor handles SIGTERM (also as its PID namespace's init):
    // it stops the VM and exits 0.
    let (code, out) = kill_hanging("clh-term", "TERM");
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn sigkill_is_status_137() {
    if !need_clh("sigkill_is_status_137") {
        return;
    }
    let (code, out) = kill_hanging("clh-kill", "KILL");
    assert_eq!(code, Some(137), "{out}");
}

#[test]
fn nic_is_attached_inside_the_pod_netns() {
    let t = "nic_is_attached_inside_the_pod_netns";
    if !need_clh(t) || !need_bin(t, "ip") {
        return;
    }
    subreaper();
    let ns = PodNetNs::new("urunc-clht", "10.212.0", "02:42:0a:d4:00:02");
    let env = Env::new("");
    let id = "clh-net";
    let tap = urunc_core::network::tap_name(id);
    let mut b = clh_bundle("clhkernel.elf", "clh", &["hang"]);
    let nss = serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": ns.path()}]);
    b.spec["linux"]["namespaces"] = nss;
    let bundle = b.write();
    let pid = env.create(&bundle, id, &[]);
    let _cleanup = DeleteOnDrop(&env, id);
    env.ok(&["start", id]);
    let hung = env.wait_out(id, "URUNC-CLHKERNEL hang", Duration::from_secs(30));
    let out = env.out(id);
    assert!(hung, "guest did not come up: {out}\n{}", env.err(id));
    let lines = marker_lines(&out, "URUNC-CLHKERNEL cmdline:");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("URUNC-CLHKERNEL cmdline: hang netdev.ip=10.212.0.2/24:10.212.0.1:"),
        "{out}"
    );
    // The tap lives in the pod's namespace, and Cloud Hypervisor has it
    // open: a tap with an attached queue has its carrier up (LOWER_UP).
    let link = ns
        .link(&tap)
        .unwrap_or_else(|| panic!("tap {tap} missing in the pod netns while running"));
    assert!(link.contains("LOWER_UP"), "tap not attached: {link}");
    assert!(
        !std::path::Path::new("/sys/class/net").join(&tap).exists(),
        "tap {tap} leaked into the host netns"
    );
    env.ok(&["kill", id, "KILL"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(137));
    env.ok(&["delete", id]);
    assert!(
        ns.link(&tap).is_none(),
        "delete must remove the tap from the pod netns"
    );
    assert!(!env.state_dir(id).exists());
}

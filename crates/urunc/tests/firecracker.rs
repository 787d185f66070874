//! Firecracker through the urunc CLI: bad input refused at `create`, and
//! real boots of the project's 64-bit test kernel (`fckernel.elf`).

mod support;
use std::time::Duration;
use support::*;

const KERNEL: &str = "/unikernel/kernel";

fn fc_bundle(kernel_fixture: &str, args: &[&str]) -> Bundle {
    let mut b = Bundle::new();
    b.add_file(&fixtures().join(kernel_fixture), KERNEL)
        .unikernel("unikraft", "firecracker", KERNEL)
        .args(args)
        .env(&[]);
    b
}

#[test]
fn bzimage_kernel_is_refused_at_create() {
    let b = fc_bundle("bzImage", &["app"]);
    assert_create_fails(
        &b,
        "fc-bz",
        &[
            "com.urunc.unikernel.binary",
            "bzImage",
            "Firecracker needs an uncompressed 64-bit x86-64 vmlinux ELF",
        ],
    );
}

#[test]
fn non_elf_and_32_bit_kernels_are_refused_at_create() {
    let mut b = Bundle::new();
    std::fs::create_dir_all(b.rootfs().join("unikernel")).unwrap();
    std::fs::write(
        b.rootfs().join("unikernel/kernel"),
        "#!/bin/sh\necho not a kernel\n",
    )
    .unwrap();
    b.unikernel("unikraft", "firecracker", KERNEL);
    assert_create_fails(
        &b,
        "fc-text",
        &[
            "com.urunc.unikernel.binary",
            "is not an ELF file",
            "vmlinux ELF",
        ],
    );
    // Our QEMU test kernel is a 32-bit ELF.
    let b = fc_bundle("testkernel.elf", &["app"]);
    assert_create_fails(
        &b,
        "fc-elf32",
        &["com.urunc.unikernel.binary", "32-bit ELF", "vmlinux ELF"],
    );
}

#[test]
fn missing_initrd_is_refused_at_create() {
    let mut b = fc_bundle("fckernel.elf", &["app"]);
    b.annotate("com.urunc.unikernel.initrd", "/unikernel/initrd");
    assert_create_fails(
        &b,
        "fc-noinitrd",
        &[
            "com.urunc.unikernel.initrd",
            "\"/unikernel/initrd\" does not exist in the rootfs",
        ],
    );
}

#[test]
fn memory_below_minimum_is_refused_at_create() {
    if !need_root("memory_below_minimum_is_refused_at_create")
        || !need_bin("memory_below_minimum_is_refused_at_create", "firecracker")
    {
        return;
    }
    // Below what Firecracker can load a kernel into (checked while planning
    // at create, so it needs the monitor binary to be found).
    let mut b = fc_bundle("fckernel.elf", &["app"]);
    b.memory_mib(1);
    assert_create_fails(
        &b,
        "fc-mem1",
        &[
            "monitor firecracker",
            "1 MiB of guest memory is below its minimum of 2 MiB",
        ],
    );
    // Below 1 MiB: the generic rule.
    let mut b = fc_bundle("fckernel.elf", &["app"]);
    b.spec["linux"]["resources"]["memory"]["limit"] = serde_json::json!(512 * 1024);
    assert_create_fails(&b, "fc-mem0", &["memory limit 524288 bytes is below 1 MiB"]);
}

/// Root, Firecracker on PATH, a usable /dev/kvm.
fn need_firecracker(test: &str) -> bool {
    if !need_root(test) || !need_bin(test, "firecracker") {
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
fn fckernel_boots_with_unikraft_args_and_exits_0() {
    if !need_firecracker("fckernel_boots_with_unikraft_args_and_exits_0") {
        return;
    }
    subreaper();
    let env = Env::new("");
    let mut b = fc_bundle("fckernel.elf", &["app", "one", "two words"]);
    b.env(&["A=1", "B=two"]);
    let bundle = b.write();
    let pid = env.create(&bundle, "fc-boot", &[]);
    let _cleanup = DeleteOnDrop(&env, "fc-boot");
    assert_eq!(env.status("fc-boot"), "created");
    env.ok(&["start", "fc-boot"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(60)),
        Some(0),
        "out: {}\nerr: {}",
        env.out("fc-boot"),
        env.err("fc-boot")
    );
    let out = env.out("fc-boot");
    assert_eq!(
        marker_lines(&out, "URUNC-FCKERNEL cmdline:"),
        ["URUNC-FCKERNEL cmdline: app env.vars=[ A=1 B=two ] -- one 'two words'"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-FCKERNEL reset"),
        ["URUNC-FCKERNEL reset"],
        "{out}"
    );
    assert_eq!(env.status("fc-boot"), "stopped");
    // The config lived in the sandbox's tmpfs, inside the container's mount
    // namespace: nothing of it is left on the host for delete to remove.
    let sandbox = env.state_dir("fc-boot").join("sandbox");
    assert_eq!(
        std::fs::read_dir(&sandbox).unwrap().count(),
        0,
        "{}",
        sandbox.display()
    );
    env.ok(&["delete", "fc-boot"]);
    assert!(!env.state_dir("fc-boot").exists());
}

#[test]
fn without_a_mount_namespace_the_config_is_in_the_state_dir() {
    let t = "without_a_mount_namespace_the_config_is_in_the_state_dir";
    if !need_firecracker(t) {
        return;
    }
    subreaper();
    let env = Env::new("");
    let mut b = fc_bundle("fckernel.elf", &["app"]);
    b.spec["linux"]["namespaces"] =
        serde_json::json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]);
    let bundle = b.write();
    let pid = env.create(&bundle, "fc-host", &[]);
    let _cleanup = DeleteOnDrop(&env, "fc-host");
    env.ok(&["start", "fc-host"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(60)),
        Some(0),
        "{}",
        env.out("fc-host")
    );
    assert!(
        env.out("fc-host").lines().any(|l| l
            .trim_end()
            .ends_with("URUNC-FCKERNEL cmdline: app urunc -- ''")),
        "{}",
        env.out("fc-host")
    );
    let cfg = env.state_dir("fc-host").join("sandbox/fc.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    // Without a mount namespace of its own nothing can be attached in a
    // sandbox: Firecracker inherits the file resolved at create and is
    // given it by descriptor, not by its name in the rootfs.
    let kernel = v["boot-source"]["kernel_image_path"].as_str().unwrap();
    assert!(kernel.starts_with("/proc/self/fd/"), "{v}");
    env.ok(&["delete", "fc-host"]);
    assert!(!cfg.exists() && !env.state_dir("fc-host").exists());
}

#[test]
fn fckernel_via_run_without_seccomp() {
    if !need_firecracker("fckernel_via_run_without_seccomp") {
        return;
    }
    let env = Env::new("");
    let mut b = fc_bundle("fckernel.elf", &["hello", "world"]);
    // seccomp=unconfined: Firecracker gets --no-seccomp.
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, "fc-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        marker_lines(&out, "URUNC-FCKERNEL cmdline:"),
        ["URUNC-FCKERNEL cmdline: hello urunc -- world"],
        "{}",
        text(&o)
    );
    assert!(
        !env.state_dir("fc-run").exists(),
        "run must delete the container"
    );
}

#[test]
fn monitor_error_is_the_exit_status() {
    if !need_firecracker("monitor_error_is_the_exit_status") {
        return;
    }
    // A guest triple fault: this host's nested KVM reports it as an internal
    // error (Firecracker exits 1 and says why on stdout), bare-metal KVM as
    // a shutdown (exit 0); see the exit-status table in the monitor's docs.
    subreaper();
    let env = Env::new("");
    let b = fc_bundle("fckernel.elf", &["triplefault"]);
    let bundle = b.write();
    let pid = env.create(&bundle, "fc-tf", &[]);
    let _cleanup = DeleteOnDrop(&env, "fc-tf");
    env.ok(&["start", "fc-tf"]);
    let code = wait_exit(pid, Duration::from_secs(60));
    let out = env.out("fc-tf");
    assert!(out.contains("URUNC-FCKERNEL triplefault"), "{out}");
    match code {
        Some(1) => assert!(
            out.contains("KVM_EXIT_INTERNAL_ERROR"),
            "status 1 without Firecracker's reason: {out}"
        ),
        Some(0) => {}
        other => panic!("unexpected status {other:?}: {out}"),
    }
    env.ok(&["delete", "fc-tf"]);
}

#[test]
fn nic_is_attached_inside_the_pod_netns() {
    let t = "nic_is_attached_inside_the_pod_netns";
    if !need_firecracker(t) || !need_bin(t, "ip") {
        return;
    }
    subreaper();
    let ns = PodNetNs::new("urunc-fct", "10.211.0", "02:42:0a:d3:00:02");
    let env = Env::new("");
    let id = "fc-net";
    let tap = urunc_core::network::tap_name(id);
    let mut b = fc_bundle("fckernel.elf", &["hang"]);
    let nss = serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": ns.path()}]);
    b.spec["linux"]["namespaces"] = nss;
    let bundle = b.write();
    let pid = env.create(&bundle, id, &[]);
    let _cleanup = DeleteOnDrop(&env, id);
    env.ok(&["start", id]);
    let hung = env.wait_out(id, "URUNC-FCKERNEL hang", Duration::from_secs(30));
    let out = env.out(id);
    if hung && !out.contains("netdev.ip=") {
        let _ = env.urunc(&["kill", id, "KILL"]);
        let _ = wait_exit(pid, Duration::from_secs(30));
        env.ok(&["delete", id]);
        println!(
            "SKIP: {t}: the network step found no interface (network::discover returned no facts)"
        );
        return;
    }
    assert!(hung, "guest did not come up: {out}\n{}", env.err(id));
    // Unikraft's words, then what Firecracker appends for the NIC.
    let lines = marker_lines(&out, "URUNC-FCKERNEL cmdline:");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("URUNC-FCKERNEL cmdline: hang netdev.ip=10.211.0.2/24:10.211.0.1:"),
        "{out}"
    );
    assert!(
        lines[0].contains("virtio_mmio.device=4K@0xd0000000:5"),
        "no NIC attached: {out}"
    );
    // ... and what a Unikraft kernel understands of it: Firecracker's
    // device and our IP among the parameters, no stray arguments.
    assert_eq!(
        marker_lines(&out, "URUNC-UK virtio_mmio"),
        ["URUNC-UK virtio_mmio[0]: size=4K base=0xd0000000 irq=5"],
        "{out}"
    );
    let net = marker_lines(&out, "URUNC-UK net0:");
    assert!(
        net.len() == 1 && net[0].starts_with("URUNC-UK net0: ip=10.211.0.2/24 gw=10.211.0.1 "),
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-UK arg"),
        ["URUNC-UK argc: 1", "URUNC-UK argv[0]: hang"],
        "{out}"
    );
    // The tap lives in the pod's namespace, never in the host's.
    assert!(
        ns.link(&tap).is_some(),
        "tap {tap} missing in the pod netns while running"
    );
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

#[test]
fn sigterm_reaches_a_monitor_that_cannot_catch_it() {
    if !need_firecracker("sigterm_reaches_a_monitor_that_cannot_catch_it") {
        return;
    }
    // Firecracker installs no SIGTERM handler and is the init of the
    // container's PID namespace, where the kernel drops such a signal:
    // `urunc kill TERM` must still end it (as SIGKILL).
    subreaper();
    let env = Env::new("");
    let b = fc_bundle("fckernel.elf", &["hang"]);
    let pid = env.create(&b.write(), "fc-term", &[]);
    let _cleanup = DeleteOnDrop(&env, "fc-term");
    env.ok(&["start", "fc-term"]);
    assert!(
        env.wait_out("fc-term", "URUNC-FCKERNEL hang", Duration::from_secs(30)),
        "{}",
        env.out("fc-term")
    );
    env.ok(&["kill", "fc-term", "TERM"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(137));
    env.ok(&["delete", "fc-term"]);
}

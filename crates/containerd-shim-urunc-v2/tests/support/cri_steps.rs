//! The CRI tests' kubelet-side steps and checks: the container configs a
//! kubelet would send (the Linux fixture guest, busybox), running a pod and
//! a container and reaching the guest on the pod IP, and what must hold
//! after each stop and removal. Each test file uses what it needs.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ImageSpec, LinuxContainerConfig,
    LinuxContainerResources, PodSandboxConfig,
};

use crate::harness::{self, alive, network_leftovers, wait_for, Cri, Engine};
use crate::support;

pub const HELLO: &str = "hello from urunc guest";
pub const BARE: &str = "localhost/ucri-bare:latest";
pub const PACKED: &str = "localhost/ucri-packed:latest";
/// Readiness bound for a TCG Linux boot to its first TCP reply.
pub const BOOT: Duration = Duration::from_secs(120);

/// Checks what every case needs; prints SKIP and returns `None` otherwise.
pub fn setup(test: &str, engine: Result<Option<Engine>, String>) -> Option<Engine> {
    let engine = crate::cri_env::engine_or_skip(test, engine)?;
    harness::need_cri(test)?;
    let rt = support::runtime_under_test();
    if !rt.ends_with("urunc") {
        println!("SKIP: {test}: the workspace's urunc is not built (cargo build -p urunc)");
        return None;
    }
    if harness::urunc_pack().is_none() {
        println!("SKIP: {test}: urunc-pack is not built (cargo build -p urunc-pack)");
        return None;
    }
    if support::which("qemu-system-x86_64").is_none() {
        println!("SKIP: {test}: qemu-system-x86_64 not found");
        return None;
    }
    for f in ["pause", "vmlinux", "initramfs.cpio.gz"] {
        if !harness::fixtures().join(f).is_file() {
            println!("SKIP: {test}: fixture {f} missing (run tests/fixtures/build.sh)");
            return None;
        }
    }
    println!("{test}: containerd {}", engine.version);
    Some(engine)
}

/// Annotations or labels from pairs.
pub fn kv(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Linux guest serving on 8080 (its /init's `serve`), 256 MiB.
pub fn guest(
    name: &str,
    attempt: u32,
    image: &str,
    annotations: &[(&str, &str)],
) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["/init".into()],
        args: vec!["serve".into()],
        annotations: kv(annotations),
        log_path: format!("{name}_{attempt}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 256 << 20,
                ..Default::default()
            }),
            security_context: Some(harness::kubelet_security_context()),
        }),
        ..Default::default()
    }
}

/// A busybox container (delegated to runc) running `script`.
pub fn busybox(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: support::IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}_0.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(harness::kubelet_security_context()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The metadata of the bare image, as a user writes it in annotations.
pub fn guest_metadata(base64: bool) -> Vec<(String, String)> {
    let v = |s: &str| {
        if base64 {
            support::base64(s.as_bytes())
        } else {
            s.to_string()
        }
    };
    vec![
        ("com.urunc.unikernel.unikernelType".into(), v("linux")),
        ("com.urunc.unikernel.hypervisor".into(), v("qemu")),
        ("com.urunc.unikernel.binary".into(), v("/unikernel/vmlinux")),
        (
            "com.urunc.unikernel.initrd".into(),
            v("/unikernel/initramfs.cpio.gz"),
        ),
    ]
}

pub fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs a pod with handler `urunc` and checks what the kubelet sees: READY,
/// an IP, and a sandbox process that is our pause (delegated to runc, never
/// a unikernel, whatever annotations the pod carries).
pub fn run_urunc_pod(c: &mut Cri, cfg: &PodSandboxConfig) -> String {
    let pod = c
        .run_pod(cfg, "urunc")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log_tail()));
    let st = c.pod_status(&pod);
    let s = st.status.as_ref().unwrap();
    assert_eq!(s.state(), k8s_cri::v1::PodSandboxState::SandboxReady);
    assert_eq!(s.runtime_handler, "urunc");
    let ip = s.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
    assert!(ip.starts_with("10.88.0."), "pod IP {ip:?}");
    let info: serde_json::Value =
        serde_json::from_str(st.info.get("info").map(String::as_str).unwrap_or("{}")).unwrap();
    let pid = info["pid"].as_u64().unwrap_or(0);
    // runc's init execs the pause binary just after `start` returns.
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(5), || comm().trim() == "pause"),
        "sandbox process {pid} is {:?}",
        comm()
    );
    pod
}

/// Starts `cfg` in `pod` and waits for the guest's TCP reply on the pod
/// IP from the test's namespace. Returns the container ID.
pub fn start_and_reach(
    c: &mut Cri,
    pod: &str,
    pod_cfg: &PodSandboxConfig,
    cfg: ContainerConfig,
) -> String {
    let id = c.run_container(pod, pod_cfg, cfg);
    let (state, _) = c.state(&id);
    assert_eq!(state, ContainerState::ContainerRunning);
    let ip = c.pod_ip(pod);
    let reply = c.tcp_reply(&ip, 8080, HELLO, BOOT);
    assert!(
        reply.contains(HELLO),
        "no TCP reply from the guest at {ip}:8080 (last: {reply:?})\nlog:\n{}\n{}",
        log_of(c, &id),
        c.log_tail()
    );
    id
}

/// The CRI log file of `id` (path from ContainerStatus).
pub fn log_of(c: &Cri, id: &str) -> String {
    let path = c.status(id).status.map(|s| s.log_path).unwrap_or_default();
    std::fs::read_to_string(path).unwrap_or_default()
}

/// StopContainer, then what a kubelet and an operator would check: EXITED
/// with `code`, monitor gone, no tap or tc left in the pod's namespace.
pub fn stop_and_check(c: &mut Cri, id: &str, timeout: i64, code: i32) -> Duration {
    let pid = c.pid(id);
    let netns = c.netns_of(id);
    assert!(pid > 0, "no pid for {id}");
    let t = Instant::now();
    c.stop_container(id, timeout)
        .unwrap_or_else(|e| panic!("StopContainer: {e}\n{}", c.log_tail()));
    let took = t.elapsed();
    let (state, exit) = c.state(id);
    assert_eq!(state, ContainerState::ContainerExited);
    assert_eq!(exit, code, "exit code of {id} (stopped after {took:?})");
    assert!(
        wait_for(Duration::from_secs(5), || !alive(pid)),
        "process {pid} still alive"
    );
    assert_eq!(network_leftovers(&netns), "", "left in {}", netns.display());
    took
}

/// RemoveContainer: gone from ListContainers, no runtime state.
pub fn remove_and_check(c: &mut Cri, pod: &str, id: &str) {
    c.remove_container(id)
        .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
    assert!(c.list(pod).iter().all(|(i, _)| i != id));
    assert!(!c.runtime_state(id).exists(), "runtime state of {id} left");
    assert!(
        wait_for(Duration::from_secs(10), || !c.bundle(id).exists()),
        "bundle of {id} left: {:?}",
        std::fs::read_dir(c.bundle(id))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
}

/// StopPodSandbox + RemovePodSandbox leave no shim, mount, state or pod.
pub fn remove_pod_and_check(c: &mut Cri, pod: &str) {
    c.stop_pod(pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    c.remove_pod(pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    assert_pod_gone(c, pod);
}

/// A removed pod left no shim, mount or state.
pub fn assert_pod_gone(c: &mut Cri, pod: &str) {
    assert!(!c.pods().contains(&pod.to_string()));
    assert!(
        wait_for(Duration::from_secs(10), || c.shims().is_empty()),
        "shims left: {:?}",
        c.shims()
    );
    assert!(!c.bundle(pod).exists(), "sandbox bundle left");
    assert!(!c.runtime_state(pod).exists(), "sandbox runtime state left");
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

/// Builds tests/fixtures/solo5-ping (ping.*, http.*: Solo5 unikernels) and
/// imports `file` of it (e.g. `http.spt`) as the image `image`, at
/// /unikernel/app; None, after printing SKIP, without the Solo5 toolchain.
pub fn solo5_image(c: &mut Cri, test: &str, file: &str, image: &str) -> Option<()> {
    let build = c.dir.join("solo5-build");
    let o = std::process::Command::new("bash")
        .arg(harness::fixtures().join("../solo5-ping/build.sh"))
        .arg(&build)
        .output()
        .unwrap();
    if o.status.code() == Some(3) {
        println!("SKIP: {test}: {}", support::text(&o.stderr).trim());
        return None;
    }
    assert!(
        o.status.success(),
        "solo5-ping/build.sh: {}",
        support::text(&o.stderr)
    );
    let rootfs = c.dir.join(format!("solo5-rootfs-{file}"));
    std::fs::create_dir_all(rootfs.join("unikernel")).unwrap();
    std::fs::copy(build.join(file), rootfs.join("unikernel/app")).unwrap();
    let archive = support::pack_rootfs(&c.dir, &rootfs, &format!("solo5-{file}"), image, None);
    c.import(&archive, image);
    Some(())
}

/// A container of a [`solo5_image`]: MirageOS on Solo5 `target`
/// (metadata in the container's annotations), `command` its words after
/// urunc's network ones, 32 MiB.
pub fn solo5_container(name: &str, image: &str, target: &str, command: &[&str]) -> ContainerConfig {
    let mut ccfg = guest(
        name,
        0,
        image,
        &[
            ("com.urunc.unikernel.unikernelType", "mirage"),
            ("com.urunc.unikernel.hypervisor", target),
            ("com.urunc.unikernel.binary", "/unikernel/app"),
        ],
    );
    ccfg.command = command.iter().map(|s| s.to_string()).collect();
    ccfg.args = vec![];
    if let Some(r) = ccfg.linux.as_mut().and_then(|l| l.resources.as_mut()) {
        r.memory_limit_in_bytes = 32 << 20;
    }
    ccfg
}

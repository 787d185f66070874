//! Kubernetes end to end: pods through containerd's CRI plugin, driven by
//! the CRI v1 API as a kubelet drives it, with the runtime handler `urunc`
//! (this crate's shim and the workspace's urunc) and the project's Linux
//! fixture guest on QEMU (TCG) serving TCP on the pod's IP.
//!
//! Every case runs on Debian's containerd 1.6 (`debian::…`) and, when
//! `$URUNC_TEST_CONTAINERD` names another containerd binary (its `ctr`
//! beside it), on that one too (`env_containerd::…`; SKIP when unset).
//! Each case starts its own containerd in its own network namespace, so
//! cases run in parallel (as many as the test harness runs threads, by
//! default one per CPU: the TCG guests are CPU-bound).

#[path = "support/cri_env.rs"]
mod cri_env;
#[path = "support/cri.rs"]
mod harness;
#[path = "support/cri_steps.rs"]
mod steps;
mod support;

use std::time::Duration;

use harness::{alive, network_leftovers, wait_for, Cri, Engine};
use k8s_cri::v1::{
    ContainerState, ContainerStatsRequest, ExecSyncRequest, LinuxContainerResources,
    UpdateContainerResourcesRequest,
};
use steps::*;

crate::engine_tests!(
    crate::steps::setup;
    urunc_json_image_serves_on_the_pod_ip,
    pod_annotations_only,
    container_annotations_only,
    metadata_precedence,
    stop_timeout_term_then_kill,
    restarted_container_gets_network_again,
    exec_update_refused_stats_reported,
    containerd_restart_keeps_the_pod,
    sigkilled_shim_is_cleaned_up,
    solo5_unikernel_answers_ping_on_the_pod_ip,
);

/// (a) Metadata in the image's /urunc.json (packed by urunc-pack).
fn urunc_json_image_serves_on_the_pod_ip(e: &Engine) {
    let mut c = Cri::start(e, "json");
    let archive = harness::packed_guest_image(&c.dir, PACKED);
    c.import(&archive, PACKED);
    let cfg = c.pod_config("json", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let id = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, PACKED, &[]));

    // The container's process is the monitor; one shim serves the pod.
    let pid = c.pid(&id);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(
        exe.to_string_lossy().contains("qemu-system"),
        "container process {pid} runs {}",
        exe.display()
    );
    assert_eq!(c.shims().len(), 1, "shims: {:?}", c.shims());
    let listed = c.list(&pod);
    assert_eq!(listed, vec![(id.clone(), ContainerState::ContainerRunning)]);

    // The CRI log file holds the guest's console in CRI's format.
    assert!(
        wait_for(Duration::from_secs(10), || log_of(&c, &id)
            .contains("URUNC-SERVING")),
        "no URUNC-SERVING in the CRI log: {}",
        log_of(&c, &id)
    );
    let log = log_of(&c, &id);
    let serving = log.lines().find(|l| l.contains("URUNC-SERVING"));
    let fields: Vec<&str> = serving.unwrap_or_default().splitn(4, ' ').collect();
    assert!(
        fields.len() == 4 && fields[1] == "stdout" && fields[2] == "F",
        "CRI log has no console line for the guest: {log}"
    );
    let ip = c.pod_ip(&pod);
    assert!(
        log.contains(&format!("URUNC-NET ip={ip}/24")),
        "guest did not take the pod IP {ip}: {log}"
    );

    // TERM: QEMU powers the guest off within the timeout, exit 0.
    let took = stop_and_check(&mut c, &id, 30, 0);
    assert!(took < Duration::from_secs(30), "stop took {took:?}");
    assert_eq!(
        c.list(&pod),
        vec![(id.clone(), ContainerState::ContainerExited)]
    );
    remove_and_check(&mut c, &pod, &id);
    remove_pod_and_check(&mut c, &pod);
}

/// (b) Metadata only in pod annotations, base64 as upstream tells
/// Kubernetes users; the image has no urunc.json. The sandbox carries the
/// same annotations and must still be delegated.
fn pod_annotations_only(e: &Engine) {
    let mut c = Cri::start(e, "podann");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let meta = guest_metadata(true);
    let cfg = c.pod_config("podann", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);
    let id = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &[]));
    stop_and_check(&mut c, &id, 30, 0);
    remove_and_check(&mut c, &pod, &id);
    remove_pod_and_check(&mut c, &pod);
}

/// (c) Metadata only in container annotations (plain values).
fn container_annotations_only(e: &Engine) {
    let mut c = Cri::start(e, "ctrann");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let cfg = c.pod_config("ctrann", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let meta = guest_metadata(false);
    let id = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &refs(&meta)));
    stop_and_check(&mut c, &id, 30, 0);
    remove_and_check(&mut c, &pod, &id);
    remove_pod_and_check(&mut c, &pod);
}

/// Precedence for a pod's containers: a key in the container's
/// annotations beats the same key in the pod's (containerd's CRI copies
/// pod annotations into the spec first, then the container's over them);
/// annotations that name a unikernel beat the image's urunc.json, as a
/// whole.
fn metadata_precedence(e: &Engine) {
    let mut c = Cri::start(e, "prec");
    for (archive, r) in [
        (harness::bare_guest_image(&c.dir, BARE), BARE),
        (harness::packed_guest_image(&c.dir, PACKED), PACKED),
    ] {
        c.import(&archive, r);
    }
    // The pod names a kernel that no image has.
    let mut meta = guest_metadata(true);
    meta[2].1 = support::base64(b"/unikernel/pod-kernel");
    let cfg = c.pod_config("prec", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);

    // Pod annotations over urunc.json: the packed image's own (valid)
    // metadata is not used.
    let err = c
        .create(&pod, &cfg, guest("json", 0, PACKED, &[]))
        .err()
        .unwrap_or_default();
    let err = match err.is_empty() {
        true => c
            .start_container(&c.list(&pod).last().unwrap().0.clone())
            .err()
            .unwrap_or_default(),
        false => err,
    };
    assert!(
        err.contains("/unikernel/pod-kernel"),
        "expected the pod's binary to be used: {err:?}"
    );

    // Container annotation over pod annotation, key by key: the
    // container's binary, the pod's other keys.
    let id = start_and_reach(
        &mut c,
        &pod,
        &cfg,
        guest(
            "web",
            0,
            BARE,
            &[("com.urunc.unikernel.binary", "/unikernel/vmlinux")],
        ),
    );
    stop_and_check(&mut c, &id, 30, 0);
    remove_pod_and_check(&mut c, &pod);
}

/// StopContainer sends TERM and waits `timeout`, then KILL: the unikernel
/// (QEMU handles TERM) stops well within it with 0; a busybox PID 1 with
/// no TERM handler in the same pod is killed after it, 137.
fn stop_timeout_term_then_kill(e: &Engine) {
    let mut c = Cri::start(e, "stop");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    // Pod annotations would make every container of the pod a unikernel,
    // the busybox one too: the metadata goes on the unikernel container.
    let cfg = c.pod_config("stop", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let meta = guest_metadata(true);
    let uk = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &refs(&meta)));
    let uk_took = stop_and_check(&mut c, &uk, 20, 0);
    assert!(
        uk_took < Duration::from_secs(20),
        "TERM did not stop QEMU: {uk_took:?}"
    );

    let sh = c.run_container(&pod, &cfg, busybox("deaf", "exec sleep 1000"));
    assert!(c.wait_state(
        &sh,
        ContainerState::ContainerRunning,
        Duration::from_secs(10)
    ));
    let took = stop_and_check(&mut c, &sh, 2, 137);
    assert!(
        took >= Duration::from_secs(2),
        "KILL came before the timeout: {took:?}"
    );
    println!("stop: unikernel exited {uk_took:?} after TERM; deaf busybox killed after {took:?}");
    remove_pod_and_check(&mut c, &pod);
}

/// A kubelet restarting a container creates attempt N+1 in the same pod:
/// the new guest gets a tap and the pod IP again.
fn restarted_container_gets_network_again(e: &Engine) {
    let mut c = Cri::start(e, "restart");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let meta = guest_metadata(true);
    let cfg = c.pod_config("restart", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);
    let first = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &[]));
    stop_and_check(&mut c, &first, 20, 0);
    let second = start_and_reach(&mut c, &pod, &cfg, guest("web", 1, BARE, &[]));
    assert_ne!(first, second);
    let listed = c.list(&pod);
    assert!(listed.contains(&(first.clone(), ContainerState::ContainerExited)));
    assert!(listed.contains(&(second.clone(), ContainerState::ContainerRunning)));
    stop_and_check(&mut c, &second, 20, 0);
    remove_pod_and_check(&mut c, &pod);
}

/// ExecSync and UpdateContainerResources on a unikernel are refused with
/// urunc's reason (no processes to exec into; memory and vCPUs fixed at
/// boot), the container keeps running; ContainerStats reports its cgroup.
fn exec_update_refused_stats_reported(e: &Engine) {
    let mut c = Cri::start(e, "exec");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let meta = guest_metadata(true);
    let cfg = c.pod_config("exec", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);
    // Up and serving first: a monitor TERMed before it has set up its
    // handlers dies of the signal (143) instead of powering off (0).
    let id = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &[]));

    let mut r = c.runtime.clone();
    let exec = c.call(r.exec_sync(ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["/bin/sh".into()],
        timeout: 10,
    }));
    let err = exec
        .err()
        .map(|s| s.message().to_string())
        .unwrap_or_default();
    assert!(err.contains("exec is not possible"), "ExecSync: {err:?}");
    let upd = c.call(
        r.update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 512 << 20,
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    let err = upd
        .err()
        .map(|s| s.message().to_string())
        .unwrap_or_default();
    assert!(
        err.contains("update is not supported for unikernel containers"),
        "UpdateContainerResources: {err:?}"
    );
    assert_eq!(c.state(&id).0, ContainerState::ContainerRunning);

    // Stats from the container's cgroup: QEMU's memory and CPU time.
    let stats = c
        .call(r.container_stats(ContainerStatsRequest {
            container_id: id.clone(),
        }))
        .unwrap_or_else(|e| panic!("ContainerStats: {e}"))
        .into_inner()
        .stats
        .unwrap();
    let mem = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    let cpu = stats
        .cpu
        .and_then(|m| m.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    println!("ContainerStats: working set {mem} B, cpu {cpu} ns");
    assert!(mem > 1 << 20, "working set {mem}");
    assert!(cpu > 0, "cpu {cpu}");
    stop_and_check(&mut c, &id, 20, 0);
    remove_pod_and_check(&mut c, &pod);
}

/// containerd restarted under a running pod: the shim and the guest live
/// on; CRI still reports Running, the guest still answers, and stopping
/// works afterwards.
fn containerd_restart_keeps_the_pod(e: &Engine) {
    let mut c = Cri::start(e, "crestart");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let meta = guest_metadata(true);
    let cfg = c.pod_config("crestart", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);
    let id = start_and_reach(&mut c, &pod, &cfg, guest("web", 0, BARE, &[]));
    let pid = c.pid(&id);
    let shims = c.shims();
    c.restart_containerd();
    assert_eq!(c.shims(), shims, "shims changed over the restart");
    assert!(alive(pid), "the monitor died with containerd");
    assert_eq!(c.state(&id).0, ContainerState::ContainerRunning);
    let ip = c.pod_ip(&pod);
    let reply = c.tcp_reply(&ip, 8080, HELLO, Duration::from_secs(30));
    assert!(reply.contains(HELLO), "after the restart: {reply:?}");
    stop_and_check(&mut c, &id, 20, 0);
    remove_and_check(&mut c, &pod, &id);
    remove_pod_and_check(&mut c, &pod);
}

/// A SIGKILLed shim: containerd runs the shim's delete action, the
/// container is reported EXITED, its monitor and state are gone, and the
/// pod can be removed leaving nothing.
fn sigkilled_shim_is_cleaned_up(e: &Engine) {
    let mut c = Cri::start(e, "shimkill");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let meta = guest_metadata(true);
    let cfg = c.pod_config("shimkill", &refs(&meta));
    let pod = run_urunc_pod(&mut c, &cfg);
    let id = c.run_container(&pod, &cfg, guest("web", 0, BARE, &[]));
    let pid = c.pid(&id);
    let netns = c.netns_of(&id);
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "shims: {shims:?}");
    // SAFETY: kill(2) of this test's own shim, found in /proc just above.
    unsafe {
        libc::kill(shims[0], libc::SIGKILL);
    }
    assert!(
        c.wait_state(
            &id,
            ContainerState::ContainerExited,
            Duration::from_secs(30)
        ),
        "state after the shim died: {:?}\n{}",
        c.state(&id),
        c.log_tail()
    );
    assert!(
        wait_for(Duration::from_secs(10), || !alive(pid)),
        "monitor {pid} outlived its shim"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !c.runtime_state(&id).exists()),
        "runtime state left"
    );
    assert_eq!(network_leftovers(&netns), "");
    remove_and_check(&mut c, &pod, &id);
    // containerd 2.x cleans the dead shim's sandbox task up asynchronously
    // and fails a RemovePodSandbox that comes first ("ttrpc: closed"); a
    // kubelet retries, and so does this test (bounded).
    let mut first_err = None;
    let removed = wait_for(Duration::from_secs(20), || {
        let r = c.stop_pod(&pod).and_then(|_| c.remove_pod(&pod));
        if let Err(e) = &r {
            first_err.get_or_insert(e.clone());
        }
        r.is_ok()
    });
    assert!(removed, "RemovePodSandbox kept failing: {first_err:?}");
    if let Some(e) = first_err {
        println!("sigkilled_shim: first RemovePodSandbox failed, retried: {e}");
    }
    assert_pod_gone(&mut c, &pod);
}

/// A Solo5 unikernel (the fixtures' solo5-ping, as MirageOS on spt or hvt)
/// in a pod: it takes the pod IP, answers three pings from the test's
/// namespace and exits 0, which the kubelet sees as EXITED 0. Runs when a
/// tender and the Solo5 toolchain are there.
fn solo5_unikernel_answers_ping_on_the_pod_ip(e: &Engine) {
    let test = "solo5_unikernel_answers_ping_on_the_pod_ip";
    let kvm = std::path::Path::new("/dev/kvm").exists();
    let Some(target) = ["spt", "hvt"]
        .into_iter()
        .find(|t| support::which(&format!("solo5-{t}")).is_some() && (*t == "spt" || kvm))
    else {
        println!("SKIP: {test}: no solo5-spt (or solo5-hvt with /dev/kvm) in PATH");
        return;
    };
    let mut c = Cri::start(e, "solo5");
    let image = "localhost/ucri-solo5-ping:latest";
    if solo5_image(&mut c, test, &format!("ping.{target}"), image).is_none() {
        return;
    }
    let cfg = c.pod_config("solo5", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let ccfg = solo5_container("ping", image, target, &["-l", "debug"]);
    let id = c.run_container(&pod, &cfg, ccfg);
    let ip = c.pod_ip(&pod);
    assert!(
        wait_for(Duration::from_secs(30), || log_of(&c, &id)
            .contains("URUNC-SOLO5-PING serving")),
        "guest not serving: {}",
        log_of(&c, &id)
    );
    assert!(
        log_of(&c, &id).contains(&format!("URUNC-SOLO5-PING serving {ip} ")),
        "guest did not take the pod IP {ip}: {}",
        log_of(&c, &id)
    );
    let ping = harness::in_netns(
        &c.netns.path(),
        &["busybox", "ping", "-c", "3", "-W", "5", &ip],
    );
    assert!(
        ping.status.success(),
        "ping {ip}: {}",
        support::text(&ping.stdout)
    );
    assert!(
        c.wait_state(
            &id,
            ContainerState::ContainerExited,
            Duration::from_secs(20)
        ),
        "state: {:?}",
        c.state(&id)
    );
    assert_eq!(c.state(&id).1, 0, "exit code");
    remove_and_check(&mut c, &pod, &id);
    remove_pod_and_check(&mut c, &pod);
}

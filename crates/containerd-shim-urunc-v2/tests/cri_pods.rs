//! Pods with several containers through CRI (issue 11): the shared network
//! mode, in which the pod IP stays on eth0 for every container and each
//! unikernel gets a private /30 on its own tap behind nftables NAT, and
//! what today's default tc mode does to a sidecar.
//!
//! Same harness as `cri.rs` (a private containerd with CRI in a test
//! namespace whose CNI bridge, 10.88.0.1, is the pods' gateway; the Linux
//! fixture guest under QEMU TCG). Sidecars are busybox containers
//! delegated to runc; what they reach is asked from inside them with
//! ExecSync, as `kubectl exec` would. The unikernels' metadata is in
//! container annotations, never pod annotations: CRI copies the pod's
//! onto every container, the busybox sidecars too, which would make them
//! unikernels. Each case has its own containerd, so cases run in parallel.

#[path = "support/cri_env.rs"]
mod cri_env;
#[path = "support/cri.rs"]
mod harness;
#[path = "support/cri_pods_steps.rs"]
mod pods;
#[path = "support/cri_steps.rs"]
mod steps;
mod support;

use std::time::Duration;

use harness::{alive, network_leftovers, wait_for, Cri, Engine};
use k8s_cri::v1::KeyValue;
use pods::*;
use steps::*;
crate::engine_tests!(
    crate::pods::need;
    unikernel_and_sidecar_share_the_pod_ip,
    two_unikernels_conflict_and_restart,
    knative_queue_proxy_reaches_user_container,
    tc_mode_refuses_a_sidecar,
);

/// (1) + (6) A unikernel and a busybox sidecar in one pod (shared mode by
/// pod annotation, as the README tells pods with sidecars): both reach the
/// gateway and each other through the pod IP; the sidecar keeps eth0.
fn unikernel_and_sidecar_share_the_pod_ip(e: &Engine) {
    let mut c = Cri::start(e, "pside");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    let _gw = Gateway::start(&c, GW_PORT, GW_BODY);
    let cfg = c.pod_config("pside", &[("com.urunc.network.mode", "shared")]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let ip = c.pod_ip(&pod);

    let side = run_running(&mut c, &pod, &cfg, busybox("sidecar", SIDECAR));
    let netns = c.netns_of(&side);
    let forward_before = sysctl(&netns, "net/ipv4/ip_forward");
    let (gw, sc) = (format!("{GATEWAY}:{GW_PORT}"), format!("{ip}:{SIDE_PORT}"));
    let uk = start_and_reach(
        &mut c,
        &pod,
        &cfg,
        // Ports: the bare image has no urunc.json and this is no
        // Knative pod, so the annotation names them (without, shared mode
        // forwards nothing).
        serving(
            unikernel("web", 0, &[("com.urunc.network.ports", "8080")]),
            &["8080", &gw, &sc],
        ),
    );
    let net = net_line(&c, &uk);
    println!("guest: {net}");
    assert!(
        net.starts_with("URUNC-NET ip=169.254.100."),
        "not shared mode: {net}"
    );
    let q = eth0_qdiscs(&netns);
    assert!(!q.contains("ingress"), "tc on eth0 in shared mode: {q}");
    let t = tables(&netns);
    println!("tables: {t:?}");
    assert!(
        t.iter().any(|l| l.contains(&format!("urunc-{uk}"))),
        "{t:?}"
    );

    // Test namespace (the outside) → both, through the pod IP.
    let h = c.tcp_reply(&ip, 8080, HELLO, Duration::from_secs(30));
    println!("outside -> {ip}:8080: {}", last_line(&h));
    assert!(h.contains(HELLO), "{h:?}");
    let s = get(&c, &ip, SIDE_PORT, SIDE_BODY, Duration::from_secs(30));
    println!("outside -> {sc}: {}", last_line(&s));
    assert!(s.contains(SIDE_BODY), "{s:?}");
    // Sidecar → gateway, → the unikernel through the pod IP.
    let s = get_from(&c, &side, GATEWAY, GW_PORT, GW_BODY, 10);
    println!("sidecar -> {gw}: {}", last_line(&s));
    assert!(s.contains(GW_BODY), "{s:?}");
    let s = get_from(&c, &side, &ip, 8080, HELLO, 10);
    println!("sidecar -> {ip}:8080: {}", last_line(&s));
    assert!(s.contains(HELLO), "{s:?}");
    // Unikernel → gateway, → the sidecar through the pod IP (it GETs both
    // after serving and prints URUNC-FETCH lines).
    assert!(
        wait_for(Duration::from_secs(90), || log_of(&c, &uk)
            .contains(&format!("URUNC-FETCH {sc}"))),
        "guest did not fetch: {}",
        log_of(&c, &uk)
    );
    let log = log_of(&c, &uk);
    let fetched: Vec<&str> = log
        .lines()
        .filter_map(|l| l.find("URUNC-FETCH").map(|i| &l[i..]))
        .collect();
    println!("guest: {fetched:?}");
    assert_eq!(
        fetched,
        [
            format!("URUNC-FETCH {gw} {GW_BODY}"),
            format!("URUNC-FETCH {sc} {SIDE_BODY}")
        ]
    );

    // (6) Stop + remove: nothing of urunc's left in the pod (taps, tc,
    // nft tables, /30 addresses), ip_forward as before, state gone; the
    // sidecar still has eth0.
    stop_and_check(&mut c, &uk, 20, 0);
    assert_eq!(sysctl(&netns, "net/ipv4/ip_forward"), forward_before);
    remove_and_check(&mut c, &pod, &uk);
    let s = get_from(&c, &side, GATEWAY, GW_PORT, GW_BODY, 5);
    assert!(
        s.contains(GW_BODY),
        "sidecar after the unikernel went: {s:?}"
    );
    c.stop_container(&side, 2).unwrap();
    remove_pod_and_check(&mut c, &pod);
    println!("removed: no tap, table, qdisc, address, state, shim or mount left");
}

/// (2) (3) (4) (6) Two unikernels on distinct ports in one pod, each
/// answering on its port of the pod IP: `a` shared by container
/// annotation, `b` from an image whose /urunc.json names its port and no
/// annotation (it joins the pod's shared mode, the README's rule); a
/// third on a port already served is refused, naming port and container;
/// restarting one (kubelet's attempt 1) keeps the other serving.
fn two_unikernels_conflict_and_restart(e: &Engine) {
    let mut c = Cri::start(e, "ptwo");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let archive =
        harness::packed_guest_image_with(&c.dir, PACKED, "packed-8081.tar", &["--port", "8081"]);
    c.import(&archive, PACKED);
    let cfg = c.pod_config("ptwo", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let ip = c.pod_ip(&pod);
    let shared = |ports: &'static str| {
        [
            ("com.urunc.network.mode", "shared"),
            ("com.urunc.network.ports", ports),
        ]
    };
    let a_cfg = |attempt| serving(unikernel("a", attempt, &shared("8080")), &["8080"]);
    let a = start_and_reach(&mut c, &pod, &cfg, a_cfg(0));
    // b: the image packed with `urunc-pack --port 8081` (metadata and
    // port in its /urunc.json), no annotations at all: its mode was not
    // asked for, so it joins the pod's shared mode.
    let b = c.run_container(&pod, &cfg, serving(guest("b", 0, PACKED, &[]), &["8081"]));
    let netns = c.netns_of(&a);
    let (na, nb) = (net_line(&c, &a), net_line(&c, &b));
    println!("a: {na}\nb: {nb}");
    assert!(
        na.starts_with("URUNC-NET ip=169.254.100.") && nb.starts_with("URUNC-NET ip=169.254.100.")
    );
    assert_ne!(na, nb);
    for port in [8080, 8081] {
        let h = c.tcp_reply(&ip, port, HELLO, BOOT);
        println!("outside -> {ip}:{port}: {}", last_line(&h));
        assert!(h.contains(HELLO), "{port}: {h:?}\n{}", log_of(&c, &b));
    }

    // (3) A third asking for a's port: refused, nothing of it left.
    let before = network_leftovers(&netns);
    let (err, made) = refused(
        &mut c,
        &pod,
        &cfg,
        serving(unikernel("c", 0, &shared("9000,8080/tcp")), &["9000"]),
    );
    println!("conflict: {err}");
    assert!(err.contains("port 8080/tcp") && err.contains(&a), "{err}");
    if let Some(id) = made {
        assert!(
            !c.runtime_state(&id).exists(),
            "state of the refused {id} left"
        );
        c.remove_container(&id).unwrap();
    }
    assert_eq!(
        network_leftovers(&netns),
        before,
        "the refused one left something"
    );

    // (4) Restart a: b answers throughout; a's table goes, b's stays.
    let pid = c.pid(&a);
    c.stop_container(&a, 20).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !alive(pid)));
    let gone = wait_for(Duration::from_secs(10), || {
        !tables(&netns)
            .iter()
            .any(|l| l.contains(&format!("urunc-{a}")))
    });
    assert!(gone, "a's table after stop: {:?}", tables(&netns));
    assert!(tables(&netns)
        .iter()
        .any(|l| l.contains(&format!("urunc-{b}"))));
    let h = c.tcp_reply(&ip, 8081, HELLO, Duration::from_secs(30));
    println!("a stopped; outside -> {ip}:8081: {}", last_line(&h));
    assert!(h.contains(HELLO), "b while a is down: {h:?}");
    let a1 = start_and_reach(&mut c, &pod, &cfg, a_cfg(1));
    println!("a again: {}", net_line(&c, &a1));
    for port in [8080, 8081] {
        let h = c.tcp_reply(&ip, port, HELLO, Duration::from_secs(30));
        println!(
            "after the restart: outside -> {ip}:{port}: {}",
            last_line(&h)
        );
        assert!(h.contains(HELLO), "{port}: {h:?}");
    }

    // (6) Everything stopped and removed: nothing left.
    c.stop_container(&b, 20).unwrap();
    stop_and_check(&mut c, &a1, 20, 0);
    assert_eq!(sysctl(&netns, "net/ipv4/ip_forward"), "0");
    for id in [&a, &b, &a1] {
        remove_and_check(&mut c, &pod, id);
    }
    remove_pod_and_check(&mut c, &pod);
}

/// (5) Knative: `user-container` (a unikernel, shared mode picked by its
/// name, port from `PORT`) and `queue-proxy` (busybox proxying the pod's
/// 8012 to 127.0.0.1:$PORT as Knative's does): queue-proxy reaches the
/// unikernel, the outside reaches it through queue-proxy.
fn knative_queue_proxy_reaches_user_container(e: &Engine) {
    let mut c = Cri::start(e, "pknative");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    let cfg = c.pod_config("pknative", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let ip = c.pod_ip(&pod);
    let mut user = serving(unikernel("user-container", 0, &[]), &["8080"]);
    user.envs = vec![KeyValue {
        key: "PORT".into(),
        value: "8080".into(),
    }];
    let uk = start_and_reach(&mut c, &pod, &cfg, user);
    let net = net_line(&c, &uk);
    println!("user-container: {net}");
    assert!(
        net.starts_with("URUNC-NET ip=169.254.100."),
        "not shared mode: {net}"
    );
    let qp = run_running(
        &mut c,
        &pod,
        &cfg,
        busybox(
            "queue-proxy",
            "/bin/busybox printf '#!/bin/sh\\nexec /bin/busybox nc 127.0.0.1 8080\\n' \
             > /tmp/proxy && /bin/busybox chmod +x /tmp/proxy && \
             exec /bin/busybox nc -ll -p 8012 -e /tmp/proxy",
        ),
    );
    for host in ["127.0.0.1", ip.as_str()] {
        let s = get_from(&c, &qp, host, 8080, HELLO, 10);
        println!("queue-proxy -> {host}:8080: {}", last_line(&s));
        assert!(s.contains(HELLO), "{host}: {s:?}");
    }
    let h = c.tcp_reply(&ip, 8012, HELLO, Duration::from_secs(30));
    println!(
        "outside -> {ip}:8012 (queue-proxy) -> user-container: {}",
        last_line(&h)
    );
    assert!(h.contains(HELLO), "{h:?}");
    stop_and_check(&mut c, &uk, 20, 0);
    remove_and_check(&mut c, &pod, &uk);
    c.stop_container(&qp, 2).unwrap();
    remove_pod_and_check(&mut c, &pod);
}

/// (7) Today's default, tc mode: the guest owns the pod IP and all of
/// eth0's traffic, so a busybox sidecar (delegated to runc) joining the
/// pod would get no network; it is refused at create/start, naming the
/// unikernel and the fix, as is a second unikernel. Once the unikernel has
/// stopped, the same sidecar runs and reaches the gateway.
fn tc_mode_refuses_a_sidecar(e: &Engine) {
    let mut c = Cri::start(e, "ptc");
    let archive = harness::bare_guest_image(&c.dir, BARE);
    c.import(&archive, BARE);
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    let _gw = Gateway::start(&c, GW_PORT, GW_BODY);
    let cfg = c.pod_config("ptc", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let ip = c.pod_ip(&pod);

    let uk = start_and_reach(&mut c, &pod, &cfg, unikernel("web", 0, &[]));
    let net = net_line(&c, &uk);
    println!("guest: {net}");
    assert!(
        net.starts_with(&format!("URUNC-NET ip={ip}/24")),
        "not tc mode: {net}"
    );

    let (err, made) = refused(&mut c, &pod, &cfg, busybox("sidecar", SIDECAR));
    println!("sidecar next to tc: {err}");
    assert!(
        err.contains(&uk)
            && err.contains("tc mode")
            && err.contains("com.urunc.network.mode=shared"),
        "{err}"
    );
    if let Some(id) = made {
        c.remove_container(&id).unwrap();
    }

    let (err, made) = refused(
        &mut c,
        &pod,
        &cfg,
        serving(
            unikernel("second", 0, &[("com.urunc.network.ports", "8081")]),
            &["8081"],
        ),
    );
    println!("second unikernel: {err}");
    assert!(err.contains(&uk) && err.contains("tc mode"), "{err}");
    if let Some(id) = made {
        c.remove_container(&id).unwrap();
    }

    stop_and_check(&mut c, &uk, 20, 0);
    let side = run_running(&mut c, &pod, &cfg, busybox("late-sidecar", SIDECAR));
    let s = get_from(&c, &side, GATEWAY, GW_PORT, GW_BODY, 10);
    println!("unikernel stopped: sidecar -> gateway: {}", last_line(&s));
    assert!(s.contains(GW_BODY), "{s:?}");
    remove_and_check(&mut c, &pod, &uk);
    c.stop_container(&side, 2).unwrap();
    remove_pod_and_check(&mut c, &pod);
}

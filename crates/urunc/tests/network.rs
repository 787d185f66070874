//! The container's network (SPEC §7) for real: network namespaces made
//! by the test ("pod" with eth0, a veth to a "peer" namespace playing the
//! outside world), urunc's netlink code creating the tap and the tc
//! redirect, and the Linux fixture guest answering ping and TCP from the
//! peer with the pod's address. Needs root, QEMU, `ip`, `tc`, busybox.

mod support;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::netns::{must, pod_with_peer, Netns};
use support::*;
use urunc_core::network;

/// Guests boot under TCG on few cores: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const DNS: &str = "10.200.99.53";

fn need_net_tools(test: &str) -> bool {
    need_qemu(test) && need_bin(test, "ip") && need_bin(test, "tc") && need_bin(test, "busybox")
}

/// A pod namespace whose eth0 (10.200.N.2/24, default route via .1) is a
/// veth to a peer namespace holding 10.200.N.1.
struct Pod {
    pod: Netns,
    peer: Netns,
    ip: String,
    gw: String,
    mac: String,
}

impl Pod {
    fn new(n: u8) -> Pod {
        let (ip, gw) = (format!("10.200.{n}.2"), format!("10.200.{n}.1"));
        let (pod, peer) = pod_with_peer(&ip, &gw);
        let j: Value = serde_json::from_str(&must(&[
            "ip", "-n", &pod.name, "-j", "link", "show", "eth0",
        ]))
        .unwrap();
        let mac = j[0]["address"].as_str().unwrap().to_string();
        Pod {
            pod,
            peer,
            ip,
            gw,
            mac,
        }
    }

    /// One ping from the peer, answered within 2 s.
    fn ping_once(&self) -> bool {
        self.peer
            .exec(&["busybox", "ping", "-c", "1", "-W", "2", &self.ip])
            .status
            .success()
    }

    /// Pings from the peer until one is answered (up to `tries`).
    fn ping(&self, tries: u32) -> bool {
        (0..tries).any(|_| self.ping_once())
    }

    /// Connects from the peer to port 8080 until the guest answers.
    fn tcp_hello(&self) -> String {
        let mut last = String::new();
        for _ in 0..10 {
            let o = self
                .peer
                .exec(&["busybox", "nc", "-w", "5", &self.ip, "8080"]);
            last = String::from_utf8_lossy(&o.stdout).into_owned();
            if last.contains("hello from urunc guest") {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        last
    }

    /// What is left of urunc's work in the pod: taps of ours, ingress
    /// qdiscs, filters.
    fn leftovers(&self) -> String {
        let mut s = String::new();
        let links =
            String::from_utf8_lossy(&self.pod.ip(&["-o", "link", "show"]).stdout).into_owned();
        for l in links.lines().filter(|l| l.contains(": urunc")) {
            s += &format!("link: {l}\n");
        }
        let q = self.pod.tc(&["qdisc", "show", "dev", "eth0"]);
        if q.contains("ingress") {
            s += &format!("qdisc: {q}\n");
        }
        let f = self.pod.tc(&["filter", "show", "dev", "eth0", "ingress"]);
        if !f.trim().is_empty() {
            s += &format!("filter: {f}\n");
        }
        s
    }
}

fn ts_config(env: &Env, base: &str) -> PathBuf {
    let ts = env.dir.path().join("timestamps.jsonl");
    std::fs::write(
        &env.config,
        format!(
            "{base}\n[timestamps]\nenabled = true\ndestination = \"{}\"\n",
            ts.display()
        ),
    )
    .unwrap();
    ts
}

/// The Linux fixture serving on 8080, joined to the network namespace at
/// `netns`, with `DNS` in its /etc/resolv.conf.
fn serve_bundle(netns: &str) -> Bundle {
    let mut b = linux_bundle(&["/init", "serve"]);
    b.netns(netns);
    std::fs::create_dir_all(b.rootfs().join("etc")).unwrap();
    std::fs::write(
        b.rootfs().join("etc/resolv.conf"),
        format!("# test\nnameserver {DNS}\n"),
    )
    .unwrap();
    b.write();
    b
}

/// TS11→TS12 (the network step) of every start recorded in `ts`, in µs.
fn network_step_us(ts: &PathBuf) -> Vec<f64> {
    let s = std::fs::read_to_string(ts).unwrap_or_default();
    let mut t11 = std::collections::HashMap::new();
    let mut out = vec![];
    for l in s.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let (id, step, t) = (
            v["containerID"].as_str().unwrap().to_string(),
            v["timestampID"].as_str().unwrap().to_string(),
            v["time"].as_u64().unwrap(),
        );
        match step.as_str() {
            "TS11" => {
                t11.insert(id, t);
            }
            "TS12" => {
                if let Some(a) = t11.remove(&id) {
                    out.push((t - a) as f64 / 1000.0);
                }
            }
            _ => {}
        }
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Starts `id` and waits for URUNC-SERVING; returns the monitor's pid.
fn start_serving(env: &Env, bundle: &str, id: &str) -> i32 {
    let pid = env.create(bundle, id, &[]);
    env.ok(&["start", id]);
    assert!(
        env.wait_out(id, "URUNC-SERVING", Duration::from_secs(90)),
        "{id} did not serve:\n{}\n{}",
        env.out(id),
        env.err(id)
    );
    pid
}

fn stop(env: &Env, id: &str, pid: i32) {
    env.ok(&["kill", id, "KILL"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(30)),
        Some(137),
        "{id} did not die"
    );
}

#[test]
fn guest_owns_the_pod_address_and_restarts_cleanly() {
    let t = "guest_owns_the_pod_address_and_restarts_cleanly";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(1);
    let id = "net-restart";
    let tap = network::tap_name(id);
    // A stale tap of ours (a crash before delete), owned by someone else,
    // and an unrelated tap whose name merely contains "tap".
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "tuntap",
        "add",
        "dev",
        &tap,
        "mode",
        "tap",
        "user",
        "4242",
    ]);
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "tuntap",
        "add",
        "dev",
        "mytap0",
        "mode",
        "tap",
    ]);
    let env = Env::new(LINUX_CONFIG);
    let ts = ts_config(&env, LINUX_CONFIG);
    let bundle = serve_bundle(&pod.pod.path());
    let b = bundle.write();
    let _c = DeleteOnDrop(&env, id);

    for round in 1..=2 {
        let pid = start_serving(&env, &b, id);
        let out = env.out(id);
        assert_eq!(
            marker_lines(&out, "URUNC-NET"),
            [format!(
                "URUNC-NET ip={}/24 gw={} dns={DNS} mac={}",
                pod.ip, pod.gw, pod.mac
            )],
            "round {round}:\n{out}"
        );
        // Our tap (the stale one was replaced: owner 0 now, vnet header on).
        let d = String::from_utf8_lossy(&pod.pod.ip(&["-d", "link", "show", "dev", &tap]).stdout)
            .into_owned();
        assert!(
            d.contains("tun type tap") && d.contains("vnet_hdr on"),
            "round {round}: {d}"
        );
        assert_eq!(pod.pod.sys(&tap, "owner"), "0", "round {round}: {d}");
        let f = pod.pod.tc(&["filter", "show", "dev", "eth0", "ingress"]);
        assert!(
            f.contains(&format!("Redirect to device {tap}")),
            "round {round}: {f}"
        );
        let f = pod.pod.tc(&["filter", "show", "dev", &tap, "ingress"]);
        assert!(f.contains("Redirect to device eth0"), "round {round}: {f}");
        assert!(
            pod.ping(10),
            "round {round}: the guest does not answer ping at {}",
            pod.ip
        );
        let hello = pod.tcp_hello();
        assert!(
            hello.contains("hello from urunc guest"),
            "round {round}: TCP 8080 answered {hello:?}"
        );

        stop(&env, id, pid);
        // The answers came from the guest: with it gone, eth0's traffic
        // still goes to the (now unread) tap and nothing answers.
        assert!(
            !pod.ping_once(),
            "round {round}: ping answered with the guest dead"
        );
        env.ok(&["delete", id]);
        assert_eq!(
            pod.leftovers(),
            "",
            "round {round}: left in the pod after delete"
        );
        assert!(
            pod.pod.has_link("mytap0"),
            "round {round}: mytap0 was touched"
        );
        assert!(pod.pod.has_link("eth0"));
        assert!(!env.state_dir(id).exists());
    }
    let us = network_step_us(&ts);
    assert_eq!(us.len(), 2, "timestamps: {us:?}");
    println!(
        "network step (TS11->TS12): {:.0} µs replacing the stale tap, {:.0} µs on restart",
        us[0], us[1]
    );
}

/// Two pods, two guests at once, both reachable. The second runs its
/// monitor as uid/gid 1000 (the tap is owned by the container's user, so
/// QEMU may attach to it unprivileged) and has no resolv.conf, so its
/// guest gets the config's `dns_fallback`.
#[test]
fn two_pods_at_once() {
    let t = "two_pods_at_once";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let (a, b) = (Pod::new(2), Pod::new(3));
    let fallback = "10.200.99.54";
    let env = Env::new(&format!("dns_fallback = \"{fallback}\"\n{LINUX_CONFIG}"));
    let ba = serve_bundle(&a.pod.path());
    let mut bb = linux_bundle(&["/init", "serve"]);
    bb.netns(&b.pod.path());
    bb.spec["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    let _ca = DeleteOnDrop(&env, "net-a");
    let _cb = DeleteOnDrop(&env, "net-b");
    let pa = env.create(&ba.write(), "net-a", &[]);
    let pb = env.create(&bb.write(), "net-b", &[]);
    env.ok(&["start", "net-a"]);
    env.ok(&["start", "net-b"]);
    for (id, pod, dns) in [("net-a", &a, DNS), ("net-b", &b, fallback)] {
        assert!(
            env.wait_out(id, "URUNC-SERVING", Duration::from_secs(120)),
            "{id}:\n{}\n{}",
            env.out(id),
            env.err(id)
        );
        assert_eq!(
            marker_lines(&env.out(id), "URUNC-NET"),
            [format!(
                "URUNC-NET ip={}/24 gw={} dns={dns} mac={}",
                pod.ip, pod.gw, pod.mac
            )],
            "{id}:\n{}",
            env.out(id)
        );
    }
    let tap_b = network::tap_name("net-b");
    assert_eq!(b.pod.sys(&tap_b, "owner"), "1000");
    let status = std::fs::read_to_string(format!("/proc/{pb}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.split_whitespace().skip(1).all(|u| u == "1000"), "{uid}");
    for (id, pod) in [("net-a", &a), ("net-b", &b)] {
        assert!(pod.ping(10), "{id} does not answer ping");
        let hello = pod.tcp_hello();
        assert!(
            hello.contains("hello from urunc guest"),
            "{id}: TCP 8080 answered {hello:?}"
        );
    }
    stop(&env, "net-a", pa);
    stop(&env, "net-b", pb);
    env.ok(&["delete", "net-a"]);
    env.ok(&["delete", "net-b"]);
    assert_eq!(a.leftovers(), "");
    assert_eq!(b.leftovers(), "");
}

#[test]
fn no_interface_means_no_nic_and_no_ip_words() {
    let t = "no_interface_means_no_nic_and_no_ip_words";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let ns = Netns::new("empty");
    let env = Env::new(LINUX_CONFIG);
    let mut b = linux_bundle(&["/init", "print"]);
    b.netns(&ns.path());
    let bundle = b.write();
    let id = "net-none";
    let _c = DeleteOnDrop(&env, id);
    let pid = env.create(&bundle, id, &[]);
    env.ok(&["start", id]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(90)),
        Some(0),
        "{}\n{}",
        env.out(id),
        env.err(id)
    );
    let out = env.out(id);
    assert_eq!(marker_lines(&out, "URUNC-NET"), ["URUNC-NET none"], "{out}");
    let cmdline = marker_lines(&out, "URUNC-INIT cmdline:");
    assert_eq!(cmdline.len(), 1, "{out}");
    assert!(!cmdline[0].contains("ip="), "{}", cmdline[0]);
    env.ok(&["delete", id]);
    let links = String::from_utf8_lossy(&ns.ip(&["-o", "link", "show"]).stdout).into_owned();
    assert_eq!(links.lines().count(), 1, "only lo expected: {links}");
}

#[test]
fn addressless_eth0_fails_start_and_leaves_nothing() {
    let t = "addressless_eth0_fails_start_and_leaves_nothing";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(4);
    must(&["ip", "-n", &pod.pod.name, "addr", "flush", "dev", "eth0"]);
    let env = Env::new(LINUX_CONFIG);
    let bundle = serve_bundle(&pod.pod.path());
    let id = "net-noaddr";
    let _c = DeleteOnDrop(&env, id);
    let pid = env.create(&bundle.write(), id, &[]);
    let o = env.urunc(&["start", id]);
    assert!(!o.status.success(), "start succeeded: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("interface eth0 has no IPv4 address"), "{err}");
    // The waiting process gave up: nothing runs, the state says stopped.
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(1));
    assert_eq!(env.status(id), "stopped");
    assert_eq!(pod.leftovers(), "");
    env.ok(&["delete", id]);
    assert!(!env.state_dir(id).exists());
    assert!(no_process_with(&bundle.path().display().to_string()));
}

/// urunc's network steps called directly in a pod namespace: what
/// discover finds, what setup creates (tap owner, MTU, filters), stale and
/// live taps of other containers, teardown without the interface name,
/// the errors; and the step's time over many runs.
#[test]
fn netlink_steps_in_a_pod() {
    let t = "netlink_steps_in_a_pod";
    if !(need_root(t) && need_bin(t, "ip") && need_bin(t, "tc")) {
        return;
    }
    let _g = serial();
    let pod = Pod::new(5);
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "link",
        "set",
        "eth0",
        "mtu",
        "1400",
    ]);
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "tuntap",
        "add",
        "dev",
        "mytap0",
        "mode",
        "tap",
    ]);
    let tap = network::tap_name("steps");
    let facts = pod
        .pod
        .enter(network::discover)
        .unwrap()
        .expect("eth0 found");
    assert_eq!(facts.ifname, "eth0");
    assert_eq!(facts.ip.to_string(), pod.ip);
    assert_eq!(facts.prefix, 24);
    assert_eq!(facts.gateway.map(|g| g.to_string()), Some(pod.gw.clone()));
    let mac: Vec<String> = facts.mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(mac.join(":"), pod.mac);
    assert_eq!(facts.mtu, 1400);

    pod.pod
        .enter(|| network::setup(&facts, &tap, 1000, 1001))
        .unwrap();
    let d = String::from_utf8_lossy(&pod.pod.ip(&["-d", "link", "show", "dev", &tap]).stdout)
        .into_owned();
    for want in [
        "mtu 1400",
        "tun type tap",
        "pi off",
        "vnet_hdr on",
        "persist on",
        ",UP",
    ] {
        assert!(d.contains(want), "{want:?} not in {d}");
    }
    assert_eq!(
        (pod.pod.sys(&tap, "owner"), pod.pod.sys(&tap, "group")),
        ("1000".into(), "1001".into()),
        "{d}"
    );
    assert_eq!(
        pod.pod.sys(&tap, "tun_flags"),
        "0x5802",
        "IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_PERSIST: {d}"
    );
    let f = pod.pod.tc(&["filter", "show", "dev", "eth0", "ingress"]);
    assert!(
        f.contains("u32")
            && f.contains(&format!("Redirect to device {tap}"))
            && f.contains("match 00000000/00000000 at 0"),
        "{f}"
    );
    println!("{f}");
    // discover ignores our taps, even with eth0 gone from the picture.
    let again = pod.pod.enter(network::discover).unwrap();
    assert_eq!(again.as_ref(), Some(&facts));

    // Another container's tap that no monitor holds (stale) is replaced;
    // one that a monitor holds makes setup refuse eth0.
    let other = network::tap_name("steps-other");
    pod.pod
        .enter(|| network::setup(&facts, &other, 0, 0))
        .unwrap();
    assert!(!pod.pod.has_link(&tap), "stale tap {tap} not removed");
    let held = pod.pod.enter(|| {
        // SAFETY: plain open/ioctl on a valid ifreq-sized buffer.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR) };
        assert!(fd >= 0);
        let mut req = [0u8; 40];
        req[..other.len()].copy_from_slice(other.as_bytes());
        req[16..18].copy_from_slice(
            &((libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16).to_ne_bytes(),
        );
        // SAFETY: TUNSETIFF with a struct-ifreq-sized buffer.
        assert_eq!(
            unsafe { libc::ioctl(fd, libc::TUNSETIFF, req.as_ptr()) },
            0,
            "{}",
            std::io::Error::last_os_error()
        );
        let r = network::setup(&facts, &tap, 0, 0);
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        r
    });
    let e = held.unwrap_err().to_string();
    assert!(e.contains("eth0") && e.contains(&other), "{e}");
    assert!(!pod.pod.has_link(&tap), "refused setup left {tap}");

    pod.pod.enter(|| network::teardown(&other, None)).unwrap();
    assert_eq!(pod.leftovers(), "");
    assert!(pod.pod.has_link("mytap0"));
    // Teardown of what is not there is fine.
    pod.pod.enter(|| network::teardown(&other, None)).unwrap();
    pod.pod
        .enter(|| network::teardown(&other, Some("eth0")))
        .unwrap();

    // The network step's time: discover + setup, as start runs them.
    let mut us = Vec::new();
    for _ in 0..30 {
        let d = pod.pod.enter(|| {
            let t0 = Instant::now();
            let f = network::discover().unwrap().unwrap();
            network::setup(&f, &tap, 0, 0).unwrap();
            let d = t0.elapsed();
            network::teardown(&tap, Some("eth0")).unwrap();
            d
        });
        us.push(d.as_secs_f64() * 1e6);
    }
    println!(
        "network step (discover + setup) over {} runs: median {:.0} µs, max {:.0} µs",
        us.len(),
        median(&mut us),
        us.last().unwrap()
    );
    assert_eq!(pod.leftovers(), "");

    // A failing step (a tap cannot take veth's largest MTU, 65535 > 65521)
    // names the step and both interfaces, and undoes the rest of the batch
    // (the qdiscs and filters were created after the failed step).
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "link",
        "set",
        "eth0",
        "mtu",
        "65535",
    ]);
    let big = pod.pod.enter(network::discover).unwrap().unwrap();
    assert_eq!(big.mtu, 65535);
    let e = pod
        .pod
        .enter(|| network::setup(&big, &tap, 0, 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MTU 65535") && e.contains("eth0") && e.contains(&tap),
        "{e}"
    );
    println!("failed setup: {e}");
    assert_eq!(pod.leftovers(), "", "after the failed setup");
    must(&[
        "ip",
        "-n",
        &pod.pod.name,
        "link",
        "set",
        "eth0",
        "mtu",
        "1500",
    ]);

    // Errors: no IPv4 address; several interfaces and no eth0; only lo.
    must(&["ip", "-n", &pod.pod.name, "addr", "flush", "dev", "eth0"]);
    let e = pod.pod.enter(network::discover).unwrap_err().to_string();
    assert!(e.contains("interface eth0 has no IPv4 address"), "{e}");
    let two = Netns::new("two");
    must(&[
        "ip", "-n", &two.name, "link", "add", "a0", "type", "veth", "peer", "name", "a1",
    ]);
    let e = two.enter(network::discover).unwrap_err().to_string();
    assert!(
        e.contains("a0") && e.contains("a1") && e.contains("eth0"),
        "{e}"
    );
    let empty = Netns::new("lo");
    assert_eq!(empty.enter(network::discover).unwrap(), None);
}

/// The network step's time as urunc's timestamps record it (TS11→TS12)
/// over several starts of the tiny test kernel (as a Unikraft guest, so
/// the network reaches its command line as `netdev.ip=`).
#[test]
fn network_step_time_over_starts() {
    let t = "network_step_time_over_starts";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(6);
    let env = Env::new(LINUX_CONFIG);
    let cfg = "[monitors.qemu]\naccel = \"kvm-tcg\"\nmachine = \"pc\"\n";
    let ts = ts_config(&env, cfg);
    let fx = fixtures();
    let mut b = Bundle::new();
    b.add_file(&fx.join("testkernel.elf"), "/unikernel/kernel")
        .unikernel("unikraft", "qemu", "/unikernel/kernel")
        .args(&["app", "x"]);
    b.netns(&pod.pod.path());
    std::fs::create_dir_all(b.rootfs().join("etc")).unwrap();
    std::fs::write(
        b.rootfs().join("etc/resolv.conf"),
        format!("nameserver {DNS}\n"),
    )
    .unwrap();
    let bundle = b.write();
    let want = format!("netdev.ip={}/24:{}:{DNS}", pod.ip, pod.gw);
    for i in 0..9 {
        let id = format!("net-time-{i}");
        let _c = DeleteOnDrop(&env, &id);
        let pid = env.create(&bundle, &id, &[]);
        env.ok(&["start", &id]);
        assert_eq!(
            wait_exit(pid, Duration::from_secs(60)),
            Some(0),
            "{}\n{}",
            env.out(&id),
            env.err(&id)
        );
        let out = env.out(&id);
        let cmd = marker_lines(&out, "URUNC-TESTKERNEL cmdline:");
        assert!(
            cmd.len() == 1 && cmd[0].contains(&want),
            "{want} not in {out}"
        );
        env.ok(&["delete", &id]);
        assert_eq!(pod.leftovers(), "", "after {id}");
    }
    let mut us = network_step_us(&ts);
    assert_eq!(us.len(), 9, "{us:?}");
    let m = median(&mut us);
    println!("network step (TS11->TS12) over {} starts: median {m:.0} µs, min {:.0}, max {:.0} (sorted: {us:.0?})", us.len(), us[0], us[us.len() - 1]);
}

/// A container without a network namespace of its own runs in the
/// runtime's (host networking): start refuses rather than redirect the
/// runtime's eth0 into the guest. The "runtime's namespace" here is one
/// made by the test (urunc runs under `ip netns exec`), so a failure cannot
/// take the real host's network.
#[test]
fn host_networking_is_refused() {
    let t = "host_networking_is_refused";
    if !need_net_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(7);
    let env = Env::new(LINUX_CONFIG);
    let mut b = serve_bundle(&pod.pod.path());
    b.spec["linux"]["namespaces"] =
        serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]);
    let bundle = b.write();
    let id = "net-host";
    let _c = DeleteOnDrop(&env, id);
    let urunc_in_pod = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &pod.pod.name])
            .arg(urunc_bin())
            .env("URUNC_CONFIG", &env.config);
        c.arg("--root")
            .arg(&env.root)
            .arg("--log")
            .arg(&env.log)
            .args(["--log-format", "json"])
            .args(args);
        c.stdin(Stdio::null());
        c
    };
    let pidfile = env.dir.path().join("host.pid");
    let st = urunc_in_pod(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        pidfile.to_str().unwrap(),
        id,
    ])
    .stdout(std::fs::File::create(env.out_path(id)).unwrap())
    .stderr(std::fs::File::create(env.dir.path().join(format!("{id}.err"))).unwrap())
    .status()
    .unwrap();
    assert!(st.success(), "create: {}", env.err(id));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let o = urunc_in_pod(&["start", id]).output().unwrap();
    assert!(!o.status.success(), "start succeeded: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("shares the runtime's network namespace"),
        "{err}"
    );
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(1));
    assert_eq!(pod.leftovers(), "");
    env.ok(&["delete", id]);
}

/// `delete` after the pod's namespace is gone succeeds and leaves the
/// runtime's own namespace alone, even a device there named like the
/// container's tap. (urunc runs under `ip netns exec` in a namespace made
/// by the test, standing in for the runtime's.)
#[test]
fn delete_after_the_pod_namespace_is_gone() {
    let t = "delete_after_the_pod_namespace_is_gone";
    if !(need_root(t) && need_bin(t, "ip")) {
        return;
    }
    let _g = serial();
    subreaper();
    let rt = Netns::new("rt");
    let pod = Netns::new("gone");
    let env = Env::new(LINUX_CONFIG);
    let bundle = serve_bundle(&pod.path());
    let id = "net-gone";
    let _c = DeleteOnDrop(&env, id);
    let tap = network::tap_name(id);
    must(&[
        "ip", "-n", &rt.name, "tuntap", "add", "dev", &tap, "mode", "tap",
    ]);
    let pid = env.create(&bundle.write(), id, &[]);
    must(&["ip", "netns", "del", &pod.name]);
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &rt.name])
        .arg(urunc_bin())
        .env("URUNC_CONFIG", &env.config);
    c.arg("--root")
        .arg(&env.root)
        .arg("--log")
        .arg(&env.log)
        .args(["--log-format", "json", "delete", id]);
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "delete: {}", text(&o));
    assert!(
        wait_exit(pid, Duration::from_secs(30)).is_some(),
        "the waiting process survived delete"
    );
    assert!(!env.state_dir(id).exists());
    assert!(
        rt.has_link(&tap),
        "delete removed {tap} from the runtime's namespace"
    );
}

/// vhost-net (the Go urunc's v0.7 feature): where the host has
/// /dev/vhost-net, QEMU's tap gets `vhost=on` by default, the node is
/// visible in the monitor's sandbox root and opened by QEMU, and the guest
/// still owns the pod's address (ping, TCP); `vhost = false` in the config
/// turns it off.
#[test]
fn vhost_net_by_default_where_the_host_has_it() {
    let t = "vhost_net_by_default_where_the_host_has_it";
    if !need_net_tools(t) {
        return;
    }
    if !std::path::Path::new("/dev/vhost-net").exists() {
        println!("SKIP: {t}: /dev/vhost-net absent (modprobe vhost_net; this kernel may lack it)");
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(8);
    for (round, extra) in [(1, ""), (2, "vhost = false\n")] {
        let env = Env::new(&format!("{LINUX_CONFIG}{extra}"));
        let id = format!("vhost{round}");
        let b = serve_bundle(&pod.pod.path()).write();
        let _c = DeleteOnDrop(&env, &id);
        let pid = start_serving(&env, &b, &id);
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        let opened = fds.iter().any(|f| f == "/dev/vhost-net");
        if round == 1 {
            assert!(argv.contains(",vhost=on"), "{argv}");
            assert!(opened, "QEMU has no /dev/vhost-net open: {fds:?}");
        } else {
            assert!(!argv.contains("vhost=on"), "{argv}");
            assert!(!opened, "{fds:?}");
        }
        assert!(pod.ping(10), "round {round}: no ping reply from {}", pod.ip);
        let hello = pod.tcp_hello();
        assert!(
            hello.contains("hello from urunc guest"),
            "round {round}: {hello:?}"
        );
        stop(&env, &id, pid);
        env.ok(&["delete", &id]);
        assert_eq!(pod.leftovers(), "", "round {round}");
    }
}

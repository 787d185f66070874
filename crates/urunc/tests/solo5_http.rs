//! HTTP from a peer namespace to a Solo5 unikernel through urunc's tap
//! and tc redirect: tests/fixtures/solo5-ping's `http` fixture (a
//! stateless TCP/HTTP responder standing in for a MirageOS web server) on
//! solo5-spt, solo5-hvt, and on QEMU as Solo5's virtio target with a
//! virtio-net device — the guest bench/netpath.sh measures.
//!
//! Needs root, ip, tc, the tender (or qemu-system-x86_64) and the Solo5
//! toolchain (`/opt/solo5-src` or `$PATH`) to build the fixture; each test
//! prints `SKIP: <test>: <reason>` when one is missing.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;
use support::netns::{self, Netns};
use support::*;

const BODY: &str = "hello from urunc solo5-http\n";

/// `GET /` over a new connection from inside `peer`: the whole response.
fn get(peer: &Netns, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    peer.enter(|| {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: guest\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        Ok(r)
    })
}

/// Runs the fixture `kernel` for monitor `hv` in a pod namespace with a
/// peer, checks urunc's tc redirect on eth0 and a few HTTP requests from
/// the peer, then kills it. `config` is urunc's config.toml.
fn serves_http(test: &str, kernel: &Path, hv: &str, config: &str) {
    let (pod, peer) = netns::pod_with_peer("10.0.0.2", "10.0.0.1");
    let env = Env::new(config);
    let mut b = Bundle::new();
    b.add_file(kernel, "/unikernel/http")
        .unikernel("mirage", hv, "/unikernel/http")
        .memory_mib(32)
        .netns(&pod.path());
    let id = format!("http-{hv}");
    subreaper();
    let pid = env.create(&b.write(), &id, &[]);
    let _guard = DeleteOnDrop(&env, &id);
    let o = env.urunc(&["start", &id]);
    if !o.status.success() && text(&o).contains("no network interface") {
        println!(
            "SKIP: {test}: urunc found no network in the pod namespace: {}",
            text(&o)
        );
        return;
    }
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        env.wait_out(&id, "URUNC-SOLO5-HTTP port 80", Duration::from_secs(60)),
        "{}{}",
        env.out(&id),
        env.err(&id)
    );
    // The pod's traffic goes to the guest's tap by tc, not through a bridge.
    let f = pod.tc(&["filter", "show", "dev", "eth0", "ingress"]);
    assert!(f.contains("Redirect to device"), "eth0 ingress: {f}");
    for i in 0..5 {
        let r = get(&peer, "10.0.0.2:80")
            .unwrap_or_else(|e| panic!("request {i} from the peer: {e}\nguest:\n{}", env.out(&id)));
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "request {i}: {r:?}");
        assert!(
            r.ends_with(&format!("\r\n\r\n{BODY}")),
            "request {i}: {r:?}"
        );
    }
    let out = env.out(&id);
    assert_eq!(
        marker_lines(&out, "URUNC-SOLO5-HTTP cmdline:"),
        ["URUNC-SOLO5-HTTP cmdline: --ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-SOLO5-HTTP first request:"),
        ["URUNC-SOLO5-HTTP first request: GET / HTTP/1.0"],
        "{out}"
    );
    // A port nothing listens on: the stateless guest stays silent, so the
    // connection times out rather than being answered.
    let addr: SocketAddr = "10.0.0.2:81".parse().unwrap();
    let other = peer.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)));
    assert!(other.is_err(), "port 81 answered");
    env.ok(&["kill", &id, "KILL"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(137));
    env.ok(&["delete", &id]);
    // The redirect and the tap went with the container.
    let f = pod.tc(&["filter", "show", "dev", "eth0", "ingress"]);
    assert!(f.trim().is_empty(), "eth0 ingress after delete: {f}");
    assert_eq!(pod.links(), ["lo", "eth0"], "links after delete");
}

/// Builds the fixtures into a temp dir: http.<target>, or None (SKIP).
fn http_fixture(test: &str, dir: &Path, target: &str) -> Option<std::path::PathBuf> {
    build_fixture(test, "solo5-ping", dir)?;
    Some(dir.join(format!("http.{target}")))
}

#[test]
fn http_from_a_peer_through_tap_and_tc_on_solo5() {
    for target in ["spt", "hvt"] {
        let test = format!("http_from_a_peer_through_tap_and_tc_on_solo5_{target}");
        if !need_root(&test)
            || !need_bin(&test, &format!("solo5-{target}"))
            || !need_bin(&test, "ip")
            || !need_bin(&test, "tc")
        {
            continue;
        }
        if target == "hvt" && !Path::new("/dev/kvm").exists() {
            println!("SKIP: {test}: no /dev/kvm");
            continue;
        }
        let build = tempfile::tempdir().unwrap();
        let Some(k) = http_fixture(&test, build.path(), target) else {
            return;
        };
        serves_http(&test, &k, target, "");
    }
}

/// MirageOS on QEMU: Solo5's virtio target, the pod's tap as a virtio-net
/// device (vhost-net where the host has /dev/vhost-net).
#[test]
fn http_from_a_peer_through_tap_and_tc_on_qemu() {
    let test = "http_from_a_peer_through_tap_and_tc_on_qemu";
    if !need_qemu(test) || !need_bin(test, "ip") || !need_bin(test, "tc") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let Some(k) = http_fixture(test, build.path(), "virtio") else {
        return;
    };
    // Solo5's virtio boot code sets MXCSR (an SSE instruction) before
    // main, which this host's nested KVM cannot emulate ("KVM internal
    // error. Suberror: 1" at `ldmxcsr`): TCG.
    let cfg = "[monitors.qemu]\naccel = \"tcg\"\nmachine = \"pc\"\ncpu = \"max\"\n";
    serves_http(test, &k, "qemu", cfg);
}

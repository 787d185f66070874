//! The shared network mode (SPEC §7, several containers in one pod) for
//! real: a "pod" namespace whose eth0 is a veth to a "peer" namespace (the
//! gateway, the outside world), Linux fixture guests under QEMU TCG, and
//! "sidecars" that are plain busybox processes in the pod namespace. The
//! pod IP stays on eth0; urunc's nftables table forwards each guest's
//! ports. Needs root, QEMU, `ip`, `nft` (only to look), busybox.

mod support;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use support::netns::{must, pod_with_peer, run, Netns};
use support::*;
use urunc_core::network;

static SERIAL: Mutex<()> = Mutex::new(());
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn need_tools(test: &str) -> bool {
    need_qemu(test)
        && need_bin(test, "ip")
        && need_bin(test, "nft")
        && need_bin(test, "busybox")
        && need_bin(test, "curl")
}

/// Pod namespace (eth0 10.201.N.2/24, default via .1) and its peer.
struct Pod {
    pod: String,
    peer: String,
    /// The namespaces named `pod` and `peer`, deleted on drop.
    _ns: (Netns, Netns),
    ip: String,
    gw: String,
    procs: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Pod {
    fn new(n: u8) -> Pod {
        let (ip, gw) = (format!("10.201.{n}.2"), format!("10.201.{n}.1"));
        let ns = pod_with_peer(&ip, &gw);
        Pod {
            pod: ns.0.name.clone(),
            peer: ns.1.name.clone(),
            _ns: ns,
            ip,
            gw,
            procs: vec![],
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.pod)
    }

    fn exec(ns: &str, args: &[&str]) -> Output {
        let mut a = vec!["ip", "netns", "exec", ns];
        a.extend_from_slice(args);
        run(&a)
    }

    /// busybox httpd in namespace `ns` on `port`, serving `/index.html` = `body`.
    fn httpd(&mut self, ns: &str, port: u16, body: &str) {
        let d = self.dir.path().join(format!("www{port}{ns}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("index.html"), format!("{body}\n")).unwrap();
        let c = Command::new("ip")
            .args(["netns", "exec", ns, "busybox", "httpd", "-f", "-p"])
            .arg(port.to_string())
            .arg("-h")
            .arg(&d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.push(c);
        std::thread::sleep(Duration::from_millis(200));
    }

    /// `curl` of `url` from namespace `ns`, retried; the body or "".
    /// (The host's busybox wget crashes on Debian 12.)
    fn fetch(ns: &str, url: &str) -> String {
        for _ in 0..15 {
            let o = Self::exec(ns, &["curl", "-sf", "-m", "3", url]);
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).trim().to_string();
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        String::new()
    }

    /// One TCP exchange with the guest fixture (`nc`), retried.
    fn hello(ns: &str, ip: &str, port: u16) -> String {
        let mut last = String::new();
        for _ in 0..15 {
            let o = Self::exec(ns, &["busybox", "nc", "-w", "3", ip, &port.to_string()]);
            last = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if last.contains("hello from urunc guest") {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        last
    }

    fn sysctl(&self, key: &str) -> String {
        let o = Self::exec(&self.pod, &["cat", &format!("/proc/sys/{key}")]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// What is left of urunc in the pod: taps, nft tables, tc ingress.
    fn leftovers(&self) -> String {
        let mut s = String::new();
        let links = must(&["ip", "-n", &self.pod, "-o", "link", "show"]);
        for l in links.lines().filter(|l| l.contains(": urunc")) {
            s += &format!("link: {l}\n");
        }
        let t = Self::exec(&self.pod, &["nft", "list", "tables"]);
        let t = String::from_utf8_lossy(&t.stdout).into_owned();
        if t.contains("urunc") {
            s += &format!("nft: {t}\n");
        }
        let q = must(&["ip", "-n", &self.pod, "-o", "addr", "show"]);
        for l in q.lines().filter(|l| l.contains("169.254.")) {
            s += &format!("addr: {l}\n");
        }
        s
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Ctr<'a> {
    env: &'a Env,
    id: String,
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        if self.env.state_dir(&self.id).exists() {
            let _ = self.env.urunc(&["delete", "--force", &self.id]);
        }
    }
}

/// The Linux fixture serving `args` (`serve PORT URL...`) in the pod.
fn guest(pod: &Pod, args: &[&str], annotations: &[(&str, &str)], env: &[&str]) -> Bundle {
    let mut b = linux_bundle(args);
    b.netns(&pod.path());
    for (k, v) in annotations {
        b.annotate(k, v);
    }
    if !env.is_empty() {
        b.env(env);
    }
    std::fs::create_dir_all(b.rootfs().join("etc")).unwrap();
    std::fs::write(
        b.rootfs().join("etc/resolv.conf"),
        "nameserver 10.201.99.53\n",
    )
    .unwrap();
    b.write();
    b
}

fn start_serving(env: &Env, b: &Bundle, id: &str) -> i32 {
    let pid = env.create(&b.write(), id, &[]);
    env.ok(&["start", id]);
    assert!(
        env.wait_out(id, "URUNC-SERVING", Duration::from_secs(120)),
        "{id} did not serve:\n{}\n{}",
        env.out(id),
        env.err(id)
    );
    pid
}

fn stop_delete(env: &Env, id: &str, pid: i32) {
    env.ok(&["kill", id, "KILL"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(30)), Some(137));
    env.ok(&["delete", id]);
}

/// Knative's pair: `user-container` (a unikernel, shared mode picked by
/// its name, port from `PORT`) beside a sidecar process playing
/// queue-proxy. Everyone keeps the pod IP: the peer reaches both, both
/// reach the gateway, and they reach each other through the pod IP (and
/// the sidecar through 127.0.0.1, as queue-proxy dials it).
#[test]
fn unikernel_and_sidecar_share_the_pod_ip() {
    let t = "unikernel_and_sidecar_share_the_pod_ip";
    if !need_root(t) || !need_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let mut pod = Pod::new(1);
    let (peer, podns) = (pod.peer.clone(), pod.pod.clone());
    pod.httpd(&peer, 8000, "from the gateway");
    pod.httpd(&podns, 9090, "from the sidecar");
    let forward_before = pod.sysctl("net/ipv4/ip_forward");
    let env = Env::new(LINUX_CONFIG);
    let id = "sh-user";
    let gw_url = format!("http://{}:8000/", pod.gw);
    let side_url = format!("http://{}:9090/", pod.ip);
    let (gw_hp, side_hp) = (format!("{}:8000", pod.gw), format!("{}:9090", pod.ip));
    let b = guest(
        &pod,
        &["/init", "serve", "8080", &gw_hp, &side_hp],
        &[("io.kubernetes.cri.container-name", "user-container")],
        &["PORT=8080"],
    );
    let _c = Ctr {
        env: &env,
        id: id.into(),
    };
    let pid = start_serving(&env, &b, id);
    let out = env.out(id);
    let net = marker_lines(&out, "URUNC-NET");
    println!("guest: {net:?}");
    assert!(
        net.len() == 1
            && net[0]
                .starts_with("URUNC-NET ip=169.254.100.2/30 gw=169.254.100.1 dns=10.201.99.53"),
        "{out}"
    );
    let tap = network::tap_name(id);
    let table = must(&[
        "ip",
        "netns",
        "exec",
        &podns,
        "nft",
        "list",
        "table",
        "ip",
        "urunc-sh-user",
    ]);
    println!("{table}");
    assert!(table.contains("dnat to 169.254.100.2"), "{table}");
    assert_eq!(pod.sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(
        pod.sysctl(&format!("net/ipv4/conf/{tap}/route_localnet")),
        "1"
    );
    // No tc on eth0: the sidecar keeps it.
    let q = must(&[
        "ip", "netns", "exec", &podns, "tc", "qdisc", "show", "dev", "eth0",
    ]);
    assert!(!q.contains("ingress"), "{q}");

    // peer → pod IP: the guest's port and the sidecar's.
    let h = Pod::hello(&peer, &pod.ip, 8080);
    println!("peer -> {}:8080: {h}", pod.ip);
    assert!(h.contains("hello from urunc guest"), "{h:?}");
    let s = Pod::fetch(&peer, &side_url);
    println!("peer -> {side_url}: {s}");
    assert_eq!(s, "from the sidecar");
    // sidecar → gateway, → the guest through the pod IP and 127.0.0.1.
    let s = Pod::fetch(&podns, &gw_url);
    println!("sidecar -> {gw_url}: {s}");
    assert_eq!(s, "from the gateway");
    for ip in [pod.ip.as_str(), "127.0.0.1"] {
        let h = Pod::fetch(&podns, &format!("http://{ip}:8080/"));
        println!("sidecar -> {ip}:8080: {h}");
        assert_eq!(h, "hello from urunc guest");
    }
    // guest → gateway and → sidecar through the pod IP (it printed them).
    assert!(env.wait_out(
        id,
        &format!("URUNC-FETCH {side_hp}"),
        Duration::from_secs(60)
    ));
    let f = marker_lines(&env.out(id), "URUNC-FETCH");
    println!("guest: {f:?}");
    assert_eq!(
        f,
        [
            format!("URUNC-FETCH {gw_hp} from the gateway"),
            format!("URUNC-FETCH {side_hp} from the sidecar"),
        ]
    );

    stop_delete(&env, id, pid);
    assert_eq!(pod.leftovers(), "", "left in the pod after delete");
    assert_eq!(pod.sysctl("net/ipv4/ip_forward"), forward_before);
    assert_eq!(Pod::fetch(&peer, &side_url), "from the sidecar");
}

/// Two unikernels in one pod on distinct ports, a third asking for a port
/// already served is refused at create (naming the port and the other
/// container), a tc one is refused next to them, and restarting one keeps
/// the other serving.
#[test]
fn two_unikernels_one_pod() {
    let t = "two_unikernels_one_pod";
    if !need_root(t) || !need_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(2);
    let peer = pod.peer.clone();
    let (env, ts) = ts_env();
    let shared = |ports: &'static str| -> [(&'static str, &'static str); 2] {
        [
            ("com.urunc.network.mode", "shared"),
            ("com.urunc.network.ports", ports),
        ]
    };
    let a = guest(&pod, &["/init", "serve", "8080"], &shared("8080/tcp"), &[]);
    // b's port comes from the image: /urunc.json, base64 like the metadata.
    let b = guest(
        &pod,
        &["/init", "serve", "8081"],
        &[("com.urunc.network.mode", "shared")],
        &[],
    );
    std::fs::write(
        b.rootfs().join("urunc.json"),
        r#"{"com.urunc.network.ports": "ODA4MS90Y3A="}"#,
    )
    .unwrap();
    let _ca = Ctr {
        env: &env,
        id: "sh-a".into(),
    };
    let _cb = Ctr {
        env: &env,
        id: "sh-b".into(),
    };
    let pa = start_serving(&env, &a, "sh-a");
    let pb = start_serving(&env, &b, "sh-b");
    let na = marker_lines(&env.out("sh-a"), "URUNC-NET");
    let nb = marker_lines(&env.out("sh-b"), "URUNC-NET");
    println!("a: {na:?}\nb: {nb:?}");
    assert!(na[0].contains("ip=169.254.100.2/30") && nb[0].contains("ip=169.254.100.6/30"));
    for port in [8080, 8081] {
        let h = Pod::hello(&peer, &pod.ip, port);
        println!("peer -> {}:{port}: {h}", pod.ip);
        assert!(h.contains("hello from urunc guest"), "{port}: {h:?}");
    }

    // Same port as sh-a: refused at create, nothing left.
    let c = guest(
        &pod,
        &["/init", "serve", "8080"],
        &shared("9000,8080/tcp"),
        &[],
    );
    let e = env.create_fails(&c, "sh-c");
    println!("conflict: {e}");
    assert!(e.contains("port 8080/tcp") && e.contains("sh-a"), "{e}");
    assert!(!env.state_dir("sh-c").exists());
    // tc next to shared ones: refused.
    let d = guest(
        &pod,
        &["/init", "serve", "9001"],
        &[("com.urunc.network.mode", "tc")],
        &[],
    );
    let e = env.create_fails(&d, "sh-d");
    println!("tc: {e}");
    assert!(e.contains("tc") && e.contains("shared"), "{e}");

    // Restart sh-a; sh-b keeps answering throughout.
    stop_delete(&env, "sh-a", pa);
    let h = Pod::hello(&peer, &pod.ip, 8081);
    assert!(
        h.contains("hello from urunc guest"),
        "b after a's delete: {h:?}"
    );
    let pa = start_serving(&env, &a, "sh-a");
    let na2 = marker_lines(&env.out("sh-a"), "URUNC-NET");
    println!("a again: {na2:?}");
    for port in [8080, 8081] {
        let h = Pod::hello(&peer, &pod.ip, port);
        assert!(
            h.contains("hello from urunc guest"),
            "after restart {port}: {h:?}"
        );
    }
    // Kubelet's restart: sh-b dies and stays (not deleted) while its
    // replacement sh-b2 takes the same port; the dead one's table goes at
    // sh-b2's start, and deleting the dead one later leaves sh-b2 alone.
    env.ok(&["kill", "sh-b", "KILL"]);
    assert_eq!(wait_exit(pb, Duration::from_secs(30)), Some(137));
    let _cb2 = Ctr {
        env: &env,
        id: "sh-b2".into(),
    };
    let pb2 = start_serving(&env, &b, "sh-b2");
    let tables = must(&["ip", "netns", "exec", &pod.pod, "nft", "list", "tables"]);
    println!("after sh-b2 started: {}", tables.replace('\n', "; "));
    assert!(!tables.contains("urunc-sh-b\n"), "{tables}");
    env.ok(&["delete", "sh-b"]);
    let h = Pod::hello(&peer, &pod.ip, 8081);
    assert!(
        h.contains("hello from urunc guest"),
        "b2 after b's delete: {h:?}"
    );
    stop_delete(&env, "sh-a", pa);
    stop_delete(&env, "sh-b2", pb2);
    assert_eq!(pod.leftovers(), "", "left in the pod after delete");
    assert_eq!(pod.sysctl("net/ipv4/ip_forward"), "0");
    let us = network_step_us(&ts);
    println!(
        "shared-mode network step (TS11->TS12) over {} starts: {us:?} µs",
        us.len()
    );
    assert_eq!(us.len(), 4);
}

/// Config with timestamps on; returns the timestamps file.
fn ts_env() -> (Env, PathBuf) {
    let env = Env::new(LINUX_CONFIG);
    let ts = env.dir.path().join("timestamps.jsonl");
    std::fs::write(
        &env.config,
        format!(
            "{LINUX_CONFIG}\n[timestamps]\nenabled = true\ndestination = \"{}\"\n",
            ts.display()
        ),
    )
    .unwrap();
    (env, ts)
}

/// TS11→TS12 (the network step) of every start recorded in `ts`, in µs.
fn network_step_us(ts: &PathBuf) -> Vec<u64> {
    let s = std::fs::read_to_string(ts).unwrap_or_default();
    let mut t11 = std::collections::HashMap::new();
    let mut out = vec![];
    for l in s.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let id = v["containerID"].as_str().unwrap_or_default().to_string();
        let t = v["time"].as_u64().unwrap_or_default();
        match v["timestampID"].as_str() {
            Some("TS11") => {
                t11.insert(id, t);
            }
            Some("TS12") => {
                if let Some(a) = t11.remove(&id) {
                    out.push((t - a) / 1000);
                }
            }
            _ => {}
        }
    }
    out
}

/// A pod whose first unikernel took the default (tc) mode refuses a
/// second one at create, naming the first; a table named like ours that
/// urunc did not make is left alone and start fails saying so.
#[test]
fn tc_pod_refuses_a_second_unikernel_and_foreign_tables_stay() {
    let t = "tc_pod_refuses_a_second_unikernel_and_foreign_tables_stay";
    if !need_root(t) || !need_tools(t) {
        return;
    }
    let _g = serial();
    subreaper();
    let pod = Pod::new(3);
    let env = Env::new(LINUX_CONFIG);
    let a = guest(&pod, &["/init", "serve"], &[], &[]);
    let _ca = Ctr {
        env: &env,
        id: "tc-a".into(),
    };
    env.create(&a.write(), "tc-a", &[]);
    let b = guest(
        &pod,
        &["/init", "serve", "8081"],
        &[("com.urunc.network.ports", "8081")],
        &[],
    );
    let e = env.create_fails(&b, "tc-b");
    println!("second next to tc: {e}");
    assert!(e.contains("tc-a") && e.contains("tc mode"), "{e}");
    env.ok(&["delete", "--force", "tc-a"]);

    let podns = pod.pod.clone();
    must(&[
        "ip",
        "netns",
        "exec",
        &podns,
        "nft",
        "add",
        "table",
        "ip",
        "urunc-sh-f",
    ]);
    let f = guest(
        &pod,
        &["/init", "serve"],
        &[("com.urunc.network.mode", "shared")],
        &[],
    );
    let _cf = Ctr {
        env: &env,
        id: "sh-f".into(),
    };
    env.create(&f.write(), "sh-f", &[]);
    let o = env.urunc(&["start", "sh-f"]);
    let e = text(&o);
    println!("foreign table: {e}");
    assert!(
        !o.status.success() && e.contains("urunc-sh-f") && e.contains("not urunc's"),
        "{e}"
    );
    env.ok(&["delete", "--force", "sh-f"]);
    let l = must(&["ip", "netns", "exec", &podns, "nft", "list", "tables"]);
    assert!(
        l.contains("table ip urunc-sh-f"),
        "the foreign table went: {l}"
    );
    must(&[
        "ip",
        "netns",
        "exec",
        &podns,
        "nft",
        "delete",
        "table",
        "ip",
        "urunc-sh-f",
    ]);
    assert_eq!(pod.leftovers(), "");
    assert_eq!(pod.sysctl("net/ipv4/ip_forward"), "0");
}

//! Named network namespaces made by the tests (`ip netns add`), with names
//! unique per test (process id and a counter: test binaries and the tests
//! inside one run in parallel), a pod namespace with a veth peer, and the
//! `ip`/`tc` commands run in them.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::text;

/// Runs `args[0] args[1..]`, stdin closed; panics only if it cannot start.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// [`run`], asserting success; its stdout.
pub fn must(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A named network namespace with `lo` up, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("urt{}n{n}{tag}", std::process::id());
        let _ = run(&["ip", "netns", "del", &name]);
        must(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        must(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// The path for the spec's `{"type": "network", "path": ...}`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip netns exec <ns> args...`
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["ip", "netns", "exec", &self.name];
        a.extend_from_slice(args);
        run(&a)
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut a = vec!["ip", "-n", &self.name];
        a.extend_from_slice(args);
        run(&a)
    }

    /// `ip -n <ns> args...`, asserting success; its stdout.
    pub fn must_ip(&self, args: &[&str]) -> String {
        let mut a = vec!["ip", "-n", &self.name];
        a.extend_from_slice(args);
        must(&a)
    }

    /// /sys/class/net/<dev>/<attr> as seen in the namespace.
    pub fn sys(&self, dev: &str, attr: &str) -> String {
        let o = self.exec(&["cat", &format!("/sys/class/net/{dev}/{attr}")]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.ip(&["link", "show", "dev", name]).status.success()
    }

    /// Link names in the namespace.
    pub fn links(&self) -> Vec<String> {
        let o = self.ip(&["-o", "link", "show"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// `tc args...` in the namespace; its stdout.
    pub fn tc(&self, args: &[&str]) -> String {
        let mut a = vec!["tc"];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&self.exec(&a).stdout).into_owned()
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                let ns = std::fs::File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// A pod namespace whose eth0 holds `ip`/24 with a default route via `gw`,
/// a veth to a peer namespace whose p0 holds `gw`/24: (pod, peer).
pub fn pod_with_peer(ip: &str, gw: &str) -> (Netns, Netns) {
    let (pod, peer) = (Netns::new("p"), Netns::new("q"));
    pod.must_ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", &peer.name,
    ]);
    pod.must_ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    pod.must_ip(&["link", "set", "eth0", "up"]);
    pod.must_ip(&["route", "add", "default", "via", gw]);
    peer.must_ip(&["addr", "add", &format!("{gw}/24"), "dev", "p0"]);
    peer.must_ip(&["link", "set", "p0", "up"]);
    (pod, peer)
}

//! The multi-container pod tests' steps (`cri_pods.rs`): a server on the
//! gateway side, HTTP GETs from the test's namespace and from inside a
//! container (ExecSync), the unikernel container configs, and looking at
//! the pod's network namespace.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use k8s_cri::v1::{ContainerConfig, ContainerState, ExecSyncRequest, PodSandboxConfig};

use crate::harness::{in_netns, network_leftovers, wait_for, Cri, Engine};
use crate::steps::*;
use crate::support;

/// The CNI bridge in the test's namespace: the pods' default gateway.
pub const GATEWAY: &str = "10.88.0.1";
pub const GW_PORT: u16 = 8000;
pub const GW_BODY: &str = "from the gateway";
pub const SIDE_PORT: u16 = 9090;
pub const SIDE_BODY: &str = "from the sidecar";
/// The sidecar: busybox httpd on 9090 serving SIDE_BODY.
pub const SIDECAR: &str = "/bin/busybox mkdir -p /tmp/www && echo 'from the sidecar' \
                       > /tmp/www/index.html && exec /bin/busybox httpd -f -p 9090 -h /tmp/www";

/// setup() plus `nft` (to look at urunc's tables; urunc itself speaks
/// nfnetlink).
pub fn need(test: &str, engine: Result<Option<Engine>, String>) -> Option<Engine> {
    let e = setup(test, engine)?;
    if support::which("nft").is_none() {
        println!("SKIP: {test}: nft not found (apt-get install nftables)");
        return None;
    }
    Some(e)
}

/// A server in the test's namespace (the gateway side) answering every
/// connection with an HTTP response whose body is `body`; stops on drop.
pub struct Gateway(Arc<AtomicBool>);

impl Gateway {
    pub fn start(c: &Cri, port: u16, body: &'static str) -> Gateway {
        let stop = Arc::new(AtomicBool::new(false));
        let ns = c.netns.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        thread::spawn(move || {
            let f = std::fs::File::open(&ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(
                            format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}\n")
                                .as_bytes(),
                        );
                    }
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        rx.recv().unwrap();
        Gateway(stop)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `GET /` from the test's namespace to `ip:port`, retried until the
/// answer holds `want` or `limit` passes; the last answer.
pub fn get(c: &Cri, ip: &str, port: u16, want: &str, limit: Duration) -> String {
    let ns = c.netns.path();
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let want = want.to_string();
    thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let end = std::time::Instant::now() + limit;
        let mut last = String::new();
        while std::time::Instant::now() < end {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(mut s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    last = String::from_utf8_lossy(&buf).into_owned();
                    if last.contains(&want) {
                        break;
                    }
                }
                Err(e) => last = format!("connect: {e}"),
            }
            thread::sleep(Duration::from_millis(300));
        }
        last
    })
    .join()
    .unwrap()
}

/// `GET /` to `host:port` from inside container `id` (busybox nc, through
/// ExecSync), up to `tries` times until the answer holds `want`; the last
/// answer (stdout and stderr).
pub fn get_from(c: &Cri, id: &str, host: &str, port: u16, want: &str, tries: u32) -> String {
    let script = format!(
        "/bin/busybox printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {host} {port}"
    );
    let mut last = String::new();
    for _ in 0..tries {
        let mut r = c.runtime.clone();
        last = match c.call(r.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["/bin/sh".into(), "-c".into(), script.clone()],
            timeout: 20,
        })) {
            Ok(resp) => {
                let o = resp.into_inner();
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            }
            Err(e) => format!("ExecSync: {}", e.message()),
        };
        if last.contains(want) {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    last
}

/// The last line of an answer, for the printout.
pub fn last_line(s: &str) -> &str {
    s.trim().lines().last().unwrap_or_default().trim()
}

/// The guest's `serve PORT HOST:PORT...` (serve, then GET each).
pub fn serving(mut cfg: ContainerConfig, args: &[&str]) -> ContainerConfig {
    cfg.args = std::iter::once("serve")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    cfg
}

/// A unikernel container: the bare image's metadata plus `extra`, as
/// container annotations.
pub fn unikernel(name: &str, attempt: u32, extra: &[(&str, &str)]) -> ContainerConfig {
    let meta = guest_metadata(false);
    let mut ann = refs(&meta);
    ann.extend_from_slice(extra);
    guest(name, attempt, BARE, &ann)
}

/// The guest's `URUNC-NET …` line from its CRI log, waited for.
pub fn net_line(c: &Cri, id: &str) -> String {
    wait_for(Duration::from_secs(30), || {
        log_of(c, id).contains("URUNC-NET")
    });
    let log = log_of(c, id);
    log.lines()
        .find_map(|l| l.find("URUNC-NET").map(|i| l[i..].to_string()))
        .unwrap_or_else(|| format!("no URUNC-NET in: {log}"))
}

pub fn sysctl(netns: &std::path::Path, key: &str) -> String {
    support::text(&in_netns(netns, &["cat", &format!("/proc/sys/{key}")]).stdout)
        .trim()
        .to_string()
}

pub fn eth0_qdiscs(netns: &std::path::Path) -> String {
    support::text(&in_netns(netns, &["tc", "qdisc", "show", "dev", "eth0"]).stdout)
}

/// The `nft:` lines of network_leftovers (urunc's tables in the pod).
pub fn tables(netns: &std::path::Path) -> Vec<String> {
    network_leftovers(netns)
        .lines()
        .filter(|l| l.starts_with("nft:"))
        .map(str::to_string)
        .collect()
}

pub fn run_running(c: &mut Cri, pod: &str, cfg: &PodSandboxConfig, cc: ContainerConfig) -> String {
    let id = c.run_container(pod, cfg, cc);
    assert!(c.wait_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10)
    ));
    id
}

/// The error a kubelet sees for a container urunc refuses: at
/// CreateContainer, or (containerd creates the task there) at
/// StartContainer. Returns it and the container's ID, if one was made.
pub fn refused(
    c: &mut Cri,
    pod: &str,
    cfg: &PodSandboxConfig,
    cc: ContainerConfig,
) -> (String, Option<String>) {
    match c.create(pod, cfg, cc) {
        Err(e) => (e, None),
        Ok(id) => match c.start_container(&id) {
            Err(e) => (e, Some(id)),
            Ok(()) => panic!("container {id} started; it should have been refused"),
        },
    }
}

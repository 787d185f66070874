//! Real unikernels through urunc `create`/`start`: images built by hand
//! from the frameworks' own sources (never committed), so a command line
//! that the real framework's parser reads differently fails here even when
//! the fixture kernels pass.
//!
//! The images are looked up under `$URUNC_REAL_IMAGES` (default
//! `/opt/urunc-images`):
//!
//! ```text
//! unikraft/helloworld-qemu/kernel  Unikraft 0.17 app-helloworld, x86_64 kvm platform for QEMU
//!                                  (printargs on; posix-environ with env.vars; info-level printk,
//!                                  which prints "Environment variables:" and "Calling main(...)")
//! unikraft/httpreply-qemu/kernel   Unikraft 0.17 app-httpreply on lib-lwip (netdev.ip parameter,
//!                                  posix-environ with env.vars, info-level printk), port 8123
//! unikraft/helloworld-fc/kernel    the same two for Firecracker (CONFIG_KVM_VMM_FIRECRACKER)
//! unikraft/httpreply-fc/kernel
//! rumprun/probe.spt, probe.hvt     a Rumprun (Solo5) C program: prints RR-ARGV[i]=, RR-ENV=,
//!                                  RR-FILE=<first line of the file named by argv[1]>, then
//!                                  answers HTTP on port 8080 ("hello from rumprun")
//! ```
//!
//! The Unikraft images are built with the random library off: under TCG
//! `-cpu max` has no RDSEED, and this host's nested KVM cannot run Unikraft
//! at all, so QEMU runs them with TCG (config file: `accel = "tcg"`,
//! `cpu = "max"`), and the Firecracker tests (and Rumprun on solo5-hvt,
//! which this host's nested KVM stops with an emulation error) run only
//! where `URUNC_REAL_IMAGES_KVM=1` says that KVM can run them. Each test prints
//! `SKIP: <test>: <reason>` when an image, a tool or root is missing.
//!
//! How Unikraft reads its command line (lib/uklibparam in unikraft 0.17):
//! words before the first `--` are library parameters (unknown ones are
//! ignored), words after it are argv[1..]; with no `--` the whole line is
//! argv and no parameter is applied. Under QEMU (multiboot) argv[0] is the
//! kernel path QEMU puts first.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::netns::{pod_with_peer, Netns};
use support::*;

/// Guests boot under TCG on few cores: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// QEMU settings for Unikraft here: TCG, and a CPU model with the features
/// Unikraft's x86_64 build expects.
const UK_CONFIG: &str = "[monitors.qemu]\naccel = \"tcg\"\ncpu = \"max\"\n";

fn images_dir() -> PathBuf {
    std::env::var_os("URUNC_REAL_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/urunc-images".into())
}

/// The image at `rel` under the images directory, or SKIP.
fn need_image(test: &str, rel: &str) -> Option<PathBuf> {
    let p = images_dir().join(rel);
    if p.is_file() {
        return Some(p);
    }
    println!(
        "SKIP: {test}: real image {} not found (set URUNC_REAL_IMAGES; layout in crates/urunc/tests/real_images.rs)",
        p.display()
    );
    None
}

/// QEMU and the image at `rel`, or SKIP.
fn need_qemu_image(test: &str, rel: &str) -> Option<PathBuf> {
    if !need_qemu(test) {
        return None;
    }
    need_image(test, rel)
}

fn need_net(test: &str) -> bool {
    need_root(test) && need_bin(test, "ip") && need_bin(test, "tc")
}

/// A pod namespace whose eth0 holds 10.77.0.2/24 (default route via
/// .1), a veth to a peer namespace holding 10.77.0.1.
struct Pod {
    pod: Netns,
    peer: Netns,
}

const POD_IP: &str = "10.77.0.2";

impl Pod {
    fn new() -> Pod {
        let (pod, peer) = pod_with_peer(POD_IP, "10.77.0.1");
        Pod { pod, peer }
    }

    /// Joins the spec's network namespace to the pod.
    fn join(&self, b: &mut Bundle) {
        b.netns(&self.pod.path());
    }

    /// `GET /` from the peer to the pod address, retried until an answer
    /// comes or `timeout` passes; the reply (empty when none came).
    fn http_get(&self, port: u16, timeout: Duration) -> String {
        self.peer.enter(|| {
            let deadline = Instant::now() + timeout;
            let addr = format!("{POD_IP}:{port}").parse().unwrap();
            let mut last = String::new();
            while Instant::now() < deadline {
                if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: urunc\r\n\r\n");
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    last = String::from_utf8_lossy(&buf).into_owned();
                    if !last.is_empty() {
                        return last;
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            last
        })
    }
}

/// create + start, returning the monitor's pid.
fn start(env: &Env, b: &Bundle, id: &str) -> i32 {
    subreaper();
    let pid = env.create(&b.write(), id, &[]);
    env.ok(&["start", id]);
    pid
}

/// create + start + wait for exit; the exit status and the output.
fn run_to_exit(env: &Env, b: &Bundle, id: &str) -> (i32, String) {
    let pid = start(env, b, id);
    let _d = DeleteOnDrop(env, id);
    let code = wait_exit(pid, Duration::from_secs(90));
    let out = env.out(id);
    let code = code.unwrap_or_else(|| panic!("{id} did not exit:\n{out}{}", env.err(id)));
    env.ok(&["delete", id]);
    (code, out)
}

/// Kills and deletes `id`, then checks that the pod holds only what the
/// test made (lo, eth0): urunc removed its tap.
fn stop_and_check_pod(env: &Env, id: &str, pid: i32, pod: &Pod) {
    env.ok(&["kill", id, "KILL"]);
    assert!(
        wait_exit(pid, Duration::from_secs(30)).is_some(),
        "{id} did not die"
    );
    env.ok(&["delete", id]);
    let mut links = pod.pod.links();
    links.sort();
    assert_eq!(links, ["eth0", "lo"], "urunc left links in the pod");
}

/// Waits (60 s) for `ready` in `id`'s output, then `GET /` on `port` from
/// the pod's peer (30 s); the reply ("" when none came) and the output,
/// both shown.
fn http_when_ready(
    env: &Env,
    pod: &Pod,
    t: &str,
    id: &str,
    ready: &str,
    port: u16,
) -> (String, String) {
    let reply = if env.wait_out(id, ready, Duration::from_secs(60)) {
        pod.http_get(port, Duration::from_secs(30))
    } else {
        String::new()
    };
    let out = env.out(id);
    show(t, &out);
    println!("{t}: HTTP reply: {:?}", reply.lines().next().unwrap_or(""));
    (reply, out)
}

fn unikraft_bundle(kernel: &Path, hv: &str, args: &[&str], env: &[&str], mib: u64) -> Bundle {
    let mut b = Bundle::new();
    b.add_file(kernel, "/unikernel/kernel")
        .unikernel("unikraft", hv, "/unikernel/kernel")
        .annotate("com.urunc.unikernel.unikernelVersion", "0.17.0")
        .memory_mib(mib)
        .args(args)
        .env(env);
    b
}

/// Prints what the guest said that matters (the command line it got, what
/// it made of it), so a run shows it with `--nocapture`.
fn show(t: &str, out: &str) {
    const KEYS: [&str; 8] = [
        "Command line:",
        "Calling main",
        "Set IPv4",
        "Arguments:",
        "DHCP",
        "RR-",
        "rumprun",
        "mounted",
    ];
    for l in out.lines().filter(|l| KEYS.iter().any(|k| l.contains(k))) {
        println!("{t}: guest: {}", l.trim_end());
    }
}

/// The variables Unikraft's ukboot lists under "Environment variables:"
/// (one tab-indented `K=V` per line, printed before main is called).
fn unikraft_env(out: &str) -> Vec<String> {
    let mut v = vec![];
    let mut on = false;
    for l in out.lines() {
        if l.contains("Environment variables:") {
            on = true;
        } else if on {
            match l.split_once("> \t") {
                Some((_, kv)) => v.push(kv.trim_end().to_string()),
                None => on = false,
            }
        }
    }
    v
}

/// app-helloworld's `Arguments:` line, without the argv[0] QEMU puts first.
fn helloworld_args(out: &str) -> Option<String> {
    let l = out.lines().find(|l| l.starts_with("Arguments:"))?;
    let rest = l.trim_start_matches("Arguments:").trim_start();
    // argv[0] is the kernel path: `"<path>"`.
    let after0 = rest.strip_prefix('"')?.split_once('"')?.1;
    Some(after0.trim().to_string())
}

#[test]
fn unikraft_helloworld_prints_its_args_and_env_on_qemu() {
    let t = "unikraft_helloworld_prints_its_args_and_env_on_qemu";
    let Some(k) = need_qemu_image(t, "unikraft/helloworld-qemu/kernel") else {
        return;
    };
    let _g = serial();
    let env = Env::new(UK_CONFIG);
    let b = unikraft_bundle(
        &k,
        "qemu",
        &["helloworld", "one", "two words", "it's"],
        &["PATH=/bin", "FOO=bar", "GREETING=hello world"],
        64,
    );
    let (code, out) = run_to_exit(&env, &b, "uk-hello");
    show(t, &out);
    assert!(out.contains("Hello world!"), "{out}");
    assert_eq!(
        helloworld_args(&out).as_deref(),
        Some(r#""one" "two words" "it's""#),
        "{out}"
    );
    assert_eq!(
        unikraft_env(&out),
        ["PATH=/bin", "FOO=bar", "GREETING=hello world"],
        "{out}"
    );
    assert!(out.contains("main returned 0"), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn unikraft_helloworld_without_args_still_gets_its_env_on_qemu() {
    // With no application argument the line must still carry `--`, or
    // Unikraft applies no parameter (env.vars lands in argv).
    let t = "unikraft_helloworld_without_args_still_gets_its_env_on_qemu";
    let Some(k) = need_qemu_image(t, "unikraft/helloworld-qemu/kernel") else {
        return;
    };
    let _g = serial();
    let env = Env::new(UK_CONFIG);
    let b = unikraft_bundle(&k, "qemu", &["helloworld"], &["FOO=bar"], 64);
    let (code, out) = run_to_exit(&env, &b, "uk-hello0");
    show(t, &out);
    assert!(out.contains("Hello world!"), "{out}");
    assert_eq!(helloworld_args(&out).as_deref(), Some(""), "{out}");
    // PATH=/bin is the image's own compiled-in environment
    // (posix-environ's default envp), not urunc's: the spec gave only FOO.
    let env_seen = unikraft_env(&out);
    assert!(env_seen.iter().any(|e| e == "FOO=bar"), "{out}");
    assert!(
        !out.contains("'env.vars=['"),
        "env.vars landed in argv: {out}"
    );
    assert_eq!(code, 0, "{out}");
}

/// httpreply in a pod: the static IP from `netdev.ip`, the environment,
/// and the HTTP reply to a peer through urunc's tap + tc redirect.
fn httpreply_in_a_pod(t: &str, id: &str, args: &[&str]) {
    if !need_net(t) {
        return;
    }
    let Some(k) = need_qemu_image(t, "unikraft/httpreply-qemu/kernel") else {
        return;
    };
    let _g = serial();
    let pod = Pod::new();
    let env = Env::new(UK_CONFIG);
    let mut b = unikraft_bundle(&k, "qemu", args, &["PATH=/bin", "FOO=bar"], 128);
    pod.join(&mut b);
    let pid = start(&env, &b, id);
    let _d = DeleteOnDrop(&env, id);
    let (reply, out) = http_when_ready(&env, &pod, t, id, "Listening on port 8123", 8123);
    assert!(
        out.contains(&format!(
            "Set IPv4 address {POD_IP} mask 255.255.255.0 gw 10.77.0.1"
        )),
        "the static IP was not applied:\n{out}{}",
        env.err(id)
    );
    assert_eq!(unikraft_env(&out), ["PATH=/bin", "FOO=bar"], "{out}");
    assert!(
        reply.starts_with("HTTP/1.1 200 OK"),
        "reply {reply:?}\n{out}"
    );
    assert!(reply.contains("It works!"), "{reply}");
    assert!(
        env.wait_out(id, "Sent a reply", Duration::from_secs(5)),
        "{out}"
    );
    stop_and_check_pod(&env, id, pid, &pod);
}

#[test]
fn unikraft_httpreply_without_args_answers_http_from_a_peer() {
    // The user's `nerdctl run ... IMAGE httpreply` (a one-word command).
    httpreply_in_a_pod(
        "unikraft_httpreply_without_args_answers_http_from_a_peer",
        "uk-http0",
        &["httpreply"],
    );
}

#[test]
fn unikraft_httpreply_with_an_arg_answers_http_from_a_peer() {
    httpreply_in_a_pod(
        "unikraft_httpreply_with_an_arg_answers_http_from_a_peer",
        "uk-http1",
        &["httpreply", "extra-arg"],
    );
}

/// Root, Firecracker, the image, and KVM that can run Unikraft (this host's
/// nested KVM cannot: the caller says so with URUNC_REAL_IMAGES_KVM=1).
fn need_fc_image(t: &str, rel: &str) -> Option<PathBuf> {
    if !need_root(t) || !need_bin(t, "firecracker") {
        return None;
    }
    if std::env::var("URUNC_REAL_IMAGES_KVM").as_deref() != Ok("1") {
        println!("SKIP: {t}: set URUNC_REAL_IMAGES_KVM=1 where KVM can run Unikraft");
        return None;
    }
    need_image(t, rel)
}

#[test]
fn unikraft_helloworld_prints_its_args_and_env_on_firecracker() {
    let t = "unikraft_helloworld_prints_its_args_and_env_on_firecracker";
    let Some(k) = need_fc_image(t, "unikraft/helloworld-fc/kernel") else {
        return;
    };
    let _g = serial();
    let env = Env::new("");
    for (i, args) in [&["helloworld"][..], &["helloworld", "one", "two words"]]
        .iter()
        .enumerate()
    {
        let b = unikraft_bundle(&k, "firecracker", args, &["FOO=bar"], 64);
        let (_, out) = run_to_exit(&env, &b, &format!("uk-fc-hello{i}"));
        show(t, &out);
        assert!(out.contains("Hello world!"), "{out}");
        assert_eq!(unikraft_env(&out), ["FOO=bar"], "{out}");
        let want: Vec<String> = args[1..].iter().map(|a| format!("\"{a}\"")).collect();
        let l = out.lines().find(|l| l.starts_with("Arguments:"));
        assert!(
            l.is_some_and(|l| l.trim_end().ends_with(&want.join(" "))),
            "{out}"
        );
    }
}

#[test]
fn unikraft_httpreply_answers_http_from_a_peer_on_firecracker() {
    let t = "unikraft_httpreply_answers_http_from_a_peer_on_firecracker";
    if !need_net(t) {
        return;
    }
    let Some(k) = need_fc_image(t, "unikraft/httpreply-fc/kernel") else {
        return;
    };
    let _g = serial();
    let pod = Pod::new();
    let env = Env::new("");
    let mut b = unikraft_bundle(&k, "firecracker", &["httpreply"], &[], 128);
    pod.join(&mut b);
    let pid = start(&env, &b, "uk-fc-http");
    let _d = DeleteOnDrop(&env, "uk-fc-http");
    let reply = pod.http_get(8123, Duration::from_secs(60));
    let out = env.out("uk-fc-http");
    show(t, &out);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply:?}\n{out}");
    assert!(out.contains(&format!("Set IPv4 address {POD_IP}")), "{out}");
    stop_and_check_pod(&env, "uk-fc-http", pid, &pod);
}

/// The Rumprun probe on `target` (spt/hvt): its disk (an ext2 image in the
/// rootfs, `block` + `blkMntPoint`) mounted and a file on it read, its
/// argv printed, HTTP answered from a peer.
fn rumprun_probe(target: &str) {
    let t = format!("rumprun_probe_reads_its_disk_and_serves_http_{target}");
    let t = t.as_str();
    if !need_net(t) || !need_bin(t, &format!("solo5-{target}")) || !need_bin(t, "mke2fs") {
        return;
    }
    // On this host's nested KVM both Solo5 0.6.6 and 0.9.0 hvt stop
    // Rumprun right after "rump kernel bare metal bootstrap" with "KVM:
    // internal error exit: suberror=0x1" (spt runs the same program).
    if target == "hvt" && std::env::var("URUNC_REAL_IMAGES_KVM").as_deref() != Ok("1") {
        println!("SKIP: {t}: set URUNC_REAL_IMAGES_KVM=1 where KVM can run Rumprun on solo5-hvt");
        return;
    }
    let Some(k) = need_image(t, &format!("rumprun/probe.{target}")) else {
        return;
    };
    let _g = serial();
    let pod = Pod::new();
    let env = Env::new("");
    let mut b = Bundle::new();
    b.add_file(&k, "/unikernel/probe")
        .unikernel("rumprun", target, "/unikernel/probe")
        .annotate("com.urunc.unikernel.block", "/disk.img")
        .annotate("com.urunc.unikernel.blkMntPoint", "/data")
        .memory_mib(128)
        .args(&["probe", "/data/hello.txt", "second"])
        .env(&["PATH=/bin", "FOO=bar"]);
    let content = format!("urunc real disk {}", std::process::id());
    let mk = Command::new("bash")
        .arg(repo_root().join("tests/fixtures/mkdisk.sh"))
        .arg(b.rootfs().join("disk.img"))
        .arg(format!("hello.txt={content}"))
        .output()
        .unwrap();
    assert!(mk.status.success(), "mkdisk.sh: {}", text(&mk));
    pod.join(&mut b);
    let id = format!("rr-{target}");
    let pid = start(&env, &b, &id);
    let _d = DeleteOnDrop(&env, &id);
    let (reply, out) = http_when_ready(&env, &pod, t, &id, "RR-LISTENING=8080", 8080);
    assert!(
        out.contains("RR-ARGV[1]=/data/hello.txt") && out.contains("RR-ARGV[2]=second"),
        "{out}{}",
        env.err(&id)
    );
    assert!(
        out.contains(&format!("RR-FILE={content}")),
        "the disk was not mounted at /data and read:\n{out}"
    );
    assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply:?}\n{out}");
    assert!(reply.contains("hello from rumprun"), "{reply}");
    stop_and_check_pod(&env, &id, pid, &pod);
}

#[test]
fn rumprun_probe_reads_its_disk_and_serves_http_spt() {
    rumprun_probe("spt");
}

#[test]
fn rumprun_probe_reads_its_disk_and_serves_http_hvt() {
    rumprun_probe("hvt");
}

//! Pod start through containerd's CRI as a kubelet sees it (bench/cri.sh):
//! RunPodSandbox, CreateContainer and StartContainer, then the first TCP
//! reply from the pod IP, for a unikernel pod (handler `urunc`) and a runc
//! busybox pod, alternating in the same run, with where the time goes.
//!
//! The unikernel is tests/fixtures/solo5-ping's `http` fixture on
//! solo5-spt (MirageOS, a stateless HTTP responder on port 80) when
//! solo5-spt and the Solo5 toolchain are there; otherwise, or with
//! `URUNC_CRI_BENCH_LINUX=1` as well, the fixtures' Linux guest on QEMU TCG
//! (`nc` on 8080; seconds of TCG boot). Same harness as cri.rs: a private
//! containerd with CRI, the CNI bridge, our pause image (delegated to
//! runc for both pods). A third pod, busybox under handler `urunc` (the
//! shim delegates it to runc), shows what the shim adds apart from the
//! unikernel.

#[path = "support/cri_env.rs"]
mod cri_env;
#[path = "support/cri.rs"]
mod harness;
#[path = "support/cri_steps.rs"]
mod steps;
mod support;

use std::time::{Duration, Instant};

use harness::{Cri, Engine};
use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use steps::*;

/// The reference pods' server.
const RUNC_NC: &str = "while true; do echo 'hello from runc' | busybox nc -l -p 8080; done";

/// The pod's and the container's config for a pod name.
type MakeConfigs = Box<dyn Fn(&Cri, &str) -> (PodSandboxConfig, ContainerConfig)>;

/// A kind of pod in the benchmark.
struct Kind {
    label: &'static str,
    handler: &'static str,
    port: u16,
    want: &'static str,
    /// The pod's and the container's config for pod `name`.
    make: MakeConfigs,
}

/// When each step had returned, from the RunPodSandbox call.
#[derive(Clone, Copy)]
struct Marks {
    sandbox: Duration,
    create: Duration,
    start: Duration,
    reply: Duration,
}

fn one_pod(c: &mut Cri, k: &Kind, name: &str) -> Marks {
    let (cfg, ccfg) = (k.make)(c, name);
    let t = Instant::now();
    let pod = c
        .run_pod(&cfg, k.handler)
        .unwrap_or_else(|e| panic!("{}: RunPodSandbox: {e}\n{}", k.label, c.log_tail()));
    let sandbox = t.elapsed();
    let id = c
        .create(&pod, &cfg, ccfg)
        .unwrap_or_else(|e| panic!("{}: CreateContainer: {e}\n{}", k.label, c.log_tail()));
    let create = t.elapsed();
    c.start_container(&id)
        .unwrap_or_else(|e| panic!("{}: StartContainer: {e}\n{}", k.label, c.log_tail()));
    let start = t.elapsed();
    let ip = c.pod_ip(&pod);
    let reply = c.tcp_reply_every(&ip, k.port, k.want, BOOT, Duration::from_millis(2));
    let first = t.elapsed();
    assert!(
        reply.contains(k.want),
        "{}: no reply from {ip}:{} (last: {reply:?})\n{}",
        k.label,
        k.port,
        log_of(c, &id)
    );
    c.stop_pod(&pod).unwrap();
    c.remove_pod(&pod).unwrap();
    Marks {
        sandbox,
        create,
        start,
        reply: first,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Medians of the marks and of each step alone (step medians need not
/// add up to the median total).
fn summary(m: &[Marks]) -> (Marks, [Duration; 4]) {
    let col = |f: fn(&Marks) -> Duration| median(m.iter().map(f).collect());
    let at = Marks {
        sandbox: col(|m| m.sandbox),
        create: col(|m| m.create),
        start: col(|m| m.start),
        reply: col(|m| m.reply),
    };
    let steps = [
        col(|m| m.sandbox),
        col(|m| m.create - m.sandbox),
        col(|m| m.start - m.create),
        col(|m| m.reply - m.start),
    ];
    (at, steps)
}

/// Pod start, the unikernel pod(s) against the runc busybox pod; rounds
/// alternate the order. Prints every run and the medians; no timing
/// asserts. `URUNC_CRI_BENCH_N` rounds (default 5).
#[test]
#[ignore = "benchmark: cargo test --test cri_bench -- --ignored --nocapture"]
fn pod_start_benchmark() {
    let test = "pod_start_benchmark";
    // The containerd named by $URUNC_TEST_CONTAINERD, else Debian's.
    let engine = match Engine::from_env() {
        Ok(None) => Engine::debian().map(Some),
        other => other,
    };
    let Some(e) = setup(test, engine) else {
        return;
    };
    let n: usize = std::env::var("URUNC_CRI_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut c = Cri::start(&e, "bench");
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);

    let mut kinds: Vec<Kind> = vec![];
    const SOLO5: &str = "localhost/ucri-solo5-http:latest";
    if support::which("solo5-spt").is_some()
        && solo5_image(&mut c, test, "http.spt", SOLO5).is_some()
    {
        kinds.push(Kind {
            label: "urunc Solo5 spt http",
            handler: "urunc",
            port: 80,
            want: "hello from urunc solo5-http",
            make: Box::new(|c, name| {
                (
                    c.pod_config(name, &[]),
                    solo5_container("web", SOLO5, "spt", &["--port=80"]),
                )
            }),
        });
    } else {
        println!("{test}: no solo5-spt or Solo5 toolchain: the unikernel pod is the Linux guest on QEMU TCG");
    }
    if kinds.is_empty() || std::env::var_os("URUNC_CRI_BENCH_LINUX").is_some() {
        let archive = harness::bare_guest_image(&c.dir, BARE);
        c.import(&archive, BARE);
        kinds.push(Kind {
            label: "urunc QEMU-TCG Linux",
            handler: "urunc",
            port: 8080,
            want: HELLO,
            make: Box::new(|c, name| {
                let meta = guest_metadata(true);
                (c.pod_config(name, &refs(&meta)), guest("web", 0, BARE, &[]))
            }),
        });
    }
    // The same busybox in a pod of handler urunc (the shim delegates it to
    // runc): what the urunc shim costs a pod apart from the unikernel.
    kinds.push(Kind {
        label: "urunc-handler busybox nc",
        handler: "urunc",
        port: 8080,
        want: "hello from runc",
        make: Box::new(|c, name| (c.pod_config(name, &[]), busybox("web", RUNC_NC))),
    });
    kinds.push(Kind {
        label: "runc busybox nc",
        handler: "runc",
        port: 8080,
        want: "hello from runc",
        make: Box::new(|c, name| (c.pod_config(name, &[]), busybox("web", RUNC_NC))),
    });

    let mut marks: Vec<Vec<Marks>> = kinds.iter().map(|_| vec![]).collect();
    for i in 0..n {
        let mut order: Vec<usize> = (0..kinds.len()).collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let m = one_pod(&mut c, &kinds[k], &format!("b{k}x{i}"));
            println!(
                "{} pod {i}: RunPodSandbox {}, CreateContainer +{}, StartContainer +{} (at {}), \
                 first TCP reply +{} (at {})",
                kinds[k].label,
                ms(m.sandbox),
                ms(m.create - m.sandbox),
                ms(m.start - m.create),
                ms(m.start),
                ms(m.reply - m.start),
                ms(m.reply)
            );
            marks[k].push(m);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "pod start, medians of {n} (containerd {}, load average {}):",
        e.version,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    let sums: Vec<(Marks, [Duration; 4])> = marks.iter().map(|m| summary(m)).collect();
    for (k, (at, s)) in kinds.iter().zip(&sums) {
        println!(
            "pod start | {} | RunPodSandbox {} | CreateContainer +{} | StartContainer +{} \
             (returned at {}) | first TCP reply +{} (at {})",
            k.label,
            ms(s[0]),
            ms(s[1]),
            ms(s[2]),
            ms(at.start),
            ms(s[3]),
            ms(at.reply)
        );
    }
    let runc = &sums[sums.len() - 1].0;
    for (k, (at, _)) in kinds.iter().zip(&sums).take(kinds.len() - 1) {
        println!(
            "pod start ratio | {} / runc busybox: StartContainer returned {:.2}×, first TCP reply {:.2}×",
            k.label,
            at.start.as_secs_f64() / runc.start.as_secs_f64(),
            at.reply.as_secs_f64() / runc.reply.as_secs_f64()
        );
    }
}

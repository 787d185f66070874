//! Scale and soak through containerd (the CLI half is
//! crates/urunc/tests/scale.rs): many concurrent `ctr run --rm`
//! lifecycles, same-ID races (one winner), and long runs of sequential
//! lifecycles through one containerd and through one long-lived shim,
//! whose memory, descriptors and threads must stay flat.
//!
//! The workload is Solo5's `test_hello` on `solo5-spt` when installed,
//! else the tiny test kernel on QEMU/KVM (a boot each, so fewer runs).
//! `URUNC_SCALE_N` sets the concurrent count (default 100; 20 on QEMU),
//! `URUNC_SOAK_N` the sequential one (default 1000; 200 on QEMU).

#[path = "support/scale.rs"]
mod scale;
mod support;

use std::process::Stdio;

use scale::{
    assert_flat, ctr_bounded, leftovers, lifecycle, sample, table, Bounds, Sample, Workload,
};
use support::{text, Containerd, RUNTIME};

/// Samples taken over a soak: before, then ten times.
const SAMPLES: usize = 10;

#[test]
fn concurrent_lifecycles_through_containerd_all_succeed_and_leave_nothing() {
    let test = "concurrent_lifecycles_through_containerd_all_succeed_and_leave_nothing";
    let Some(w) = Workload::prepare(test) else {
        return;
    };
    let n = w.count("URUNC_SCALE_N", 100, 20);
    let c = w.containerd("scale");
    let image = w.image(&c);
    let t0 = std::time::Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (c, w, image) = (&c, &w, &image);
                s.spawn(move || lifecycle(c, w, image, &format!("scale-{i}"), &[]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = t0.elapsed();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "scale (containerd): {n} concurrent `ctr run --rm` of {}: {} ok, {} failed, wall {:.1} s",
        w.name(),
        n - failed.len(),
        failed.len(),
        wall.as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {}\n{}",
        failed.len(),
        failed[0],
        c.log_tail()
    );
    let left = leftovers(&c, true);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// `k` copies of `ctr ARGS...` started at once: (succeeded, stderr) each.
fn race(c: &Containerd, args: &[&str], k: usize) -> Vec<(bool, String)> {
    let children: Vec<_> = (0..k)
        .map(|_| {
            c.ctr_cmd(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|ch| {
            let o = ch.wait_with_output().unwrap();
            (o.status.success(), text(&o.stderr))
        })
        .collect()
}

/// One winner among `results`, each loser saying one of `why`.
fn one_winner(what: &str, results: &[(bool, String)], why: &[&str]) {
    let winners = results.iter().filter(|(ok, _)| *ok).count();
    println!(
        "race (containerd): {} concurrent {what}: {winners} succeeded",
        results.len()
    );
    assert_eq!(winners, 1, "{what}: {results:#?}");
    for (ok, err) in results {
        assert!(
            *ok || why.iter().any(|w| err.contains(w)),
            "{what}: a loser said {err:?}"
        );
    }
}

/// Deletes of the stopped task `id`, raced: the task is gone afterwards,
/// and each says so or failed clearly; then its container is deleted.
///
/// Not that one succeeds: containerd 1.6 serves one task's concurrent
/// deletes through one shim connection, and the first to finish (a loser
/// the shim answered "not found") closes that connection for the others,
/// the winner included ("ttrpc: closed"), after its own cleanup.
fn race_deletes(c: &Containerd, id: &str) {
    assert!(
        c.wait_status(id, "STOPPED"),
        "{id}: {:?}\n{}",
        c.task_status(id),
        c.log_tail()
    );
    let deletes = race(c, &["task", "delete", id], 4);
    let count = |s: &str| deletes.iter().filter(|(_, e)| e.contains(s)).count();
    println!(
        "race (containerd): 4 concurrent task deletes of {id}: {} succeeded, {} not found, {} ttrpc: closed",
        deletes.iter().filter(|(ok, _)| *ok).count(),
        count("not found"),
        count("ttrpc: closed"),
    );
    for (ok, err) in &deletes {
        assert!(
            *ok || err.contains("not found") || err.contains("ttrpc: closed"),
            "a loser said {err:?}"
        );
    }
    assert!(c.task_status(id).is_none(), "task {id} still listed");
    let d = c.ctr(&["container", "delete", id]);
    assert!(d.status.success(), "container delete: {}", text(&d.stderr));
}

#[test]
fn same_id_races_through_containerd_have_one_winner() {
    let test = "same_id_races_through_containerd_have_one_winner";
    let Some(w) = Workload::prepare(test) else {
        return;
    };
    let c = w.containerd("race");
    let image = w.image(&c);
    // Detached: the winner's task stays (stopped) until deleted, so a late
    // loser cannot take the ID over after it.
    let runs = race(&c, &["run", "-d", "--runtime", RUNTIME, &image, "same"], 8);
    one_winner("`ctr run -d` of one ID", &runs, &["already exists"]);
    race_deletes(&c, "same");

    // The container exists once; its task is what is raced for.
    let cc = c.ctr(&["container", "create", "--runtime", RUNTIME, &image, "same2"]);
    assert!(
        cc.status.success(),
        "container create: {}",
        text(&cc.stderr)
    );
    let starts = race(&c, &["task", "start", "-d", "same2"], 8);
    // containerd refuses the losers, as "already exists" or, when its
    // check passed, at the bundle's mkdir ("file exists").
    one_winner(
        "`ctr task start -d` of one container",
        &starts,
        &["already exists", "file exists"],
    );
    race_deletes(&c, "same2");

    let left = leftovers(&c, true);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// `n` sequential lifecycles `soak-I` with `extra` options, `pid` sampled
/// before and every n/10; panics on the first that fails.
fn soak(
    c: &Containerd,
    w: &Workload,
    image: &str,
    n: usize,
    extra: &[&str],
    pid: i32,
) -> Vec<Sample> {
    let every = (n / SAMPLES).max(1);
    let mut samples = vec![sample(pid, 0)];
    let t0 = std::time::Instant::now();
    for i in 1..=n {
        if let Err(e) = lifecycle(c, w, image, &format!("soak-{i}"), extra) {
            panic!("lifecycle {i} of {n}: {e}\n{}", c.log_tail());
        }
        if i % every == 0 || i == n {
            samples.push(sample(pid, i));
        }
    }
    println!(
        "soak: {n} sequential `ctr run --rm` of {}: {:.1} s",
        w.name(),
        t0.elapsed().as_secs_f64()
    );
    samples
}

#[test]
fn containerd_stays_flat_over_sequential_lifecycles() {
    let test = "containerd_stays_flat_over_sequential_lifecycles";
    let Some(w) = Workload::prepare(test) else {
        return;
    };
    let n = w.count("URUNC_SOAK_N", 1000, 200);
    let c = w.containerd("soak");
    let image = w.image(&c);
    let samples = soak(&c, &w, &image, n, &[], c.pid());
    println!(
        "{}",
        table(
            "soak: containerd (one per test, a new shim per lifecycle)",
            &samples
        )
    );
    // Go's heap breathes with its GC target, and it starts threads for
    // blocking calls as it needs them: bounds a leak of 20 KiB or a
    // goroutine stuck in a syscall per lifecycle still exceeds.
    let b = Bounds {
        fds: 5,
        threads: 8,
        anon_kib: 16 << 10,
    };
    assert_flat("containerd", &samples, 1, &b);
    let left = leftovers(&c, true);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// The pod the shared-shim soak's containers belong to: the shim groups
/// containers by this annotation (its `start_shim`, like containerd's runc
/// shim with CRI's sandbox id).
const POD: &str = "io.kubernetes.cri.sandbox-id=soakpod";

#[test]
fn one_shim_stays_flat_over_sequential_containers() {
    let test = "one_shim_stays_flat_over_sequential_containers";
    let Some(w) = Workload::prepare(test) else {
        return;
    };
    let n = w.count("URUNC_SOAK_N", 1000, 200);
    let c = w.containerd("soakshim");
    let image = w.image(&c);
    // The pod's long-lived member (busybox through urunc, which hands it to
    // runc) keeps the shim up while the others come and go.
    c.run_detached("anchor", &["--annotation", POD], &["/bin/sleep", "100000"]);
    let shims = c.shim_pids("anchor");
    assert_eq!(shims.len(), 1, "shims: {shims:?}");
    let shim = shims[0];
    let samples = soak(&c, &w, &image, n, &["--annotation", POD], shim);
    println!("{}", table("soak: the pod's one shim", &samples));
    // Every lifecycle went through that shim: it is the namespace's only one.
    let all: Vec<String> = scale::processes_of(&c)
        .into_iter()
        .filter(|p| p.contains("containerd-shim-urunc-v2"))
        .collect();
    assert_eq!(all.len(), 1, "shims: {all:?}");
    assert!(all[0].starts_with(&format!("{shim} ")), "shims: {all:?}");
    // A leak of a container's record (a few KiB) a lifecycle adds MiBs;
    // the stuck stdin thread each lifecycle left was +1 thread, +30 KiB.
    let b = Bounds {
        fds: 5,
        threads: 2,
        anon_kib: 512,
    };
    assert_flat("shim", &samples, 1, &b);

    c.kill("anchor", "KILL");
    assert!(c.wait_status("anchor", "STOPPED"));
    let d = ctr_bounded(&c, &["task", "delete", "anchor"]);
    assert!(d.status.success(), "delete: {}", text(&d.stderr));
    let d = c.ctr(&["container", "delete", "anchor"]);
    assert!(d.status.success(), "delete: {}", text(&d.stderr));
    assert!(
        c.shim_gone("anchor"),
        "the pod's shim outlived its last container"
    );
    // runc leaves the anchor's `/<namespace>` cgroup parent: only the
    // containers' own cgroups must be gone.
    let left = leftovers(&c, false);
    assert!(left.is_empty(), "left behind: {left:#?}");
    scale::remove_cgroup_parent(&c);
}

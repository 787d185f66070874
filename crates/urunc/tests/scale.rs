//! Scale: many concurrent lifecycles (create, start, exit, delete) through
//! the CLI, and same-ID races — one winner, nothing leaked (state
//! directories, processes, cgroups, mounts).
//!
//! Solo5's `test_hello` on `solo5-spt` when installed (100 containers by
//! default: about a second here), else the tiny kernel on QEMU (10, a boot
//! each). `URUNC_SCALE_N=<n>` sets the count, e.g. 1000 for a soak run.

mod support;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

const T: Duration = Duration::from_secs(120);

/// Solo5's test_hello for spt, where the Solo5 tests put it.
fn spt_hello() -> Option<PathBuf> {
    which("solo5-spt")?;
    let mut dirs: Vec<PathBuf> = vec![];
    if let Some(d) = std::env::var_os("URUNC_SOLO5_TESTS") {
        dirs.push(d.into());
    }
    dirs.extend(
        [
            "/usr/local/lib/solo5-tests",
            "/usr/local/lib/solo5/tests",
            "/opt/solo5-src/tests",
        ]
        .map(PathBuf::from),
    );
    dirs.into_iter()
        .flat_map(|d| {
            [
                d.join("test_hello.spt"),
                d.join("test_hello/test_hello.spt"),
            ]
        })
        .find(|p| p.is_file())
}

/// What a lifecycle runs, and how many at once by default.
enum Workload {
    Spt(PathBuf),
    Qemu,
}

impl Workload {
    fn pick() -> Workload {
        match spt_hello() {
            Some(k) => Workload::Spt(k),
            None => {
                println!("scale: no solo5-spt test_hello, using the tiny kernel on QEMU");
                Workload::Qemu
            }
        }
    }

    /// The workload for `test` (root, and QEMU for the QEMU one, or
    /// SKIP), with this process the subreaper.
    fn prepare(test: &str) -> Option<Workload> {
        if !need_root(test) {
            return None;
        }
        let w = Workload::pick();
        if matches!(w, Workload::Qemu) && !need_qemu(test) {
            return None;
        }
        subreaper();
        Some(w)
    }

    fn default_n(&self) -> usize {
        match self {
            Workload::Spt(_) => 100,
            Workload::Qemu => 10,
        }
    }

    fn config(&self) -> &'static str {
        match self {
            Workload::Spt(_) => "",
            Workload::Qemu => TINY_CONFIG,
        }
    }

    /// A bundle that runs to completion by itself, in cgroup `cg`.
    fn bundle(&self, cg: &str) -> Bundle {
        let mut b = match self {
            Workload::Spt(k) => {
                let mut b = Bundle::new();
                b.add_file(k, "/unikernel/app")
                    .unikernel("mirage", "spt", "/unikernel/app")
                    .memory_mib(32)
                    .args(&["scale"]);
                b
            }
            Workload::Qemu => tiny_bundle(&["app"]),
        };
        b.spec["linux"]["cgroupsPath"] = json!(cg);
        b.write();
        b
    }
}

/// The PID `create --pid-file` wrote.
fn read_pid(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn count() -> Option<usize> {
    std::env::var("URUNC_SCALE_N").ok()?.parse().ok()
}

/// Under `root`: nothing. In the cgroup hierarchies: no `top`. In the
/// mount table: nothing under `dir`. No process mentions `needle`.
fn assert_nothing_left(env: &Env, top: &str, needles: &[String]) {
    let left: Vec<_> = std::fs::read_dir(&env.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under --root: {left:?}");
    let cg = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![cg.join(top)];
    if let Ok(rd) = std::fs::read_dir(cg) {
        dirs.extend(rd.flatten().map(|e| e.path().join(top)));
    }
    let cgs: Vec<_> = dirs.into_iter().filter(|d| d.exists()).collect();
    assert!(cgs.is_empty(), "cgroups left: {cgs:?}");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = env.dir.path().to_str().unwrap();
    assert!(!mi.contains(d), "mounts left under {d}");
    for n in needles {
        assert!(no_process_with(n), "a process of {n} is left");
    }
}

#[test]
fn concurrent_lifecycles_all_succeed_and_leave_nothing() {
    let Some(w) = Workload::prepare("concurrent_lifecycles_all_succeed_and_leave_nothing") else {
        return;
    };
    let n = count().unwrap_or(w.default_n());
    let env = Env::new(w.config());
    let top = format!("urunc-scale-{}", std::process::id());
    let bundles: Vec<Bundle> = (0..n).map(|i| w.bundle(&format!("/{top}/c{i}"))).collect();
    let t0 = Instant::now();
    let results: Vec<Result<i32, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = bundles
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let env = &env;
                s.spawn(move || lifecycle(env, b, &format!("scale-{i}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = t0.elapsed();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "scale: {n} concurrent lifecycles ({}): {} ok, {} failed, wall {:.0} ms",
        match w {
            Workload::Spt(_) => "solo5-spt test_hello",
            Workload::Qemu => "QEMU tiny kernel",
        },
        n - failed.len(),
        failed.len(),
        wall.as_secs_f64() * 1000.0
    );
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {}",
        failed.len(),
        failed[0]
    );
    assert!(
        results.iter().all(|r| r == &Ok(0)),
        "exit statuses: {results:?}"
    );
    let needles: Vec<String> = bundles
        .iter()
        .map(|b| b.path().to_str().unwrap().to_string())
        .collect();
    assert_nothing_left(&env, &top, &needles);
}

/// create, start, wait for the exit, delete; the exit status.
fn lifecycle(env: &Env, b: &Bundle, id: &str) -> Result<i32, String> {
    let bundle = b.path().to_str().unwrap();
    let pidfile = env.dir.path().join(format!("{id}.pid"));
    let err = env.dir.path().join(format!("{id}.err"));
    let st = env
        .cmd()
        .args(["create", "--bundle", bundle, "--pid-file"])
        .arg(&pidfile)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let errtext = || std::fs::read_to_string(&err).unwrap_or_default();
    if !st.success() {
        return Err(format!("{id}: create: {}", errtext()));
    }
    let pid = read_pid(&pidfile);
    let o = env.urunc(&["start", id]);
    if !o.status.success() {
        return Err(format!("{id}: start: {}", text(&o)));
    }
    let code = wait_exit(pid, T).ok_or_else(|| format!("{id}: did not exit"))?;
    let o = env.urunc(&["delete", id]);
    if !o.status.success() {
        return Err(format!("{id}: delete: {}", text(&o)));
    }
    Ok(code)
}

#[test]
fn same_id_races_have_one_winner() {
    let Some(w) = Workload::prepare("same_id_races_have_one_winner") else {
        return;
    };
    let env = Env::new(w.config());
    let top = format!("urunc-race-{}", std::process::id());
    let b = w.bundle(&format!("/{top}/same"));
    let bundle = b.path().to_str().unwrap().to_string();
    let race = |args: &[&str], k: usize| -> Vec<(bool, String)> {
        let children: Vec<_> = (0..k)
            .map(|i| {
                let e = env.dir.path().join(format!("race-{}-{i}.err", args[0]));
                let c = env
                    .cmd()
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&e).unwrap())
                    .spawn()
                    .unwrap();
                (c, e)
            })
            .collect();
        children
            .into_iter()
            .map(|(mut c, e)| {
                let ok = c.wait().unwrap().success();
                (ok, std::fs::read_to_string(e).unwrap_or_default())
            })
            .collect()
    };
    let pidfile = env.dir.path().join("same.pid");
    let creates = race(
        &[
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            pidfile.to_str().unwrap(),
            "same",
        ],
        8,
    );
    let winners = creates.iter().filter(|(ok, _)| *ok).count();
    println!("race: 8 creates of one ID: {winners} succeeded");
    assert_eq!(winners, 1, "{creates:?}");
    for (ok, err) in &creates {
        assert!(*ok || err.contains("already exists"), "{err}");
    }
    let pid = read_pid(&pidfile);
    let starts = race(&["start", "same"], 4);
    let winners = starts.iter().filter(|(ok, _)| *ok).count();
    println!("race: 4 starts of one container: {winners} succeeded");
    assert_eq!(winners, 1, "{starts:?}");
    assert!(wait_exit(pid, T).is_some());
    let deletes = race(&["delete", "--force", "same"], 4);
    assert!(deletes.iter().any(|(ok, _)| *ok), "{deletes:?}");
    assert_nothing_left(&env, &top, &[bundle]);
}

//! The scale and soak tests' helpers (tests/scale.rs): the workload
//! (Solo5's `test_hello` on `solo5-spt`, else the tiny test kernel on
//! QEMU/KVM) as an image, one `ctr run --rm` lifecycle, what a finished
//! test may not leave behind, and memory/descriptor samples of a process.

#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::support::{
    build_unikernel_image, need, runtime_under_test, text, which, Containerd, RUNTIME,
};

/// What one lifecycle runs.
pub enum Workload {
    /// Solo5's `test_hello` built for spt: a process, no VM; ~10 ms.
    Spt(PathBuf),
    /// The repo's tiny test kernel on QEMU with KVM: a boot each; urunc's
    /// config (microvm) in the directory.
    Qemu(PathBuf, tempfile::TempDir),
}

/// QEMU for the tiny kernel: KVM, microvm (no firmware to go through), as
/// in the CLI tests (crates/urunc/tests/support: `TINY_CONFIG`).
const TINY_CONFIG: &str = "[monitors.qemu]\naccel = \"kvm-tcg\"\nmachine = \"microvm\"\n";

/// Solo5's `test_hello.spt`, where the Solo5 tests put it (as the CLI
/// scale test looks for it, crates/urunc/tests/scale.rs).
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

impl Workload {
    /// The workload for `test`, or `None` after its SKIP line: root,
    /// containerd, urunc as the shim's runtime, then spt's `test_hello` or
    /// else QEMU, /dev/kvm and the built test kernel.
    pub fn prepare(test: &str) -> Option<Workload> {
        need(test)?;
        let rt = runtime_under_test();
        if !rt.ends_with("urunc") {
            println!("SKIP: {test}: runtime under test is {rt}, not urunc");
            return None;
        }
        if let Some(k) = spt_hello() {
            return Some(Workload::Spt(k));
        }
        if which("qemu-system-x86_64").is_none() || !Path::new("/dev/kvm").exists() {
            println!("SKIP: {test}: neither solo5-spt with test_hello nor QEMU with /dev/kvm");
            return None;
        }
        let k =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/build/testkernel.elf");
        if !k.is_file() {
            println!(
                "SKIP: {test}: no solo5-spt test_hello, and {} missing (run tests/fixtures/build.sh)",
                k.display()
            );
            return None;
        }
        let conf = tempfile::tempdir().unwrap();
        fs::write(conf.path().join("config.toml"), TINY_CONFIG).unwrap();
        Some(Workload::Qemu(k, conf))
    }

    /// A private containerd named `name` whose urunc runs this workload.
    pub fn containerd(&self, name: &str) -> Containerd {
        match self {
            Workload::Spt(_) => Containerd::start(name),
            Workload::Qemu(_, conf) => {
                let file = conf.path().join("config.toml");
                Containerd::start_with_env(name, &[("URUNC_CONFIG", &file)])
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Workload::Spt(_) => "solo5-spt test_hello",
            Workload::Qemu(..) => "the tiny kernel on QEMU/KVM (no solo5-spt test_hello)",
        }
    }

    /// `$var` if set, else `spt` runs with Solo5 and `qemu` (a boot each)
    /// without.
    pub fn count(&self, var: &str, spt: usize, qemu: usize) -> usize {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(match self {
                Workload::Spt(_) => spt,
                Workload::Qemu(..) => qemu,
            })
    }

    /// Build the workload's image and import it into `c`; its reference.
    pub fn image(&self, c: &Containerd) -> String {
        let (kernel, meta) = match self {
            Workload::Spt(k) => (
                k,
                [
                    ("unikernelType", "mirage"),
                    ("hypervisor", "spt"),
                    ("cmdline", "Hello_Solo5"),
                ],
            ),
            Workload::Qemu(k, _) => (
                k,
                [
                    ("unikernelType", "unikraft"),
                    ("hypervisor", "qemu"),
                    ("cmdline", "scale"),
                ],
            ),
        };
        let archive = build_unikernel_image(&c.dir, "ushim-scale", kernel, &meta);
        let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
        assert!(out.status.success(), "import: {}", text(&out.stderr));
        "docker.io/library/ushim-scale:latest".to_string()
    }

    /// What a run that worked printed.
    pub fn marker(&self) -> &'static str {
        match self {
            // test_hello prints it when its command line is Hello_Solo5.
            Workload::Spt(_) => "SUCCESS",
            Workload::Qemu(..) => "URUNC-TESTKERNEL cmdline:",
        }
    }
}

/// `ctr ARGS...` against `c`, killed after 120 s (coreutils `timeout`:
/// exit 137 then): a bound on a hang, not a timing measurement. Unlike a
/// polling wait it adds no latency, which 1000 sequential runs would sum.
pub fn ctr_bounded(c: &Containerd, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", "120"])
        .arg(&c.ctr)
        .arg("--address")
        .arg(&c.sock)
        .args(["--namespace", &c.namespace])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// One lifecycle: `ctr run --rm --runtime io.containerd.urunc.v2 EXTRA...
/// IMAGE ID`, which must exit 0 and print `w`'s marker.
pub fn lifecycle(
    c: &Containerd,
    w: &Workload,
    image: &str,
    id: &str,
    extra: &[&str],
) -> Result<(), String> {
    let mut a = vec!["run", "--rm", "--runtime", RUNTIME];
    a.extend_from_slice(extra);
    a.extend_from_slice(&[image, id]);
    let out = ctr_bounded(c, &a);
    if !out.status.success() {
        return Err(format!(
            "{id}: ctr run: {}: {}",
            out.status,
            text(&out.stderr).trim()
        ));
    }
    if !text(&out.stdout).contains(w.marker()) {
        return Err(format!(
            "{id}: no {:?} in {:?}",
            w.marker(),
            text(&out.stdout)
        ));
    }
    Ok(())
}

/// Lines of `ctr ARGS...` output, trimmed, non-empty.
fn ctr_lines(c: &Containerd, args: &[&str]) -> Vec<String> {
    text(&c.ctr(args).stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup directories `ctr` puts containers of `c` in (`/<namespace>/<id>`,
/// containerd's default `cgroupsPath`), in every hierarchy; with
/// `parent_too`, the `/<namespace>` parent itself as well (urunc removes
/// the parents it made; runc leaves them).
fn cgroups_of(c: &Containerd, parent_too: bool) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut hierarchies = vec![root.to_path_buf()];
    if let Ok(rd) = fs::read_dir(root) {
        hierarchies.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let mut found = vec![];
    for h in hierarchies {
        let parent = h.join(&c.namespace);
        if !parent.is_dir() {
            continue;
        }
        if parent_too {
            found.push(parent.clone());
        }
        if let Ok(rd) = fs::read_dir(&parent) {
            found.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    found
}

/// Remove the (empty) `/<namespace>` cgroup parents runc left.
pub fn remove_cgroup_parent(c: &Containerd) {
    for p in cgroups_of(c, true) {
        let _ = fs::remove_dir(p);
    }
}

/// The argv of process `pid` (empty when it is gone).
fn argv(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Processes of `c` other than containerd itself: its shims (by
/// `-namespace`), and whatever runs from, in or on a path below its
/// directory (the monitors: their root, cwd or command line is in a
/// bundle).
pub fn processes_of(c: &Containerd) -> Vec<String> {
    let me = std::process::id() as i32;
    // With the slash: /tmp/ushim-P-soak is a prefix of /tmp/ushim-P-soakshim.
    let dir = format!("{}/", c.dir.display());
    let mut found = vec![];
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || pid == c.pid() {
            continue;
        }
        let args = argv(pid);
        let shim = args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-urunc-v2"))
            && args
                .windows(2)
                .any(|w| w[0] == "-namespace" && w[1] == c.namespace);
        let below =
            |link: &str| fs::read_link(e.path().join(link)).is_ok_and(|p| p.starts_with(&c.dir));
        let mentions = args.iter().any(|a| a.contains(&dir));
        if shim || mentions || below("root") || below("cwd") {
            found.push(format!("{pid} {}", args.join(" ")));
        }
    }
    found
}

/// What is left of `c`'s containers: tasks, containers, active
/// snapshots, bundles, urunc state, mounts, processes, cgroups (see
/// [`cgroups_of`] for `cgroup_parent`). Empty when nothing is. Polled
/// (bounded: 10 s) while something is: an idle shim exits a moment after
/// containerd's `Shutdown`.
pub fn leftovers(c: &Containerd, cgroup_parent: bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = leftovers_now(c, cgroup_parent);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn leftovers_now(c: &Containerd, cgroup_parent: bool) -> Vec<String> {
    let mut left = vec![];
    let mut add = |what: &str, items: Vec<String>| {
        if !items.is_empty() {
            left.push(format!("{what}: {items:?}"));
        }
    };
    add("tasks", ctr_lines(c, &["task", "ls", "-q"]));
    add("containers", ctr_lines(c, &["container", "ls", "-q"]));
    // `ctr snapshot ls`: KEY PARENT KIND; the image's layer is Committed.
    let active = ctr_lines(c, &["snapshot", "ls"])
        .into_iter()
        .skip(1)
        .filter(|l| l.split_whitespace().last() == Some("Active"))
        .collect();
    add("active snapshots", active);
    let bundles = c.dir.join("state/io.containerd.runtime.v2.task");
    add("bundles", entries(&bundles.join(&c.namespace)));
    add("urunc state", entries(&c.runtime_state("")));
    add("mounts", c.mounts_below());
    add("processes", processes_of(c));
    let cgs = cgroups_of(c, cgroup_parent);
    add(
        "cgroups",
        cgs.iter().map(|p| p.display().to_string()).collect(),
    );
    left
}

/// Memory and descriptors of one process at one point of a soak.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Lifecycles done when it was taken.
    pub after: usize,
    pub rss_kib: u64,
    /// Shares of pages shared with other processes (a shim's text with
    /// the other shims running at the time) count in it: it moves with
    /// what else runs.
    pub pss_kib: u64,
    /// Anonymous memory (heap, stacks): where a leak grows.
    pub anon_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

/// A `Name:  value kB` field of a /proc file.
fn proc_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sample process `pid` (smaps_rollup for RSS, PSS and anonymous memory,
/// /proc/PID/fd, Threads of /proc/PID/status).
pub fn sample(pid: i32, after: usize) -> Sample {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Sample {
        after,
        rss_kib: proc_field(&rollup, "Rss"),
        pss_kib: proc_field(&rollup, "Pss"),
        anon_kib: proc_field(&rollup, "Anonymous"),
        fds: fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| rd.count())
            .unwrap_or(0),
        threads: proc_field(&status, "Threads") as usize,
    }
}

/// The samples as a table, titled.
pub fn table(title: &str, samples: &[Sample]) -> String {
    let mut s = format!(
        "{title}\n  {:>6} {:>8} {:>8} {:>9} {:>4} {:>7}\n",
        "runs", "RSS KiB", "PSS KiB", "anon KiB", "fds", "threads"
    );
    for x in samples {
        s.push_str(&format!(
            "  {:>6} {:>8} {:>8} {:>9} {:>4} {:>7}\n",
            x.after, x.rss_kib, x.pss_kib, x.anon_kib, x.fds, x.threads
        ));
    }
    s
}

/// How much a soaked process may grow from the sample after the warm-up
/// to the last. A leak of one descriptor or thread per lifecycle adds
/// hundreds.
pub struct Bounds {
    pub fds: usize,
    pub threads: usize,
    pub anon_kib: u64,
}

/// Flat from sample `warm` to the last, within `b`.
pub fn assert_flat(what: &str, samples: &[Sample], warm: usize, b: &Bounds) {
    let (w, last) = (samples[warm], samples[samples.len() - 1]);
    let t = table(what, samples);
    assert!(last.fds <= w.fds + b.fds, "{what}: descriptors grow\n{t}");
    assert!(
        last.threads <= w.threads + b.threads,
        "{what}: threads grow\n{t}"
    );
    assert!(
        last.anon_kib <= w.anon_kib + b.anon_kib,
        "{what}: anonymous memory grew by more than {} KiB\n{t}",
        b.anon_kib
    );
}

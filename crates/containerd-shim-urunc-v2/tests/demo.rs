//! `scripts/demo.sh`, the README's main job, run with this workspace's
//! binaries: the page it prints must come from the Linux guest (its
//! kernel, the address the script gave eth0), and it must leave nothing
//! behind (containerd, shim, QEMU, network namespace, veth, mounts,
//! runtime state, temporary directories), also when a step fails.
//! Needs root, QEMU, containerd/ctr, ip, curl, busybox-static, a kernel in
//! /boot, and `urunc` and `urunc-pack` built next to the shim (`cargo test
//! --workspace` builds them; alone: `cargo build -p urunc -p urunc-pack`).

mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

/// Both tests start a containerd and boot or fail to boot a guest on few
/// cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Bins {
    urunc: PathBuf,
    pack: PathBuf,
    shim: PathBuf,
}

fn need(test: &str) -> Option<Bins> {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP: {test}: needs root (containerd, network namespaces)");
        return None;
    }
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("ip", "iproute2"),
        ("curl", "curl"),
        ("cpio", "cpio"),
        ("busybox", "busybox-static"),
    ] {
        if support::which(tool).is_none() {
            println!("SKIP: {test}: {tool} not found (apt-get install {pkg})");
            return None;
        }
    }
    if !has_kernel() {
        println!("SKIP: {test}: no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return None;
    }
    let shim = PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-urunc-v2"));
    let dir = shim.parent().unwrap().to_path_buf();
    let bins = Bins {
        urunc: dir.join("urunc"),
        pack: dir.join("urunc-pack"),
        shim,
    };
    for b in [&bins.urunc, &bins.pack] {
        if !b.is_file() {
            println!(
                "SKIP: {test}: {} not built (cargo build -p urunc -p urunc-pack)",
                b.display()
            );
            return None;
        }
    }
    Some(bins)
}

/// Whether /boot has a kernel whose modules are installed (demo.sh takes
/// the newest such).
fn has_kernel() -> bool {
    fs::read_dir("/boot").is_ok_and(|d| {
        d.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .is_some_and(|v| {
                    Path::new("/lib/modules")
                        .join(v)
                        .join("modules.dep")
                        .is_file()
                })
        })
    })
}

struct Run {
    pid: u32,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs demo.sh with `env`, its temporary files below `tmp`. Bounded:
/// SIGTERM after 240 s (the script's trap still cleans up). `interrupt`
/// is polled with the script's PID while it runs; when it returns true,
/// the script gets SIGTERM.
fn run_demo(
    bins: &Bins,
    tmp: &Path,
    env: &[(&str, &str)],
    mut interrupt: impl FnMut(u32) -> bool,
) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo.sh");
    let start = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script)
        .env("URUNC", &bins.urunc)
        .env("URUNC_PACK", &bins.pack)
        .env("URUNC_SHIM", &bins.shim)
        .env("TMPDIR", tmp)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let term = || {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    };
    let mut sent = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if !sent && (start.elapsed() > Duration::from_secs(240) || interrupt(pid)) {
            term();
            sent = true;
        }
        thread::sleep(Duration::from_millis(100));
    };
    Run {
        pid,
        code: status.code(),
        // Lossy: the script copies the guest's console into stderr when it
        // fails, and a console need not be UTF-8.
        stdout: String::from_utf8_lossy(&fs::read(&out).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err).unwrap_or_default()).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// What a run with shell PID `pid` and temporary directory `tmp` left
/// behind, one line per thing; empty when nothing.
fn leftovers(pid: u32, tmp: &Path) -> Vec<String> {
    let name = format!("urunc-demo-{pid}");
    let tmps = format!("{}/", tmp.display());
    let mut left = vec![];
    for e in fs::read_dir(tmp).unwrap().flatten() {
        left.push(format!("temporary file {}", e.path().display()));
    }
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    if support::text(&netns.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(&name))
    {
        left.push(format!("network namespace {name}"));
    }
    let link = Command::new("ip")
        .args(["link", "show", "dev", &format!("udemo{pid}")])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    if link.status.success() {
        left.push(format!("veth udemo{pid}"));
    }
    let run = Path::new("/run/containerd/urunc").join(&name);
    if run.exists() {
        left.push(format!("runtime state {}", run.display()));
    }
    for l in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        if let Some(m) = l.split_whitespace().nth(4) {
            if m.starts_with(&tmps) || m.contains(&name) {
                left.push(format!("mount {m}"));
            }
        }
    }
    // containerd (its config is in tmp), the shim (-namespace <name>),
    // QEMU (the kernel path is in the bundle below tmp or the runtime
    // state below /run/containerd/urunc/<name>).
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&tmps) || cmd.contains(&name) {
            left.push(format!(
                "process {}: {cmd}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    left
}

/// Leftovers once the processes had a moment to go (bounded wait).
fn settled_leftovers(pid: u32, tmp: &Path) -> Vec<String> {
    let mut left = leftovers(pid, tmp);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        left = leftovers(pid, tmp);
    }
    left
}

/// Value after `key` on the page line starting with `key`.
fn field<'a>(page: &'a str, key: &str) -> &'a str {
    page.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{page}"))
}

#[test]
fn demo_serves_the_guest_page_and_leaves_nothing() {
    let test = "demo_serves_the_guest_page_and_leaves_nothing";
    let Some(bins) = need(test) else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::Builder::new().prefix("udt").tempdir().unwrap();
    let r = run_demo(&bins, tmp.path(), &[], |_| false);
    let all = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    println!("{}", r.stdout);
    println!("demo.sh took {:.1} s", r.elapsed.as_secs_f64());
    assert_eq!(r.code, Some(0), "{all}");

    // The address curl asked and the one the guest reports are the one
    // the script gave eth0 in the namespace.
    let url = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("$ curl http://"))
        .unwrap_or_else(|| panic!("no curl line: {all}"));
    let ip = url.split('/').next().unwrap();
    assert!(ip.starts_with("10.201."), "{all}");
    let page = &r.stdout[r.stdout.find("Hello from a Linux guest").expect(&all)..];
    assert_eq!(
        field(page, "address:"),
        format!("{ip}/30 on eth0 (from the kernel's ip= parameter)"),
        "{all}"
    );
    // The kernel the script packed is the one the guest runs.
    let kver = r
        .stdout
        .split("Debian's kernel /boot/vmlinuz-")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kernel line: {all}"));
    assert!(
        field(page, "kernel:").starts_with(&format!("Linux {kver} ")),
        "expected the guest to run {kver}: {all}"
    );
    assert!(field(page, "cpu:").contains("QEMU"), "{all}");
    let uptime: f64 = field(page, "uptime:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect(&all);
    assert!(uptime > 0.0 && uptime < 240.0, "{all}");
    assert!(
        r.stdout.contains("accelerator: KVM") || r.stdout.contains("accelerator: TCG"),
        "{all}"
    );
    assert!(
        r.stdout
            .contains("qemu-system-x86_64 (the container's process"),
        "{all}"
    );
    assert!(r.stdout.contains("removed: the container"), "{all}");
    assert_eq!(settled_leftovers(r.pid, tmp.path()), Vec::<String>::new());
    // The monitor is gone too (its command line names no path of the run:
    // it was started inside the container's rootfs).
    let qemu: u32 = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("task web: pid "))
        .and_then(|l| l.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no task pid line: {all}"));
    let exe = fs::read_link(format!("/proc/{qemu}/exe")).unwrap_or_default();
    assert!(
        !exe.to_string_lossy().contains("qemu-system"),
        "QEMU {qemu} still runs"
    );
}

/// A run that fails late (the shim's runtime cannot create the container,
/// after containerd is up and the namespace made): it says so, exits
/// non-zero, and its trap removes everything all the same.
#[test]
fn failed_demo_leaves_nothing() {
    let test = "failed_demo_leaves_nothing";
    let Some(bins) = need(test) else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::Builder::new().prefix("udt").tempdir().unwrap();
    let broken = Bins {
        urunc: PathBuf::from("/bin/false"),
        pack: bins.pack.clone(),
        shim: bins.shim.clone(),
    };
    let r = run_demo(&broken, tmp.path(), &[("URUNC_DEMO_ACCEL", "tcg")], |_| {
        false
    });
    let all = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(1), "{all}");
    assert!(r.stdout.contains("[4/5] network namespace"), "{all}");
    assert!(r.stderr.contains("demo.sh: error: ctr run failed"), "{all}");
    assert!(r.stderr.contains("removed what it had made"), "{all}");
    assert_eq!(settled_leftovers(r.pid, tmp.path()), Vec::<String>::new());
}

/// SIGTERM (as from Ctrl-C's neighbour, `kill`) while the guest boots,
/// with containerd, the shim and QEMU running: the trap removes everything
/// and the processes in the container's network namespace are gone.
#[test]
fn interrupted_demo_leaves_nothing() {
    let test = "interrupted_demo_leaves_nothing";
    let Some(bins) = need(test) else { return };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::Builder::new().prefix("udt").tempdir().unwrap();
    // The processes in the run's network namespace (the container's
    // waiting process, then QEMU), once QEMU is among them.
    let mut inside: Vec<u32> = vec![];
    let r = run_demo(&bins, tmp.path(), &[("URUNC_DEMO_ACCEL", "tcg")], |pid| {
        let o = Command::new("ip")
            .args(["netns", "pids", &format!("urunc-demo-{pid}")])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        inside = support::text(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        inside.iter().any(|p| {
            fs::read_link(format!("/proc/{p}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("qemu-system"))
        })
    });
    let all = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    );
    assert!(!inside.is_empty(), "QEMU never ran in the namespace: {all}");
    assert_eq!(r.code, Some(143), "{all}");
    assert!(r.stderr.contains("removed what it had made"), "{all}");
    assert_eq!(settled_leftovers(r.pid, tmp.path()), Vec::<String>::new());
    for p in inside {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "process {p} of the container still runs"
        );
    }
}

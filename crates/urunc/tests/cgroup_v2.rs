//! cgroup v2 for real: this host may mount cgroup v1 (hybrid), so the test
//! boots a Linux VM under QEMU/TCG (Debian's kernel, the fixture busybox
//! initramfs plus our /cg2init) with the host's / shared read-only over 9p
//! and a unified cgroup2 hierarchy mounted inside. There
//! `cgroup_v2/check.sh` runs the workspace's urunc with the tiny test
//! kernel on QEMU/TCG and prints `CG2 ...` lines: memory.max, cpu.max,
//! cpu.weight, pids.max, the monitor in cgroup.procs, pause/resume through
//! cgroup.freeze, `events --stats`, the systemd driver's path, and that
//! delete removes the cgroups. The test asserts on those lines.

mod support;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TEST: &str = "cgroup_v2_limits_freezer_systemd_paths_and_stats_in_a_vm";
const GUEST_MIB: u64 = 64;
const OVERHEAD_MIB: u64 = 64; // QEMU's default overhead reserve
const VM_TIMEOUT: Duration = Duration::from_secs(300);

/// One entry of a `newc` cpio archive (the initramfs format, see the
/// kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The fixture initramfs with /cg2init added: an uncompressed cpio segment
/// in front of the gzip one (the kernel unpacks concatenated segments).
fn initrd(fixture: &Path, out: &Path) {
    let mut img = vec![];
    newc_entry(
        &mut img,
        1,
        "cg2init",
        0o100755,
        include_bytes!("cgroup_v2/init"),
    );
    newc_entry(&mut img, 2, "TRAILER!!!", 0, b"");
    while !img.len().is_multiple_of(512) {
        img.push(0);
    }
    img.extend(std::fs::read(fixture).unwrap());
    std::fs::write(out, img).unwrap();
}

/// A bundle of the tiny test kernel that keeps running, written to `dir`
/// (not under /tmp, which the VM covers with a tmpfs).
fn bundle(dir: &Path, cgroups_path: &str) {
    let mut b = tiny_bundle(&["app", "hang"]);
    b.memory_mib(GUEST_MIB);
    b.spec["linux"]["resources"]["cpu"] = json!({"quota": 95000, "period": 100000, "shares": 512});
    b.spec["linux"]["resources"]["pids"] = json!({"limit": 64});
    b.spec["linux"]["cgroupsPath"] = json!(cgroups_path);
    std::fs::create_dir_all(dir.join("rootfs/unikernel")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&b.spec).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        b.rootfs().join("unikernel/kernel"),
        dir.join("rootfs/unikernel/kernel"),
    )
    .unwrap();
}

/// The value after `CG2 <key> ` (first such line).
fn get<'a>(lines: &'a [String], key: &str) -> &'a str {
    let prefix = format!("{key} ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line 'CG2 {key} ...' in:\n{}", lines.join("\n")))
}

#[test]
fn cgroup_v2_limits_freezer_systemd_paths_and_stats_in_a_vm() {
    if !need_qemu(TEST) {
        return;
    }
    let kernel_present = std::fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false);
    if !kernel_present {
        println!("SKIP: {TEST}: no /boot/vmlinuz-* (Debian package: linux-image-amd64)");
        return;
    }
    let fx = fixtures();
    let work =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cg2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    std::fs::write(
        work.join("config.toml"),
        "[monitors.qemu]\naccel = \"tcg\"\nmachine = \"microvm\"\n",
    )
    .unwrap();
    bundle(&work.join("bundle"), "/urunc-cg2/c1");
    bundle(&work.join("bundle-sd"), "urunc-cg2.slice:cg2test:c2");
    initrd(&fx.join("initramfs.cpio.gz"), &work.join("initrd"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cgroup_v2/check.sh");
    let console = work.join("console.log");
    let append = format!(
        "console=ttyS0 rdinit=/cg2init panic=-1 loglevel=4 cg2.script={} cg2.work={} cg2.urunc={}",
        script.display(),
        work.display(),
        urunc_bin().display()
    );
    let started = Instant::now();
    let mut vm = Command::new("qemu-system-x86_64")
        .args(["-M", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "2"])
        .args(["-m", "512", "-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(fx.join("bzImage"))
        .arg("-initrd")
        .arg(work.join("initrd"))
        .args(["-append", &append])
        .args([
            "-fsdev",
            "local,id=hostfs,path=/,readonly=on,security_model=none",
            "-device",
            "virtio-9p-pci,fsdev=hostfs,mount_tag=host",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let exited = loop {
        if let Some(st) = vm.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > VM_TIMEOUT {
            let _ = vm.kill();
            let _ = vm.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let out = std::fs::read_to_string(&console).unwrap_or_default();
    let lines: Vec<String> = marker_lines(&out, "CG2 ")
        .into_iter()
        .map(|l| l["CG2 ".len()..].to_string())
        .collect();
    println!("VM ran {:.1} s; it printed:", elapsed.as_secs_f64());
    for l in &lines {
        println!("  {l}");
    }
    let st = exited.unwrap_or_else(|| panic!("VM still running after {VM_TIMEOUT:?}:\n{out}"));
    assert!(st.success(), "VM: {st}:\n{out}");
    assert!(
        lines.iter().any(|l| l == "done"),
        "the check script did not finish:\n{out}"
    );
    let fails: Vec<_> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{fails:?}\n{out}");

    assert_eq!(get(&lines, "fstype"), "cgroup2fs");
    let controllers: Vec<&str> = get(&lines, "controllers").split(' ').collect();
    for c in ["cpu", "memory", "pids"] {
        assert!(controllers.contains(&c), "{controllers:?}");
    }
    let limit = (GUEST_MIB + OVERHEAD_MIB) << 20;
    // cgroupfs driver
    let pid = get(&lines, "c1 pid");
    assert_eq!(get(&lines, "c1 memory.max"), limit.to_string());
    assert_eq!(get(&lines, "c1 cpu.max"), "95000 100000");
    // runc's conversion of shares (2..262144) to weight (1..10000):
    // 1 + (shares - 2) * 9999 / 262142
    assert_eq!(get(&lines, "c1 cpu.weight"), "20");
    assert_eq!(get(&lines, "c1 pids.max"), "64");
    assert!(
        get(&lines, "c1 procs").split_whitespace().any(|p| p == pid),
        "monitor {pid} not in cgroup.procs: {lines:?}"
    );
    assert_eq!(get(&lines, "c1 proc-cgroup"), "0::/urunc-cg2/c1");
    // Born in it (clone3 CLONE_INTO_CGROUP, this VM's Linux 6.1), not
    // moved in: create's debug line says which.
    assert_eq!(get(&lines, "c1 placed"), "born", "{lines:?}");
    assert_eq!(
        get(&lines, "c1 paused"),
        "status=paused freeze=1 frozen=1",
        "pause returns once the cgroup is frozen"
    );
    assert_eq!(
        get(&lines, "c1 resumed"),
        "status=running freeze=0 frozen=0"
    );
    let ev: Value = serde_json::from_str(get(&lines, "c1 stats")).unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["id"].as_str()),
        (Some("stats"), Some("c1"))
    );
    let d = &ev["data"];
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{ev}");
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{ev}");
    assert_eq!(d["memory"]["usage"]["limit"].as_u64(), Some(limit), "{ev}");
    assert!(
        d["memory"]["usage"]["max"].as_u64().unwrap()
            >= d["memory"]["usage"]["usage"].as_u64().unwrap(),
        "{ev}"
    );
    assert!(d["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    assert_eq!(
        get(&lines, "c1 after-delete"),
        "cgroup=gone parent=gone state=gone"
    );
    // systemd driver: slice "urunc-cg2.slice" nests under "urunc.slice"
    let pid = get(&lines, "c2 pid");
    assert_eq!(
        get(&lines, "c2 scope"),
        "/sys/fs/cgroup/urunc.slice/urunc-cg2.slice/cg2test-c2.scope"
    );
    assert_eq!(get(&lines, "c2 memory.max"), limit.to_string());
    assert_eq!(get(&lines, "c2 placed"), "born", "{lines:?}");
    assert!(
        get(&lines, "c2 procs").split_whitespace().any(|p| p == pid),
        "{lines:?}"
    );
    assert_eq!(get(&lines, "c2 after-delete"), "scope=gone slices=gone");
    let _ = std::fs::remove_dir_all(&work);
}

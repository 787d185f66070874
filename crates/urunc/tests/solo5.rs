//! Real Solo5 runs through urunc: Solo5's own test unikernels on
//! `solo5-hvt` and `solo5-spt`, with the manifest read by urunc.
//!
//! Needs root, the tenders on `$PATH` and Solo5's test unikernels
//! (`test_hello.hvt`, ... as built by Solo5's `make`), looked up in
//! `$URUNC_SOLO5_TESTS`, `/usr/local/lib/solo5-tests`,
//! `/usr/local/lib/solo5/tests` and
//! `/opt/solo5-src/tests` (either flat or in Solo5's `test_<x>/` layout).
//! Each test prints `SKIP: <test>: <reason>` when one is missing.

mod support;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::netns::{self, Netns};
use support::*;

const MARK: &str = "Command line is: '";

/// Solo5's test unikernel `name` built for `target` (`hvt`/`spt`).
fn solo5_test(name: &str, target: &str) -> Option<PathBuf> {
    let file = format!("{name}.{target}");
    let mut dirs: Vec<PathBuf> = vec![];
    if let Some(d) = std::env::var_os("URUNC_SOLO5_TESTS") {
        dirs.push(d.into());
    }
    dirs.push("/usr/local/lib/solo5-tests".into());
    dirs.push("/usr/local/lib/solo5/tests".into());
    dirs.push("/opt/solo5-src/tests".into());
    dirs.into_iter()
        .flat_map(|d| [d.join(&file), d.join(name).join(&file)])
        .find(|p| p.is_file())
}

/// Root, the tender, KVM for hvt and the test unikernel, or SKIP.
fn need_solo5(test: &str, name: &str, target: &str) -> Option<PathBuf> {
    if !need_root(test) || !need_bin(test, &format!("solo5-{target}")) {
        return None;
    }
    if target == "hvt" && !Path::new("/dev/kvm").exists() {
        println!("SKIP: {test}: no /dev/kvm");
        return None;
    }
    let k = solo5_test(name, target);
    if k.is_none() {
        println!(
            "SKIP: {test}: Solo5 test unikernel {name}.{target} not found (set URUNC_SOLO5_TESTS)"
        );
    }
    k
}

fn solo5_bundle(kernel: &Path, guest: &str, target: &str, args: &[&str]) -> Bundle {
    let mut b = Bundle::new();
    b.add_file(kernel, "/unikernel/app")
        .unikernel(guest, target, "/unikernel/app")
        .memory_mib(32)
        .args(args);
    b
}

/// create + start; returns the exit status and stdout.
fn run_to_exit(env: &Env, bundle: &str, id: &str) -> (i32, String) {
    subreaper();
    let pid = env.create(bundle, id, &[]);
    env.ok(&["start", id]);
    let code = wait_exit(pid, Duration::from_secs(60)).expect("the monitor did not exit");
    let out = env.out(id);
    env.ok(&["delete", id]);
    (code, out)
}

#[test]
fn hello_gets_the_command_line_on_hvt_and_spt() {
    for target in ["hvt", "spt"] {
        let test = format!("hello_gets_the_command_line_on_{target}");
        let Some(k) = need_solo5(&test, "test_hello", target) else {
            continue;
        };
        let env = Env::new("");
        // MirageOS words are the application's arguments, one argv element
        // each: the tender joins them with spaces.
        let b = solo5_bundle(&k, "mirage", target, &["Hello_Solo5"]);
        let (code, out) = run_to_exit(&env, &b.write(), &format!("hello-{target}"));
        assert_eq!(code, 0, "{out}{}", env.err(&format!("hello-{target}")));
        assert_eq!(
            marker_lines(&out, MARK),
            [format!("{MARK}Hello_Solo5'")],
            "{out}"
        );
        assert!(out.contains("SUCCESS"), "{out}");
        // A word with a space stays one argument up to the tender.
        let b = solo5_bundle(&k, "mirage", target, &["a b", "c"]);
        let (code, out) = run_to_exit(&env, &b.write(), &format!("hello2-{target}"));
        assert_eq!(code, 0, "{out}");
        assert_eq!(marker_lines(&out, MARK), [format!("{MARK}a b c'")], "{out}");
        // Rumprun's command line is one JSON word.
        let b = solo5_bundle(&k, "rumprun", target, &["/hello", "x"]);
        let (code, out) = run_to_exit(&env, &b.write(), &format!("hello3-{target}"));
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            marker_lines(&out, MARK),
            [format!("{MARK}{{\"cmdline\":\"/hello x\"}}'")],
            "{out}"
        );
    }
}

#[test]
fn blk_uses_the_disk_from_the_rootfs() {
    for target in ["hvt", "spt"] {
        let test = format!("blk_uses_the_disk_from_the_rootfs_{target}");
        let Some(k) = need_solo5(&test, "test_blk", target) else {
            continue;
        };
        let env = Env::new("");
        let mut b = solo5_bundle(&k, "mirage", target, &[]);
        let disk = b.rootfs().join("data/disk.img");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
        b.annotate("com.urunc.unikernel.block", "/data/disk.img");
        let id = format!("blk-{target}");
        let (code, out) = run_to_exit(&env, &b.write(), &id);
        assert_eq!(code, 0, "{out}{}", env.err(&id));
        assert!(out.contains("SUCCESS"), "{out}");
        // test_blk writes a pattern to the disk: the guest wrote the file
        // in the rootfs, not a copy.
        assert!(
            std::fs::read(&disk).unwrap().iter().any(|&b| b != 0),
            "the guest did not write to {}",
            disk.display()
        );
    }
}

#[test]
fn missing_declared_disk_fails_create_naming_the_device() {
    let test = "missing_declared_disk_fails_create_naming_the_device";
    let Some(k) = need_solo5(test, "test_blk", "spt") else {
        return;
    };
    let env = Env::new("");
    let b = solo5_bundle(&k, "mirage", "spt", &[]);
    let o = env.urunc(&["create", "--bundle", &b.write(), "blk-none"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("declares block device \"storage\"") && t.contains("no disk"),
        "{t}"
    );
    assert!(!env.state_dir("blk-none").exists());
}

#[test]
fn kernel_for_the_other_tender_is_refused() {
    let test = "kernel_for_the_other_tender_is_refused";
    let Some(k) = need_solo5(test, "test_hello", "spt") else {
        return;
    };
    if !need_bin(test, "solo5-hvt") {
        return;
    }
    let env = Env::new("");
    let b = solo5_bundle(&k, "mirage", "hvt", &[]);
    let o = env.urunc(&["create", "--bundle", &b.write(), "wrong-target"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("built for Solo5 spt, not hvt"), "{t}");
}

#[test]
fn exit_status_is_the_guests() {
    for target in ["hvt", "spt"] {
        let test = format!("exit_status_is_the_guests_{target}");
        let Some(k) = need_solo5(&test, "test_exception", target) else {
            continue;
        };
        let env = Env::new("");
        let b = solo5_bundle(&k, "mirage", target, &[]);
        let id = format!("exc-{target}");
        // The tender ends a guest that traps with status 255 (hvt) or
        // a SIGSEGV caught as abort (spt): whatever it is, it is the
        // container's.
        let (code, out) = run_to_exit(&env, &b.write(), &id);
        assert_ne!(code, 0, "{out}");
        let direct = std::process::Command::new(which(&format!("solo5-{target}")).unwrap())
            .arg("--mem=32")
            .arg(&k)
            .output()
            .unwrap();
        let direct_code = direct.status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&direct.status).unwrap_or(0)
        });
        assert_eq!(code, direct_code, "{out}");
    }
}

/// `Seccomp:` of `/proc/PID/status` once the monitor has run (it stays a
/// zombie, our child, until we wait for it).
fn seccomp_mode_of_monitor(env: &Env, bundle: &str, id: &str) -> (String, i32, String) {
    subreaper();
    let pid = env.create(bundle, id, &[]);
    env.ok(&["start", id]);
    // Wait for the guest's last line, then read the (possibly zombie)
    // monitor's status before reaping it.
    assert!(
        env.wait_out(id, "solo5_exit", Duration::from_secs(60)),
        "{}",
        env.out(id)
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let code = wait_exit(pid, Duration::from_secs(60)).expect("monitor exit");
    let out = env.out(id);
    env.ok(&["delete", id]);
    (mode, code, out)
}

#[test]
fn hvt_runs_under_urunc_seccomp_filter() {
    let test = "hvt_runs_under_urunc_seccomp_filter";
    let Some(k) = need_solo5(test, "test_hello", "hvt") else {
        return;
    };
    let env = Env::new("");
    let b = solo5_bundle(&k, "mirage", "hvt", &["Hello_Solo5"]);
    let (mode, code, out) = seccomp_mode_of_monitor(&env, &b.write(), "sc-on");
    assert_eq!(
        mode, "2",
        "seccomp mode of solo5-hvt with seccomp on\n{out}"
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // Unconfined (no linux.seccomp in the spec): no filter.
    let mut b = solo5_bundle(&k, "mirage", "hvt", &["Hello_Solo5"]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    let (mode, code, out) = seccomp_mode_of_monitor(&env, &b.write(), "sc-off");
    assert_eq!(
        mode, "0",
        "seccomp mode of solo5-hvt with seccomp off\n{out}"
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn spt_confines_itself() {
    let test = "spt_confines_itself";
    let Some(k) = need_solo5(test, "test_hello", "spt") else {
        return;
    };
    let env = Env::new("");
    let mut b = solo5_bundle(&k, "mirage", "spt", &["Hello_Solo5"]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    let (mode, code, out) = seccomp_mode_of_monitor(&env, &b.write(), "spt-sc");
    assert_eq!(mode, "2", "solo5-spt installs its own filter\n{out}");
    assert_eq!(code, 0, "{out}");
}

/// The container's eth0 (10.0.0.2/24, the address Solo5's test_net
/// serves) in `pod`, a veth to `peer` (10.0.0.1).
fn pod_with_peer() -> (Netns, Netns) {
    netns::pod_with_peer("10.0.0.2", "10.0.0.1")
}

#[test]
fn net_device_gets_the_containers_tap() {
    for target in ["hvt", "spt"] {
        let test = format!("net_device_gets_the_containers_tap_{target}");
        let Some(k) = need_solo5(&test, "test_net", target) else {
            continue;
        };
        if !need_bin(&test, "ip") {
            continue;
        }
        let (pod, _peer) = pod_with_peer();
        let env = Env::new("");
        let mut b = solo5_bundle(&k, "mirage", target, &[]);
        b.netns(&pod.path());
        let id = format!("net-{target}");
        subreaper();
        let pid = env.create(&b.write(), &id, &[]);
        let o = env.urunc(&["start", &id]);
        if !o.status.success() && text(&o).contains("no network interface") {
            println!("SKIP: {test}: urunc found no network in the pod namespace (network discovery not available): {}", text(&o));
            let _ = env.urunc(&["delete", "--force", &id]);
            return;
        }
        assert!(o.status.success(), "{}", text(&o));
        let code = wait_exit(pid, Duration::from_secs(60)).expect("monitor exit");
        let out = env.out(&id);
        // Solo5's test_net reads only the first character of its command
        // line ('v' or 'l'), and MirageOS words start with --ipv4=, so it
        // stops there with SOLO5_EXIT_FAILURE (1) — after the tender
        // attached the container's tap as "service0" (a tender that
        // cannot attach it, or is killed by its seccomp filter, never runs
        // the guest) and the guest got urunc's network words.
        assert!(
            out.contains("**** Solo5 standalone test_net ****"),
            "{out}{}",
            env.err(&id)
        );
        assert!(out.contains("Error in command line"), "{out}");
        assert_eq!(code, 1, "{out}");
        env.ok(&["delete", &id]);
    }
}

/// Builds tests/fixtures/solo5-ping (once per test) into `dir`; None (after
/// printing SKIP) without a Solo5 toolchain.
fn ping_unikernel(test: &str, dir: &Path, target: &str) -> Option<PathBuf> {
    build_fixture(test, "solo5-ping", dir)?;
    Some(dir.join(format!("ping.{target}")))
}

#[test]
fn guest_answers_ping_through_the_containers_tap() {
    for target in ["hvt", "spt"] {
        let test = format!("guest_answers_ping_through_the_containers_tap_{target}");
        if !need_root(&test)
            || !need_bin(&test, &format!("solo5-{target}"))
            || !need_bin(&test, "ip")
            || !need_bin(&test, "busybox")
        {
            continue;
        }
        if target == "hvt" && !Path::new("/dev/kvm").exists() {
            println!("SKIP: {test}: no /dev/kvm");
            continue;
        }
        let build = tempfile::tempdir().unwrap();
        let Some(k) = ping_unikernel(&test, build.path(), target) else {
            return;
        };
        let (pod, peer) = pod_with_peer();
        let mac = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &pod.name,
                "cat",
                "/sys/class/net/eth0/address",
            ])
            .output()
            .unwrap();
        let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
        let env = Env::new("");
        let mut b = solo5_bundle(&k, "mirage", target, &["-l", "debug"]);
        b.netns(&pod.path());
        let id = format!("ping-{target}");
        subreaper();
        let pid = env.create(&b.write(), &id, &[]);
        let o = env.urunc(&["start", &id]);
        if !o.status.success() && text(&o).contains("no network interface") {
            println!("SKIP: {test}: urunc found no network in the pod namespace (network discovery not available): {}", text(&o));
            let _ = env.urunc(&["delete", "--force", &id]);
            return;
        }
        assert!(o.status.success(), "{}", text(&o));
        // Wait for the whole line, not only its start: the guest writes it
        // in pieces.
        assert!(
            env.wait_out(
                &id,
                &format!("URUNC-SOLO5-PING serving 10.0.0.2 mac {mac}\n"),
                Duration::from_secs(30)
            ),
            "{}{}",
            env.out(&id),
            env.err(&id)
        );
        // The tender starts with default signal dispositions and nothing
        // blocked: urunc (a Rust program, SIGPIPE ignored by std) resets
        // them before execve, which would otherwise keep SIG_IGN.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mask = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap()
        };
        assert_eq!(
            mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)),
            0,
            "the tender inherited an ignored SIGPIPE\n{status}"
        );
        assert_eq!(
            mask("SigBlk:"),
            0,
            "signals blocked in the tender\n{status}"
        );
        // The guest owns the container's address and MAC.
        let out = env.out(&id);
        assert_eq!(
            marker_lines(&out, "URUNC-SOLO5-PING cmdline:"),
            ["URUNC-SOLO5-PING cmdline: --ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1 -l debug"],
            "{out}"
        );
        assert_eq!(
            marker_lines(&out, "URUNC-SOLO5-PING serving"),
            [format!("URUNC-SOLO5-PING serving 10.0.0.2 mac {mac}")],
            "{out}"
        );
        let ping = std::process::Command::new("ip")
            .args([
                "netns", "exec", &peer.name, "busybox", "ping", "-c", "3", "-W", "5", "10.0.0.2",
            ])
            .output()
            .unwrap();
        let code = wait_exit(pid, Duration::from_secs(60));
        let out = env.out(&id);
        assert!(
            ping.status.success(),
            "ping from the peer: {}\nguest:\n{out}",
            text(&ping)
        );
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("URUNC-SOLO5-PING echo 3"), "{out}");
        env.ok(&["delete", &id]);
    }
}

/// MirageOS on QEMU: the same unikernel for Solo5's virtio target, with
/// the container's network as a virtio-net device.
#[test]
fn mirage_on_qemu_answers_ping() {
    let test = "mirage_on_qemu_answers_ping";
    if !need_qemu(test) || !need_bin(test, "ip") || !need_bin(test, "busybox") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let Some(k) = ping_unikernel(test, build.path(), "virtio") else {
        return;
    };
    let (pod, peer) = pod_with_peer();
    // Solo5's virtio bindings crash under this host's nested KVM, as
    // Linux does: TCG.
    let env = Env::new("[monitors.qemu]\naccel = \"tcg\"\nmachine = \"pc\"\ncpu = \"max\"\n");
    let mut b = solo5_bundle(&k, "mirage", "qemu", &[]);
    b.netns(&pod.path());
    subreaper();
    let pid = env.create(&b.write(), "mq", &[]);
    let o = env.urunc(&["start", "mq"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        env.wait_out("mq", "URUNC-SOLO5-PING serving", Duration::from_secs(60)),
        "{}{}",
        env.out("mq"),
        env.err("mq")
    );
    let ping = std::process::Command::new("ip")
        .args([
            "netns", "exec", &peer.name, "busybox", "ping", "-c", "3", "-W", "5", "10.0.0.2",
        ])
        .output()
        .unwrap();
    let answered = env.wait_out("mq", "URUNC-SOLO5-PING echo 3", Duration::from_secs(30));
    // Solo5 halts the VM at exit instead of ending QEMU: stop it.
    env.ok(&["kill", "mq", "KILL"]);
    let code = wait_exit(pid, Duration::from_secs(30));
    let out = env.out("mq");
    env.ok(&["delete", "mq"]);
    assert!(
        ping.status.success(),
        "ping from the peer: {}\nguest:\n{out}",
        text(&ping)
    );
    assert!(answered, "{out}");
    assert_eq!(
        marker_lines(&out, "URUNC-SOLO5-PING cmdline:"),
        ["URUNC-SOLO5-PING cmdline: --ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1"],
        "{out}"
    );
    assert_eq!(code, Some(137), "{out}");
}

/// urunc's manifest reader agrees with `solo5-elftool query-manifest` /
/// `query-abi` on every Solo5 test unikernel there is.
#[test]
fn manifest_reader_agrees_with_solo5_elftool() {
    use urunc_core::monitor::solo5_manifest::{read, DeviceKind};
    let test = "manifest_reader_agrees_with_solo5_elftool";
    if !need_bin(test, "solo5-elftool") {
        return;
    }
    let Some(hello) = solo5_test("test_hello", "hvt").or_else(|| solo5_test("test_hello", "spt"))
    else {
        println!("SKIP: {test}: no Solo5 test unikernels (set URUNC_SOLO5_TESTS)");
        return;
    };
    let mut dir = hello.parent().unwrap().to_path_buf();
    if dir.file_name().is_some_and(|n| n == "test_hello") {
        dir.pop();
    }
    let mut kernels: Vec<PathBuf> = walk(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "hvt" || e == "spt"))
        .collect();
    kernels.sort();
    assert!(kernels.len() >= 4, "{kernels:?}");
    let elftool = |what: &str, k: &Path| -> serde_json::Value {
        let o = std::process::Command::new("solo5-elftool")
            .args([what, k.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for k in &kernels {
        let ours = read(&std::fs::File::open(k).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", k.display()));
        let theirs: Vec<(String, String)> = elftool("query-manifest", k)["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap().into(),
                    d["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let mine: Vec<(String, String)> = ours
            .devices
            .iter()
            .map(|d| {
                let t = match d.kind {
                    DeviceKind::Block => "BLOCK_BASIC",
                    DeviceKind::Net => "NET_BASIC",
                };
                (d.name.clone(), t.to_string())
            })
            .collect();
        assert_eq!(mine, theirs, "{}", k.display());
        let abi = elftool("query-abi", k);
        let (target, version) = ours.abi.expect("ABI note");
        assert_eq!(
            target.to_string(),
            abi["target"].as_str().unwrap(),
            "{}",
            k.display()
        );
        assert_eq!(u64::from(version), abi["version"].as_u64().unwrap());
    }
    println!("{test}: {} kernels agree", kernels.len());
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Builds tests/fixtures/rumpparse (Rumprun's configuration rules in a
/// Solo5 unikernel) into `dir`; None (after printing SKIP) without a Solo5
/// toolchain.
fn rumpparse_unikernel(test: &str, dir: &Path, name: &str) -> Option<PathBuf> {
    build_fixture(test, "rumpparse", dir)?;
    Some(dir.join(name))
}

#[test]
fn rumprun_reads_argv_with_spaces_quotes_and_empty_words() {
    for target in ["hvt", "spt"] {
        let test = format!("rumprun_reads_argv_with_spaces_quotes_and_empty_words_{target}");
        if !need_root(&test) || !need_bin(&test, &format!("solo5-{target}")) {
            continue;
        }
        if target == "hvt" && !Path::new("/dev/kvm").exists() {
            println!("SKIP: {test}: no /dev/kvm");
            continue;
        }
        let env = Env::new("");
        let Some(k) = rumpparse_unikernel(&test, env.dir.path(), &format!("rumpparse.{target}"))
        else {
            continue;
        };
        let args = ["/hello", "two words", "", r#"a"b\c"#, "-x"];
        let b = solo5_bundle(&k, "rumprun", target, &args);
        let id = format!("rump-argv-{target}");
        let (code, out) = run_to_exit(&env, &b.write(), &id);
        println!("{}", marker_lines(&out, "URUNC-RUMP").join("\n"));
        assert_eq!(code, 0, "{out}");
        let argv: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, a)| format!("URUNC-RUMP argv[{i}]: {a}").trim_end().to_string())
            .collect();
        assert_eq!(marker_lines(&out, "URUNC-RUMP argv["), argv, "{out}");
        assert_eq!(
            marker_lines(&out, "URUNC-RUMP ok"),
            ["URUNC-RUMP ok"],
            "{out}"
        );
    }
}

#[test]
fn rumprun_gets_an_ext4_disk_image_and_its_blk_config() {
    for target in ["hvt", "spt"] {
        let test = format!("rumprun_gets_an_ext4_disk_image_and_its_blk_config_{target}");
        if !need_root(&test)
            || !need_bin(&test, &format!("solo5-{target}"))
            || !need_bin(&test, "mke2fs")
        {
            continue;
        }
        if target == "hvt" && !Path::new("/dev/kvm").exists() {
            println!("SKIP: {test}: no /dev/kvm");
            continue;
        }
        let env = Env::new("");
        let Some(k) =
            rumpparse_unikernel(&test, env.dir.path(), &format!("rumpparse-blk.{target}"))
        else {
            continue;
        };
        let img = env.dir.path().join("disk4.img");
        let o = std::process::Command::new("bash")
            .arg(repo_root().join("tests/fixtures/mkdisk.sh"))
            .arg(&img)
            .arg("hello.txt=ext4")
            .env("FSTYPE", "ext4")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let size = std::fs::metadata(&img).unwrap().len();
        let mut b = solo5_bundle(&k, "rumprun", target, &["/app"]);
        b.add_file(&img, "/data/disk.img")
            .annotate("com.urunc.unikernel.block", "/data/disk.img")
            .annotate("com.urunc.unikernel.blkMntPoint", "/mnt/data");
        let id = format!("rump-blk-{target}");
        let (code, out) = run_to_exit(&env, &b.write(), &id);
        println!("{}", marker_lines(&out, "URUNC-RUMP").join("\n"));
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            marker_lines(&out, "URUNC-RUMP blk"),
            [
                "URUNC-RUMP blk: source=etfs path=/dev/ld0a fstype=blk mountpoint=/mnt/data"
                    .to_string(),
                format!("URUNC-RUMP blkdev: rootfs {size} bytes"),
            ],
            "{out}"
        );
    }
}

#[test]
fn rumprun_net_config_is_one_that_rumprun_applies() {
    let target = "spt";
    let test = "rumprun_net_config_is_one_that_rumprun_applies";
    if !need_root(test) || !need_bin(test, "solo5-spt") || !need_bin(test, "ip") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let Some(k) = rumpparse_unikernel(test, build.path(), &format!("rumpparse-net.{target}"))
    else {
        return;
    };
    let (pod, _peer) = pod_with_peer();
    let env = Env::new("");
    let mut b = solo5_bundle(&k, "rumprun", target, &["/app", "-v"]);
    b.netns(&pod.path());
    let (code, out) = run_to_exit(&env, &b.write(), "rump-net");
    println!("{}", marker_lines(&out, "URUNC-RUMP").join("\n"));
    assert_eq!(code, 0, "{out}");
    // One static inet config on the interface Solo5's Rumprun creates
    // (cloner), the gateway on-link.
    assert_eq!(
        marker_lines(&out, "URUNC-RUMP net:"),
        ["URUNC-RUMP net: if=ukvmif0 cloner=True type=inet method=static addr=10.0.0.2 mask=24 gw=10.0.0.1"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-RUMP argv["),
        ["URUNC-RUMP argv[0]: /app", "URUNC-RUMP argv[1]: -v"],
        "{out}"
    );
}

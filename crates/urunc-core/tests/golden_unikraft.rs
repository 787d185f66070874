//! Golden tests: the Unikraft command line urunc gives QEMU, Cloud
//! Hypervisor and Firecracker for 0, 1 and many application arguments
//! (with spaces and quotes), with and without a network; for Firecracker
//! also the line the guest gets once Firecracker has added its devices
//! (linux-loader 0.10's rules, modelled in tests/linux_loader/mod.rs). Pure: nothing is run. What
//! a Unikraft kernel makes of these lines is checked by booting the
//! project's test kernels (crates/urunc/tests/ukparse.rs).

use std::path::PathBuf;
use urunc_core::config::MonitorConfig;
use urunc_core::network::NetFacts;
use urunc_core::plan::{plan, NetInput, Unikernel, View};
use urunc_core::rootfs::RootFile;
use urunc_core::shares::ShareFs;
use urunc_core::{guest, monitor};

/// A file as `prepare` resolves it: the plan uses only its path here (an
/// open /dev/null stands in for the file).
fn resolved(path: &str) -> RootFile {
    RootFile::new(path.into(), std::fs::File::open("/dev/null").unwrap())
}

// Also the model the fuzz target fuzz/fuzz_targets/unikraft_firecracker.rs
// checks against linux-loader 0.10 itself.
mod linux_loader;
use linux_loader::firecracker_delivers;

fn unikernel(mon: &str, app: &[&str]) -> Unikernel {
    Unikernel {
        guest: guest::lookup("unikraft").unwrap(),
        monitor: monitor::lookup(mon).unwrap(),
        monitor_binary: PathBuf::from("/usr/bin/monitor"),
        monitor_config: MonitorConfig::default(),
        rootfs: PathBuf::from("/bundle/rootfs"),
        kernel: resolved("/bundle/rootfs/unikernel/kernel"),
        initrd: None,
        block: None,
        block_mount_point: None,
        block_readonly: false,
        version: None,
        app: app.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into(), "MSG=hello world".into()],
        memory_mib: 256,
        vcpus: 1,
        seccomp: true,
        overhead_mib: 64,
        dns_fallback: "8.8.8.8".parse().unwrap(),
        manifest: None,
        block_rootfs: None,
        shares: vec![],
        share_fs: ShareFs::NineP,
        virtiofsd: None,
    }
}

/// The guest command line as the monitor is told it: QEMU `-append`,
/// Cloud Hypervisor `--cmdline`, Firecracker `boot_args` in its config.
fn cmdline(mon: &str, app: &[&str], net: bool) -> String {
    let facts = NetFacts {
        ifname: "eth0".into(),
        ifindex: 2,
        ip: "10.77.0.2".parse().unwrap(),
        prefix: 24,
        gateway: Some("10.77.0.1".parse().unwrap()),
        mac: [0x02, 0x42, 0x0a, 0x4d, 0x00, 0x02],
        mtu: 1500,
    };
    let n = NetInput {
        facts: &facts,
        tap: "urunc0tap",
        dns: Some("10.77.0.53".parse().unwrap()),
    };
    let view = View::Sandbox {
        rootfs: "/rootfs".into(),
        work: "/run/urunc".into(),
        shares: None,
        boot: Some("/run/urunc/boot".into()),
    };
    let u = unikernel(mon, app);
    let cmd = plan(&u, &view, net.then_some(&n)).unwrap().command;
    match mon {
        "firecracker" => {
            let v: serde_json::Value = serde_json::from_slice(&cmd.files[0].1).unwrap();
            v["boot-source"]["boot_args"].as_str().unwrap().to_string()
        }
        _ => {
            let flag = if mon == "qemu" {
                "-append"
            } else {
                "--cmdline"
            };
            let i = cmd.argv.iter().position(|a| a == flag).unwrap();
            cmd.argv[i + 1].clone()
        }
    }
}

const NONE: &[&str] = &["httpreply"];
const ONE: &[&str] = &["httpreply", "extra-arg"];
const MANY: &[&str] = &["httpreply", "two words", "it's", r#"say "hi""#, "-x"];
const ENV: &str = "env.vars=[ PATH=/bin 'MSG=hello world' ]";
const NET: &str = "netdev.ip=10.77.0.2/24:10.77.0.1:10.77.0.53";
const MANY_WORDS: &str = r#"'two words' "it's" 'say "hi"' -x"#;
const MMIO: &str = "virtio_mmio.device=4K@0xd0000000:5";

#[test]
fn qemu_and_cloud_hypervisor_always_write_the_separator() {
    for mon in ["qemu", "clh"] {
        assert_eq!(
            cmdline(mon, NONE, true),
            format!("httpreply {ENV} {NET} --"),
            "{mon}"
        );
        assert_eq!(
            cmdline(mon, ONE, true),
            format!("httpreply {ENV} {NET} -- extra-arg"),
            "{mon}"
        );
        assert_eq!(
            cmdline(mon, MANY, false),
            format!("httpreply {ENV} -- {MANY_WORDS}"),
            "{mon}"
        );
    }
}

#[test]
fn without_parameters_a_filler_word_precedes_the_separator() {
    let mut u = unikernel("clh", MANY);
    u.env.clear();
    let view = View::Host;
    let argv = plan(&u, &view, None).unwrap().command.argv;
    let i = argv.iter().position(|a| a == "--cmdline").unwrap();
    assert_eq!(argv[i + 1], format!("httpreply urunc -- {MANY_WORDS}"));
}

#[test]
fn firecracker_boot_args_and_what_the_guest_gets() {
    let got = cmdline("firecracker", NONE, true);
    assert_eq!(got, format!("httpreply {ENV} {NET} -- ''"));
    assert_eq!(
        firecracker_delivers(&got, &[MMIO]),
        format!("httpreply {ENV} {NET} {MMIO} -- ''")
    );

    let got = cmdline("firecracker", ONE, true);
    assert_eq!(got, format!("httpreply {ENV} {NET} -- extra-arg"));
    assert_eq!(
        firecracker_delivers(&got, &[MMIO]),
        format!("httpreply {ENV} {NET} {MMIO} -- extra-arg")
    );

    let got = cmdline("firecracker", MANY, true);
    assert_eq!(got, format!("httpreply {ENV} {NET} -- {MANY_WORDS}"));
    assert_eq!(
        firecracker_delivers(&got, &[MMIO]),
        format!("httpreply {ENV} {NET} {MMIO} -- {MANY_WORDS}")
    );

    // The old form (no `--` without arguments, a bare trailing `--` is
    // not " -- "): Firecracker's devices land after it, among the
    // arguments.
    assert_eq!(
        firecracker_delivers("httpreply netdev.ip=x --", &[MMIO]),
        format!("httpreply netdev.ip=x -- {MMIO}")
    );
}

#[test]
fn firecracker_separator_survives_odd_double_quotes_before_it() {
    let mut u = unikernel("firecracker", ONE);
    u.env = vec![r#"JSON={"k":"v"}x""#.into()];
    let view = View::Host;
    let cmd = plan(&u, &view, None).unwrap().command;
    let v: serde_json::Value = serde_json::from_slice(&cmd.files[0].1).unwrap();
    let got = v["boot-source"]["boot_args"].as_str().unwrap();
    assert_eq!(
        got,
        r#"httpreply env.vars=[ 'JSON={"k":"v"}x"' ] \" -- extra-arg"#
    );
    assert_eq!(
        firecracker_delivers(got, &[MMIO]),
        format!(r#"httpreply env.vars=[ 'JSON={{"k":"v"}}x"' ] \" {MMIO} -- extra-arg"#)
    );
}

#[test]
fn read_only_root_gives_the_disk_read_only() {
    let view = View::Host;
    for mon in ["qemu", "clh", "firecracker"] {
        let mut u = unikernel(mon, ONE);
        u.block = Some(resolved("/bundle/rootfs/disk.img"));
        u.block_readonly = true;
        let cmd = plan(&u, &view, None).unwrap().command;
        match mon {
            "qemu" => assert!(
                cmd.argv
                    .iter()
                    .any(|a| a.ends_with("file=/bundle/rootfs/disk.img,readonly=on")),
                "{:?}",
                cmd.argv
            ),
            "clh" => assert!(
                cmd.argv
                    .iter()
                    .any(|a| a == "path=/bundle/rootfs/disk.img,readonly=on"),
                "{:?}",
                cmd.argv
            ),
            _ => {
                let v: serde_json::Value = serde_json::from_slice(&cmd.files[0].1).unwrap();
                assert_eq!(v["drives"][0]["is_read_only"], true, "{v}");
            }
        }
    }
}

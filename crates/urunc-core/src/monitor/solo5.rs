//! What `solo5-hvt` and `solo5-spt` share: reading the unikernel's manifest
//! and the tender command line
//! `solo5-<t> --mem=<MiB> [--net:<NAME>=<tap>] [--net-mac:<NAME>=<mac>]
//! [--block:<NAME>=<path>] <kernel> <guest words…>`.
//!
//! Device names come from the manifest. Every declared device must be
//! given (the tender refuses to start otherwise) and no undeclared one may
//! be (the tender refuses that too); [`crate::plan::plan`] already leaves
//! out a network or disk the kernel does not declare.
//!
//! Disks: the tenders open them read-write and have no read-only option
//! (solo5 v0.9.0 `tenders/common/block_attach.c`, `open(path, O_RDWR)`),
//! so a disk inside a read-only rootfs cannot be given; `create` refuses
//! it (see [`super::Monitor::read_only_disks`]).

use super::solo5_manifest::{self, Device, DeviceKind, Manifest, Target};
use super::{format_mac, MonitorCommand, MonitorRequest};

/// Reads the manifest and checks the kernel was built for `target`.
pub(super) fn inspect(kernel: &std::fs::File, target: Target) -> Result<Manifest, String> {
    let m = solo5_manifest::read(kernel).map_err(|e| format!("is {e}"))?;
    if let Some((t, _)) = m.abi {
        if t != target {
            return Err(format!(
                "is built for Solo5 {t}, not {target}{}",
                match t {
                    Target::Hvt | Target::Spt => format!(" (set the hypervisor to {t})"),
                    _ => String::new(),
                }
            ));
        }
    }
    Ok(m)
}

fn names(devs: &[&Device]) -> String {
    devs.iter()
        .map(|d| format!("{:?}", d.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one device of `kind` the manifest declares, if any; more than one is
/// an error since a container has one network and one disk.
fn single(m: &Manifest, kind: DeviceKind) -> Result<Option<&Device>, String> {
    let devs: Vec<&Device> = m.of_kind(kind).collect();
    match devs.as_slice() {
        [] => Ok(None),
        [d] => Ok(Some(d)),
        more => Err(format!(
            "the unikernel declares {} {} devices ({}); urunc can give it only one (the container's {})",
            more.len(),
            kind.as_str(),
            names(more),
            match kind {
                DeviceKind::Net => "network interface",
                DeviceKind::Block => "disk",
            }
        )),
    }
}

/// Builds the tender's argv. `kvm`: the tender opens `/dev/kvm`.
pub(super) fn command(r: &MonitorRequest, kvm: bool) -> Result<MonitorCommand, String> {
    let m = r.manifest.ok_or_else(|| {
        format!(
            "kernel {}: its Solo5 manifest was not read",
            r.kernel.display()
        )
    })?;
    let mut argv = vec![
        r.binary.display().to_string(),
        format!("--mem={}", r.memory_mib),
    ];
    let mut devices = vec![];
    if kvm {
        devices.push("/dev/kvm".into());
    }
    if let Some(d) = single(m, DeviceKind::Net)? {
        let nic = r.nic.ok_or_else(|| {
            format!(
                "the unikernel declares network device {:?}, but the container has no network interface (run it with a network, or use a unikernel without one)",
                d.name
            )
        })?;
        argv.push(format!("--net:{}={}", d.name, nic.tap));
        argv.push(format!("--net-mac:{}={}", d.name, format_mac(&nic.mac)));
        devices.push("/dev/net/tun".into());
    }
    if let Some(d) = single(m, DeviceKind::Block)? {
        let disk = r.block.ok_or_else(|| {
            format!(
                "the unikernel declares block device {:?}, but the container gives it no disk (set the block or useDMBlock metadata)",
                d.name
            )
        })?;
        argv.push(format!("--block:{}={}", d.name, disk.display()));
    }
    argv.push(r.kernel.display().to_string());
    argv.extend(r.guest_words.iter().cloned());
    Ok(MonitorCommand {
        argv,
        files: vec![],
        devices,
    })
}

#[cfg(test)]
pub(super) mod tests {
    //! Golden argv for hvt and spt × {Rumprun, MirageOS} × {net, block,
    //! none}: the guest words come from the real guests, the manifest from
    //! an ELF fixture.
    use super::super::solo5_manifest::{fixture, parse};
    use super::super::{lookup, Nic};
    use super::*;
    use crate::config::MonitorConfig;
    use crate::guest::{self, GuestArgs, GuestBlock, GuestNet};
    use std::path::Path;
    use std::path::PathBuf;

    pub fn manifest(devices: &[(&str, u32)]) -> Manifest {
        parse(&fixture::unikernel(devices, 1)).unwrap()
    }

    struct Case<'a> {
        monitor: &'a str,
        guest: &'a str,
        devices: &'a [(&'a str, u32)],
        net: bool,
        block: bool,
    }

    fn run(c: &Case) -> Result<MonitorCommand, String> {
        let m = manifest(c.devices);
        let net = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: None,
        };
        let blk = GuestBlock {
            mount_point: Some("/data".into()),
            readonly: false,
        };
        let app = vec!["hello".to_string(), "two words".into()];
        let g = guest::lookup(c.guest).unwrap();
        let words = g
            .words(&GuestArgs {
                app: &app,
                env: &[],
                net: c.net.then_some(&net),
                initrd: false,
                block: c.block.then_some(&blk),
                shares: &[],
                version: None,
                monitor: c.monitor,
            })
            .unwrap();
        let nic = Nic {
            tap: "tap0".into(),
            mac: [0x02, 0x42, 0xac, 0x11, 0, 2],
        };
        let binary = PathBuf::from(format!("/usr/bin/solo5-{}", c.monitor));
        let disk = PathBuf::from("/rootfs/disk.img");
        let cfg = MonitorConfig::default();
        let req = MonitorRequest {
            binary: &binary,
            kernel: Path::new("/rootfs/unikernel/app"),
            initrd: None,
            block_readonly: false,
            block: c.block.then_some(disk.as_path()),
            shares: &[],
            guest_words: &words,
            needs: g.needs(),
            memory_mib: 64,
            vcpus: 1,
            nic: c.net.then_some(&nic),
            seccomp: true,
            config: &cfg,
            work_dir: Path::new("/run/urunc"),
            manifest: Some(&m),
        };
        lookup(c.monitor).unwrap().command(&req)
    }

    const RUMP_NET: &str = r#"{"cmdline":"hello 'two words'","net":{"addr":"10.0.0.2","cloner":"True","gw":"10.0.0.1","if":"ukvmif0","mask":"24","method":"static","type":"inet"}}"#;
    const RUMP_BLK: &str = r#"{"blk":{"fstype":"blk","mountpoint":"/data","path":"/dev/ld0a","source":"etfs"},"cmdline":"hello 'two words'"}"#;
    const RUMP_NONE: &str = r#"{"cmdline":"hello 'two words'"}"#;

    /// Rumprun's word is a JSON object: compared as JSON, so that key order
    /// (which depends on serde_json's features) does not matter.
    fn json_aware<S: AsRef<str>>(argv: &[S]) -> Vec<Result<serde_json::Value, String>> {
        argv.iter()
            .map(|a| {
                let a = a.as_ref();
                if a.starts_with('{') {
                    Ok(serde_json::from_str(a).unwrap())
                } else {
                    Err(a.to_string())
                }
            })
            .collect()
    }

    #[test]
    fn golden_argv() {
        for mon in ["hvt", "spt"] {
            let bin = format!("/usr/bin/solo5-{mon}");
            let k = "/rootfs/unikernel/app";
            let cases: Vec<(Case, Vec<&str>)> = vec![
                (
                    Case {
                        monitor: mon,
                        guest: "rumprun",
                        devices: &[("tap", 2)],
                        net: true,
                        block: false,
                    },
                    vec![
                        &bin,
                        "--mem=64",
                        "--net:tap=tap0",
                        "--net-mac:tap=02:42:ac:11:00:02",
                        k,
                        RUMP_NET,
                    ],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "rumprun",
                        devices: &[("rootfs", 1)],
                        net: false,
                        block: true,
                    },
                    vec![
                        &bin,
                        "--mem=64",
                        "--block:rootfs=/rootfs/disk.img",
                        k,
                        RUMP_BLK,
                    ],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "rumprun",
                        devices: &[],
                        net: false,
                        block: false,
                    },
                    vec![&bin, "--mem=64", k, RUMP_NONE],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "mirage",
                        devices: &[("service", 2)],
                        net: true,
                        block: false,
                    },
                    vec![
                        &bin,
                        "--mem=64",
                        "--net:service=tap0",
                        "--net-mac:service=02:42:ac:11:00:02",
                        k,
                        "--ipv4=10.0.0.2/24",
                        "--ipv4-gateway=10.0.0.1",
                        "hello",
                        "two words",
                    ],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "mirage",
                        devices: &[("storage", 1)],
                        net: false,
                        block: true,
                    },
                    vec![
                        &bin,
                        "--mem=64",
                        "--block:storage=/rootfs/disk.img",
                        k,
                        "hello",
                        "two words",
                    ],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "mirage",
                        devices: &[],
                        net: false,
                        block: false,
                    },
                    vec![&bin, "--mem=64", k, "hello", "two words"],
                ),
                (
                    Case {
                        monitor: mon,
                        guest: "mirage",
                        devices: &[("service", 2), ("storage", 1)],
                        net: true,
                        block: true,
                    },
                    vec![
                        &bin,
                        "--mem=64",
                        "--net:service=tap0",
                        "--net-mac:service=02:42:ac:11:00:02",
                        "--block:storage=/rootfs/disk.img",
                        k,
                        "--ipv4=10.0.0.2/24",
                        "--ipv4-gateway=10.0.0.1",
                        "hello",
                        "two words",
                    ],
                ),
            ];
            for (c, want) in cases {
                let got = run(&c).unwrap();
                assert_eq!(
                    json_aware(&got.argv),
                    json_aware(&want),
                    "{mon} {} {:?}: {:?}",
                    c.guest,
                    c.devices,
                    got.argv
                );
                let mut devs: Vec<&str> = vec![];
                if mon == "hvt" {
                    devs.push("/dev/kvm");
                }
                if c.net {
                    devs.push("/dev/net/tun");
                }
                let got_devs: Vec<String> = got
                    .devices
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                assert_eq!(got_devs, devs, "{mon} {} devices", c.guest);
                assert!(got.files.is_empty());
            }
        }
    }

    #[test]
    fn declared_but_missing_devices_are_errors_naming_them() {
        for mon in ["hvt", "spt"] {
            let e = run(&Case {
                monitor: mon,
                guest: "mirage",
                devices: &[("service", 2)],
                net: false,
                block: false,
            })
            .unwrap_err();
            assert!(
                e.contains("network device \"service\"") && e.contains("no network interface"),
                "{e}"
            );
            let e = run(&Case {
                monitor: mon,
                guest: "rumprun",
                devices: &[("rootfs", 1)],
                net: false,
                block: false,
            })
            .unwrap_err();
            assert!(
                e.contains("block device \"rootfs\"") && e.contains("no disk"),
                "{e}"
            );
            let e = run(&Case {
                monitor: mon,
                guest: "mirage",
                devices: &[("a", 1), ("b", 1)],
                net: false,
                block: true,
            })
            .unwrap_err();
            assert!(e.contains("2 block devices (\"a\", \"b\")"), "{e}");
            let e = run(&Case {
                monitor: mon,
                guest: "mirage",
                devices: &[("n0", 2), ("n1", 2)],
                net: true,
                block: false,
            })
            .unwrap_err();
            assert!(e.contains("2 network devices"), "{e}");
        }
    }

    #[test]
    fn undeclared_devices_are_not_passed() {
        // plan() removes them from the guest's words too; the monitor alone
        // never passes a device the manifest does not name.
        let got = run(&Case {
            monitor: "spt",
            guest: "mirage",
            devices: &[],
            net: true,
            block: true,
        })
        .unwrap();
        assert!(
            !got.argv
                .iter()
                .any(|a| a.starts_with("--net") || a.starts_with("--block")),
            "{:?}",
            got.argv
        );
        assert!(got.devices.is_empty());
    }

    #[test]
    fn target_mismatch_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.spt");
        std::fs::write(&p, fixture::unikernel(&[], 2)).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let e = inspect(&f, Target::Hvt).unwrap_err();
        assert!(
            e.contains("built for Solo5 spt, not hvt (set the hypervisor to spt)"),
            "{e}"
        );
        assert!(inspect(&f, Target::Spt).is_ok());
    }
}

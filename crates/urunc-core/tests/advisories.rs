//! Regression tests named after the Go urunc's two 2026 security
//! advisories:
//!
//! 1. **argument injection**: image or pod annotations (`com.urunc.unikernel.*`,
//!    from `/urunc.json` or CRI annotations) must never add arguments or
//!    suboptions to the monitor's command line or fields to its config file;
//! 2. **path traversal**: no annotation may make the monitor read a host
//!    file outside the container rootfs.
//!
//! Each test runs the metadata through the real pure stage
//! ([`Metadata::from_map`] → [`plan::prepare`] → [`plan::plan`]) for every
//! monitor — qemu, firecracker, clh, hvt, spt — and looks at the argv and
//! config files the monitor would get. Keys that reach an argv, a config
//! file or a path: `binary`, `initrd`, `block`, `cmdline`, `blkMntPoint`,
//! `unikernelVersion` (plus `unikernelType`/`hypervisor`, checked against
//! fixed lists). The CLI-level path tests are in `crates/urunc/tests/errors.rs`.

use oci_spec::runtime::Spec;
use std::path::PathBuf;
use urunc_core::config::{Config, MonitorConfig};
use urunc_core::metadata::{self, Metadata};
use urunc_core::monitor::solo5_manifest::{Device, DeviceKind, Manifest};
use urunc_core::monitor::MonitorCommand;
use urunc_core::network::NetFacts;
use urunc_core::plan::{self, NetInput, Unikernel, View};
use urunc_core::{guest, monitor};

const SHADOW: &str = "/etc/shadow";

/// A rootfs with the files the metadata names, and a config that points
/// every monitor at an executable that exists (nothing is run).
struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
}

impl Fixture {
    fn new(files: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        for f in files {
            let p = rootfs.join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"not a real kernel").unwrap();
        }
        let mut config = Config::default();
        for m in monitor::KNOWN {
            config.monitors.insert(
                m.to_string(),
                MonitorConfig {
                    path: Some("/bin/true".into()),
                    vhost: Some(false),
                    ..MonitorConfig::default()
                },
            );
        }
        Fixture { dir, config }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// `prepare` for metadata given as annotations (plain text values).
    fn prepare(&self, md: &[(&str, &str)]) -> Result<Unikernel, String> {
        let md = Metadata::from_map(md.iter().copied()).map_err(|e| e.to_string())?;
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": [], "cwd": "/", "env": ["A=1"], "user": {"uid": 0, "gid": 0}},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}},
        }))
        .unwrap();
        plan::prepare(&spec, &self.rootfs(), &md, &self.config).map_err(|e| e.to_string())
    }

    /// The metadata `md` (without type and monitor) prepared for `fw` on
    /// `mon`. `prepare` runs with QEMU, the one monitor that does not read
    /// the kernel file (the fixture's files are placeholders), and the
    /// result is moved to `mon` and `fw`: everything `prepare` does with
    /// the metadata's values — resolving paths in the rootfs, splitting the
    /// command line — comes before any monitor-specific step.
    fn prepared(&self, mon: &str, fw: &str, md: &[(&str, &str)]) -> Unikernel {
        let mut all = vec![
            (metadata::KEY_TYPE, "linux"),
            (metadata::KEY_HYPERVISOR, "qemu"),
        ];
        all.extend_from_slice(md);
        let mut u = self
            .prepare(&all)
            .unwrap_or_else(|e| panic!("{mon}/{fw}: {e}"));
        u.monitor = monitor::lookup(mon).unwrap();
        u.guest = guest::lookup(fw).unwrap();
        u.monitor_config = self.config.monitor(mon);
        u
    }
}

fn facts() -> NetFacts {
    NetFacts {
        ifname: "eth0".into(),
        ifindex: 2,
        ip: "10.0.0.2".parse().unwrap(),
        prefix: 24,
        gateway: Some("10.0.0.1".parse().unwrap()),
        mac: [0x02, 0x42, 0xac, 0x11, 0, 2],
        mtu: 1500,
    }
}

fn sandbox_view() -> View {
    View::Sandbox {
        rootfs: "/rootfs".into(),
        work: "/run/urunc".into(),
        shares: None,
        boot: Some("/run/urunc/boot".into()),
    }
}

/// Plans `u` on `monitor` (with `guest`), the way `start` does, with a
/// network. Solo5 tenders get a manifest declaring a network and a disk.
fn plan_on(u: Unikernel, monitor_name: &str, guest_name: &str) -> Result<MonitorCommand, String> {
    plan_in(u, monitor_name, guest_name, &sandbox_view())
}

/// [`plan_on`] with host paths, as `create` checks the plan.
fn plan_on_host(
    u: Unikernel,
    monitor_name: &str,
    guest_name: &str,
) -> Result<MonitorCommand, String> {
    plan_in(u, monitor_name, guest_name, &View::Host)
}

fn plan_in(
    mut u: Unikernel,
    monitor_name: &str,
    guest_name: &str,
    view: &View,
) -> Result<MonitorCommand, String> {
    u.monitor = monitor::lookup(monitor_name).unwrap();
    u.guest = guest::lookup(guest_name).unwrap();
    if ["hvt", "spt"].contains(&monitor_name) {
        u.manifest = Some(Manifest {
            devices: vec![
                Device {
                    name: "service".into(),
                    kind: DeviceKind::Net,
                },
                Device {
                    name: "storage".into(),
                    kind: DeviceKind::Block,
                },
            ],
            abi: None,
        });
    }
    let f = facts();
    let net = NetInput {
        facts: &f,
        tap: "urunc0123abcd",
        dns: None,
    };
    plan::plan(&u, view, Some(&net))
        .map(|p| p.command)
        .map_err(|e| e.to_string())
}

/// Every monitor with a framework it runs, as SPEC §6 pairs them.
const PAIRS: &[(&str, &str)] = &[
    ("qemu", "unikraft"),
    ("qemu", "linux"),
    ("firecracker", "unikraft"),
    ("clh", "linux"),
    ("hvt", "rumprun"),
    ("spt", "mirage"),
];

/// Splits a QEMU option value at single commas (`,,` is a literal comma),
/// as QEMU's `get_opt_value` does.
fn qemu_opts(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                out.last_mut().unwrap().push(',');
            } else {
                out.push(String::new());
            }
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

/// The single place guest words may appear in each monitor's launch; all
/// other argv elements must be urunc's own. Returns (argv elements outside
/// the guest command line, the guest command line as one string).
fn split_guest(monitor_name: &str, c: &MonitorCommand, kernel: &str) -> (Vec<String>, String) {
    let a = &c.argv;
    match monitor_name {
        "qemu" | "clh" => {
            let flag = if monitor_name == "qemu" {
                "-append"
            } else {
                "--cmdline"
            };
            let i = a
                .iter()
                .position(|x| x == flag)
                .expect("guest command line flag");
            assert_eq!(a.iter().filter(|x| *x == flag).count(), 1, "{a:?}");
            let mut rest = a.clone();
            let words = rest.remove(i + 1);
            (rest, words)
        }
        "firecracker" => {
            // The guest command line lives in the JSON file, as a string.
            assert_eq!(c.files.len(), 1);
            let v: serde_json::Value = serde_json::from_slice(&c.files[0].1).unwrap();
            let boot = v["boot-source"]["boot_args"].as_str().unwrap().to_string();
            (a.clone(), boot)
        }
        "hvt" | "spt" => {
            // solo5-<t> [options] <kernel> <guest words...>: the tender
            // stops reading options at the kernel.
            let k = a.iter().position(|x| x == kernel).expect("kernel in argv");
            assert!(
                a[..k].iter().all(|x| x.starts_with("--") || x == &a[0]),
                "{a:?}"
            );
            (a[..=k].to_vec(), a[k + 1..].join(" "))
        }
        _ => unreachable!(),
    }
}

/// Where the sandbox attaches the resolved kernel and disk.
const KERNEL: &str = "/run/urunc/boot/kernel";
const DISK: &str = "/run/urunc/boot/disk";

#[test]
fn advisory_argument_injection_cmdline_stays_in_the_guest_command_line() {
    let fx = Fixture::new(&["/unikernel/kernel", "/unikernel/initrd", "/disk.img"]);
    for cmdline in [
        "x -- -drive file=/etc/shadow",
        "x\n-drive\tfile=/etc/shadow,if=virtio",
        "x --block:evil=/etc/shadow --net:x=tap9 -kernel /etc/shadow",
        "x\" ; --disk path=/etc/shadow ; \"",
    ] {
        for (mon, fw) in PAIRS {
            let u = fx.prepared(
                mon,
                fw,
                &[
                    (metadata::KEY_BINARY, "/unikernel/kernel"),
                    (metadata::KEY_CMDLINE, cmdline),
                    (metadata::KEY_BLOCK, "/disk.img"),
                ],
            );
            let c = match plan_on(u, mon, fw) {
                Ok(c) => c,
                // Firecracker and Cloud Hypervisor refuse non-printable
                // guest command lines; that is also safe.
                Err(e) => {
                    assert!(
                        cmdline.contains('"') || e.contains("printable"),
                        "{mon}/{fw}: {e}"
                    );
                    continue;
                }
            };
            let (ours, guest) = split_guest(mon, &c, KERNEL);
            assert!(guest.contains(SHADOW), "{mon}/{fw}: {guest:?}");
            for a in &ours {
                assert!(
                    !a.contains(SHADOW),
                    "{mon}/{fw}: {a:?} reached the monitor's own argv: {:?}",
                    c.argv
                );
            }
            // A monitor config file holds it only in the guest command
            // line's string value: every other string is urunc's own.
            for (path, body) in &c.files {
                let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
                v["boot-source"]["boot_args"] = "".into();
                let text = v.to_string();
                assert!(!text.contains(SHADOW), "{mon} {}: {text}", path.display());
            }
        }
    }
}

#[test]
fn advisory_argument_injection_paths_cannot_add_monitor_suboptions() {
    // File names that carry QEMU / Cloud Hypervisor option syntax.
    let kernel = "/unikernel/k,file=/etc/passwd";
    let disk = "/disk,file=/etc/shadow,format=qcow2.img";
    let fx = Fixture::new(&[kernel, disk, "/unikernel/kernel"]);
    // In the sandbox the monitor gets the resolved files at urunc's own
    // names, whatever the metadata says; the host view (the check at
    // `create`) still carries the names, escaped or refused.
    let host = |p: &str| fx.rootfs().join(&p[1..]).display().to_string();
    let sandbox = |p: &str| if p == kernel { KERNEL } else { DISK }.to_string();
    for (in_sandbox, b) in [(true, &sandbox as &dyn Fn(&str) -> String), (false, &host)] {
        for (mon, fw) in PAIRS {
            let u = fx.prepared(
                mon,
                fw,
                &[(metadata::KEY_BINARY, kernel), (metadata::KEY_BLOCK, disk)],
            );
            let planned = if in_sandbox {
                plan_on(u, mon, fw)
            } else {
                plan_on_host(u, mon, fw)
            };
            match (*mon, planned) {
                ("qemu", Ok(c)) => {
                    let a = &c.argv;
                    let k = a.iter().position(|x| x == "-kernel").unwrap();
                    // -kernel's value is a plain file name to QEMU.
                    assert_eq!(a[k + 1], b(kernel));
                    let d = a.iter().position(|x| x == "-drive").unwrap();
                    let opts = qemu_opts(&a[d + 1]);
                    assert_eq!(
                        opts,
                        [
                            "if=none",
                            "id=hd0",
                            "format=raw",
                            &format!("file={}", b(disk))
                        ],
                        "{}",
                        a[d + 1]
                    );
                    // An absolute path: QEMU's block layer reads no protocol
                    // prefix (`nbd:`, `json:`) from it.
                    assert!(opts[3].starts_with("file=/"));
                }
                ("clh", Err(e)) if !in_sandbox => {
                    assert!(e.contains("option syntax cannot carry"), "{e}")
                }
                ("clh", Ok(c)) if in_sandbox => {
                    assert!(
                        c.argv.contains(&format!("path={}", b(disk))),
                        "{:?}",
                        c.argv
                    );
                    assert!(c.argv.contains(&b(kernel)), "{:?}", c.argv);
                }
                ("firecracker", Ok(c)) => {
                    let v: serde_json::Value = serde_json::from_slice(&c.files[0].1).unwrap();
                    assert_eq!(v["boot-source"]["kernel_image_path"], b(kernel));
                    assert_eq!(v["drives"][0]["path_on_host"], b(disk), "{v}");
                }
                ("hvt" | "spt", Ok(c)) => {
                    assert!(
                        c.argv.contains(&format!("--block:storage={}", b(disk))),
                        "{:?}",
                        c.argv
                    );
                    assert!(c.argv.contains(&b(kernel)));
                }
                (m, r) => panic!("{m} (sandbox: {in_sandbox}): unexpected {r:?}"),
            }
        }
    }
}

#[test]
fn advisory_argument_injection_qemu_initrd_cannot_name_more_modules() {
    // QEMU's multiboot loader splits -initrd at commas and spaces.
    for name in ["/unikernel/i,/etc/shadow", "/unikernel/i /etc/shadow"] {
        let fx = Fixture::new(&["/unikernel/kernel", name]);
        let u = fx
            .prepare(&[
                (metadata::KEY_TYPE, "unikraft"),
                (metadata::KEY_HYPERVISOR, "qemu"),
                (metadata::KEY_BINARY, "/unikernel/kernel"),
                (metadata::KEY_INITRD, name),
            ])
            .unwrap();
        // Refused at create (plan::validate plans with host paths).
        let e = plan_on_host(u, "qemu", "unikraft").unwrap_err();
        assert!(
            e.contains(metadata::KEY_INITRD) && e.contains("separator"),
            "{e}"
        );
    }
    // In the sandbox the initrd has urunc's own name.
    let fx = Fixture::new(&["/unikernel/kernel", "/unikernel/i"]);
    let u = fx
        .prepare(&[
            (metadata::KEY_TYPE, "unikraft"),
            (metadata::KEY_HYPERVISOR, "qemu"),
            (metadata::KEY_BINARY, "/unikernel/kernel"),
            (metadata::KEY_INITRD, "/unikernel/i"),
        ])
        .unwrap();
    let a = plan_on(u, "qemu", "unikraft").unwrap().argv;
    assert!(
        a.windows(2)
            .any(|w| w == ["-initrd", "/run/urunc/boot/initrd"]),
        "{a:?}"
    );
}

#[test]
fn advisory_argument_injection_nul_and_newlines_in_values() {
    for key in [
        metadata::KEY_BINARY,
        metadata::KEY_INITRD,
        metadata::KEY_BLOCK,
        metadata::KEY_BLK_MNT,
        metadata::KEY_VERSION,
        metadata::KEY_TYPE,
        metadata::KEY_HYPERVISOR,
    ] {
        for v in [
            "/unikernel/kernel\n-drive file=/etc/shadow",
            "a\u{0}b",
            "x\r-kernel",
        ] {
            let e = Metadata::from_map([(key, v)]).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
    // cmdline: newlines and tabs separate words; NUL is refused.
    let e = Metadata::from_map([(metadata::KEY_CMDLINE, "a\u{0}-drive")]).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    assert!(Metadata::from_map([(metadata::KEY_CMDLINE, "a\nb\tc")]).is_ok());
}

#[test]
fn advisory_argument_injection_blk_mnt_point_and_version() {
    let fx = Fixture::new(&["/unikernel/kernel", "/disk.img"]);
    let evil_mnt = "/data\",\"path\":\"/etc/shadow";
    for (mon, fw) in PAIRS {
        let u = fx.prepared(
            mon,
            fw,
            &[
                (metadata::KEY_BINARY, "/unikernel/kernel"),
                (metadata::KEY_BLOCK, "/disk.img"),
                (metadata::KEY_BLK_MNT, evil_mnt),
                (metadata::KEY_VERSION, "0.15.0 -drive file=/etc/shadow"),
            ],
        );
        let Ok(c) = plan_on(u, mon, fw) else { continue };
        let (ours, guest) = split_guest(mon, &c, KERNEL);
        for a in &ours {
            assert!(!a.contains(SHADOW), "{mon}/{fw}: {a:?}");
        }
        if *fw == "rumprun" {
            // Rumprun's configuration is one JSON word: the mount point is
            // a string in it, not a new key.
            let v: serde_json::Value = serde_json::from_str(&guest).unwrap();
            assert_eq!(v["blk"]["mountpoint"], evil_mnt, "{v}");
            assert_eq!(v["blk"]["path"], "/dev/ld0a", "{v}");
        }
    }
}

#[test]
fn advisory_path_traversal_every_path_key_every_monitor() {
    let fx = Fixture::new(&["/unikernel/kernel"]);
    let root = fx.rootfs();
    std::os::unix::fs::symlink("../../../../../../../etc/passwd", root.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    std::os::unix::fs::symlink("..", root.join("d/dotdot")).unwrap();
    let cases: &[(&str, &str)] = &[
        ("../../../../etc/passwd", "escapes the rootfs"),
        ("/../etc/passwd", "escapes the rootfs"),
        ("/unikernel/../../etc/passwd", "escapes the rootfs"),
        ("/up", "escapes the rootfs"),
        ("/d/dotdot/../etc/passwd", "escapes the rootfs"),
        // An absolute link resolves inside the rootfs, where it is absent.
        ("/abs", "does not exist in the rootfs"),
        ("/etc/passwd", "does not exist in the rootfs"),
    ];
    for (mon, fw) in PAIRS {
        for key in [
            metadata::KEY_BINARY,
            metadata::KEY_INITRD,
            metadata::KEY_BLOCK,
        ] {
            for (value, why) in cases {
                let mut md = vec![
                    (metadata::KEY_TYPE, *fw),
                    (metadata::KEY_HYPERVISOR, *mon),
                    (metadata::KEY_BINARY, "/unikernel/kernel"),
                ];
                md.retain(|(k, _)| *k != key);
                md.push((key, value));
                let e = fx.prepare(&md).unwrap_err();
                assert!(
                    e.contains(key) && e.contains(why),
                    "{mon}/{fw} {key}={value}: {e}"
                );
            }
        }
    }
}

#[test]
fn advisory_path_traversal_annotations_in_base64_too() {
    use base64::Engine;
    let fx = Fixture::new(&["/unikernel/kernel"]);
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (t, h, k) = (enc("unikraft"), enc("qemu"), enc("../../../etc/shadow"));
    let e = fx
        .prepare(&[
            (metadata::KEY_TYPE, &t),
            (metadata::KEY_HYPERVISOR, &h),
            (metadata::KEY_BINARY, &k),
        ])
        .unwrap_err();
    assert!(
        e.contains(metadata::KEY_BINARY) && e.contains("escapes the rootfs"),
        "{e}"
    );
}

#[test]
fn advisory_path_traversal_planned_paths_stay_under_the_rootfs() {
    // Whatever the metadata, every host path the plan hands a monitor is
    // the resolved file under the container rootfs.
    let fx = Fixture::new(&["/unikernel/kernel", "/unikernel/initrd", "/disk.img"]);
    std::os::unix::fs::symlink("/unikernel/kernel", fx.rootfs().join("klink")).unwrap();
    for (mon, fw) in PAIRS {
        let u = fx.prepared(
            mon,
            fw,
            &[
                (metadata::KEY_BINARY, "/klink"),
                (metadata::KEY_BLOCK, "/./unikernel/../disk.img"),
            ],
        );
        assert_eq!(u.kernel.path, fx.rootfs().join("unikernel/kernel"));
        assert_eq!(
            u.block.as_ref().map(|f| f.path.as_path()),
            Some(fx.rootfs().join("disk.img").as_path())
        );
        let u_host = plan::plan(&u, &View::Host, None).map(|p| p.command);
        if let Ok(c) = u_host {
            let all: Vec<String> = c
                .argv
                .iter()
                .cloned()
                .chain(
                    c.files
                        .iter()
                        .map(|(_, b)| String::from_utf8_lossy(b).to_string()),
                )
                .collect();
            let joined = all.join("\n");
            assert!(
                !joined.contains("klink") && !joined.contains(".."),
                "{mon}: {joined}"
            );
        }
    }
}

//! Golden tests: the exact QEMU argv for each guest × {initrd, disk, no
//! network, network}. Pure: nothing is run.

use std::path::PathBuf;
use urunc_core::config::MonitorConfig;
use urunc_core::network::NetFacts;
use urunc_core::plan::{plan, NetInput, Unikernel, View};
use urunc_core::rootfs::RootFile;
use urunc_core::shares::{Share, ShareFs};
use urunc_core::{guest, monitor};

/// A file as `prepare` resolves it: the plan uses its path (the host view)
/// or its descriptor (given to the monitor as /proc/self/fd/N), so an
/// open /dev/null stands in for the file.
fn resolved(path: &str) -> RootFile {
    RootFile::new(path.into(), std::fs::File::open("/dev/null").unwrap())
}

fn unikernel(guest_name: &str) -> Unikernel {
    Unikernel {
        guest: guest::lookup(guest_name).unwrap(),
        monitor: monitor::lookup("qemu").unwrap(),
        monitor_binary: PathBuf::from("/usr/bin/qemu-system-x86_64"),
        monitor_config: MonitorConfig::default(),
        rootfs: PathBuf::from("/bundle/rootfs"),
        kernel: resolved("/bundle/rootfs/unikernel/kernel"),
        initrd: None,
        block: None,
        block_mount_point: None,
        block_readonly: false,
        version: None,
        app: vec!["app".into(), "arg one".into(), "-x".into()],
        env: vec!["K=V".into()],
        memory_mib: 256,
        vcpus: 2,
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

fn facts() -> NetFacts {
    NetFacts {
        ifname: "eth0".into(),
        ifindex: 2,
        ip: "10.10.0.5".parse().unwrap(),
        prefix: 16,
        gateway: Some("10.10.0.1".parse().unwrap()),
        mac: [0x02, 0x42, 0x0a, 0x0a, 0x00, 0x05],
        mtu: 1450,
    }
}

fn view() -> View {
    View::Sandbox {
        rootfs: "/rootfs".into(),
        work: "/run/urunc".into(),
        shares: Some("/run/urunc/shares".into()),
        boot: Some("/run/urunc/boot".into()),
    }
}

fn argv(u: &Unikernel, net: bool) -> Vec<String> {
    let f = facts();
    let n = NetInput {
        facts: &f,
        tap: "urunc0a1b2c3d",
        dns: Some("1.1.1.1".parse().unwrap()),
    };
    plan(u, &view(), net.then_some(&n)).unwrap().command.argv
}

const HEAD: &[&str] = &[
    "/usr/bin/qemu-system-x86_64",
    "-m",
    "256M",
    "-smp",
    "2",
    "-accel",
    "kvm",
    "-nographic",
    "-vga",
    "none",
];
const SANDBOX: &[&str] = &[
    "-sandbox",
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
];
const NETDEV: &[&str] = &[
    "-netdev",
    "tap,id=n0,ifname=urunc0a1b2c3d,script=no,downscript=no",
    "-device",
    "virtio-net-pci,netdev=n0,mac=02:42:0a:0a:00:05",
];

fn expect(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn unikraft_initrd_net() {
    let mut u = unikernel("unikraft");
    u.initrd = Some(resolved("/bundle/rootfs/unikernel/initrd"));
    assert_eq!(
        argv(&u, true),
        expect(&[HEAD, SANDBOX, &["-kernel", "/run/urunc/boot/kernel", "-initrd", "/run/urunc/boot/initrd"], NETDEV, &[
            "-append",
            "app env.vars=[ K=V ] netdev.ip=10.10.0.5/16:10.10.0.1:1.1.1.1 vfs.fstab=[ \"initrd0:/:extract:::\" ] -- 'arg one' -x"
        ]])
    );
}

#[test]
fn unikraft_no_net_legacy_version() {
    let mut u = unikernel("unikraft");
    u.version = Some("0.15.0".into());
    u.seccomp = false;
    assert_eq!(
        argv(&u, false),
        expect(&[
            HEAD,
            &[
                "-kernel",
                "/run/urunc/boot/kernel",
                "-nic",
                "none",
                "-append",
                // No parameter: the word `urunc` keeps `--` from being
                // the first word after argv[0] (uklibparam applies
                // nothing then and leaves `--` in argv).
                "app urunc -- 'arg one' -x"
            ]
        ])
    );
    let mut u = unikernel("unikraft");
    u.version = Some("0.15.0".into());
    u.initrd = Some(resolved("/bundle/rootfs/i"));
    let a = argv(&u, true);
    assert_eq!(
        a.last().unwrap(),
        "app netdev.ipv4_addr=10.10.0.5 netdev.ipv4_gw_addr=10.10.0.1 netdev.ipv4_subnet_mask=255.255.0.0 vfs.rootfs=initrd -- 'arg one' -x"
    );
}

#[test]
fn linux_initrd_net() {
    let mut u = unikernel("linux");
    u.initrd = Some(resolved("/bundle/rootfs/boot/initrd"));
    u.app = vec!["/init".into(), "serve".into()];
    assert_eq!(
        argv(&u, true),
        expect(&[HEAD, &["-no-reboot", "-nodefaults", "-serial", "stdio"], SANDBOX, &["-kernel", "/run/urunc/boot/kernel", "-initrd", "/run/urunc/boot/initrd"], NETDEV, &[
            "-append",
            "panic=-1 console=ttyS0 root=/dev/ram0 rw ip=10.10.0.5::10.10.0.1:255.255.0.0:urunc:eth0:off:1.1.1.1 K=V rdinit=/init -- serve"
        ]])
    );
}

#[test]
fn linux_disk_no_net() {
    let mut u = unikernel("linux");
    u.block = Some(resolved("/bundle/rootfs/disk,1.img"));
    u.app = vec!["/sbin/init".into()];
    u.env = vec![];
    assert_eq!(
        argv(&u, false),
        expect(&[
            HEAD,
            &["-no-reboot", "-nodefaults", "-serial", "stdio"],
            SANDBOX,
            &[
                "-kernel",
                "/run/urunc/boot/kernel",
                "-nic",
                "none",
                "-drive",
                "if=none,id=hd0,format=raw,file=/run/urunc/boot/disk",
                "-device",
                "virtio-blk-pci,drive=hd0",
                "-append",
                "panic=-1 console=ttyS0 root=/dev/vda rw init=/sbin/init"
            ]
        ])
    );
    // On the host view the disk's own path, its comma escaped.
    let a = plan(&u, &View::Host, None).unwrap().command.argv;
    assert!(
        a.contains(&"if=none,id=hd0,format=raw,file=/bundle/rootfs/disk,,1.img".to_string()),
        "{a:?}"
    );
}

#[test]
fn without_attached_files_the_monitor_gets_the_descriptors() {
    use std::os::fd::AsRawFd;
    let mut u = unikernel("linux");
    u.initrd = Some(resolved("/bundle/rootfs/boot/initrd"));
    u.block = Some(resolved("/bundle/rootfs/disk.img"));
    let view = View::Sandbox {
        rootfs: "/bundle/rootfs".into(),
        work: "/state/sandbox".into(),
        shares: None,
        boot: None,
    };
    let a = plan(&u, &view, None).unwrap().command.argv;
    let fd = |f: &RootFile| format!("/proc/self/fd/{}", f.file.as_raw_fd());
    let (k, i, d) = (
        fd(&u.kernel),
        fd(u.initrd.as_ref().unwrap()),
        fd(u.block.as_ref().unwrap()),
    );
    assert!(a.windows(2).any(|w| w == ["-kernel", k.as_str()]), "{a:?}");
    assert!(a.windows(2).any(|w| w == ["-initrd", i.as_str()]), "{a:?}");
    assert!(
        a.contains(&format!("if=none,id=hd0,format=raw,file={d}")),
        "{a:?}"
    );
}

#[test]
fn mirage_disk_net() {
    let mut u = unikernel("mirage");
    u.block = Some(resolved("/bundle/rootfs/data.img"));
    u.app = vec!["-l".into(), "*:debug".into()];
    assert_eq!(
        argv(&u, true),
        expect(&[
            HEAD,
            SANDBOX,
            &["-kernel", "/run/urunc/boot/kernel"],
            NETDEV,
            &[
                "-drive",
                "if=none,id=hd0,format=raw,file=/run/urunc/boot/disk",
                "-device",
                "virtio-blk-pci,drive=hd0",
                "-append",
                "--ipv4=10.10.0.5/16 --ipv4-gateway=10.10.0.1 -l *:debug"
            ]
        ])
    );
    let mut u = unikernel("mirage");
    u.app = vec![];
    assert_eq!(
        argv(&u, false),
        expect(&[
            HEAD,
            SANDBOX,
            &["-kernel", "/run/urunc/boot/kernel", "-nic", "none"]
        ])
    );
}

#[test]
fn mewz_net_and_no_net() {
    let mut u = unikernel("mewz");
    u.memory_mib = 512;
    let head: Vec<String> = HEAD.iter().map(|s| s.replace("256M", "512M")).collect();
    let dbg: &[&str] = &[
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0x501,iosize=2",
    ];
    let mut want = head.clone();
    want.extend(expect(&[
        dbg,
        SANDBOX,
        &["-kernel", "/run/urunc/boot/kernel"],
        &[
            "-netdev",
            "tap,id=n0,ifname=urunc0a1b2c3d,script=no,downscript=no",
            "-device",
            "virtio-net-pci,netdev=n0,mac=02:42:0a:0a:00:05,disable-legacy=on,disable-modern=off",
            "-append",
            "ip=10.10.0.5/16 gateway=10.10.0.1",
        ],
    ]));
    assert_eq!(argv(&u, true), want);
    let mut want = head;
    want.extend(expect(&[
        dbg,
        SANDBOX,
        &["-kernel", "/run/urunc/boot/kernel", "-nic", "none"],
    ]));
    assert_eq!(argv(&u, false), want);
}

#[test]
fn config_selects_accel_machine_cpu_and_extra_args() {
    let mut u = unikernel("linux");
    u.seccomp = false;
    u.app = vec!["/init".into()];
    u.env = vec![];
    u.monitor_config = MonitorConfig {
        accel: Some("kvm-tcg".into()),
        machine: Some("microvm".into()),
        cpu: Some("qemu64".into()),
        data_dir: Some("/usr/share/qemu".into()),
        extra_guest_args: vec!["tsc_early_khz=2600000".into()],
        ..MonitorConfig::default()
    };
    assert_eq!(
        argv(&u, false),
        expect(&[&[
            "/usr/bin/qemu-system-x86_64",
            "-m",
            "256M",
            "-smp",
            "2",
            "-accel",
            "kvm",
            "-accel",
            "tcg",
            "-cpu",
            "qemu64",
            "-M",
            "microvm",
            "-L",
            "/usr/share/qemu",
            "-nographic",
            "-vga",
            "none",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-kernel",
            "/run/urunc/boot/kernel",
            "-nic",
            "none",
            "-append",
            "panic=-1 console=ttyS0 init=/init tsc_early_khz=2600000"
        ]])
    );
    u.monitor_config.accel = Some("tcg".into());
    let a = argv(&u, false);
    assert_eq!(&a[5..7], ["-accel", "tcg"]);
    let plan = plan(&u, &view(), None).unwrap();
    assert!(
        !plan.command.devices.contains(&PathBuf::from("/dev/kvm")),
        "TCG needs no /dev/kvm"
    );
}

#[test]
fn host_view_uses_host_paths() {
    let u = unikernel("unikraft");
    let p = plan(&u, &View::Host, None).unwrap();
    assert!(p
        .command
        .argv
        .contains(&"/bundle/rootfs/unikernel/kernel".to_string()));
}

fn rootfs_share(readonly: bool) -> Share {
    Share {
        tag: "fs0".into(),
        source: "/bundle/rootfs".into(),
        mount_point: "/".into(),
        readonly,
        recursive: true,
    }
}

fn volume(tag: &str, source: &str, dst: &str, readonly: bool) -> Share {
    Share {
        tag: tag.into(),
        source: source.into(),
        mount_point: dst.into(),
        readonly,
        recursive: true,
    }
}

const FS0_9P: &[&str] = &[
    "-fsdev",
    "local,id=fs0,path=/rootfs,security_model=none",
    "-device",
    "virtio-9p-pci,fsdev=fs0,mount_tag=fs0",
];

#[test]
fn unikraft_mount_rootfs_9p_replaces_the_initrd_entry() {
    let mut u = unikernel("unikraft");
    u.initrd = Some(resolved("/bundle/rootfs/unikernel/initrd"));
    u.shares = vec![rootfs_share(false)];
    assert_eq!(
        argv(&u, false),
        expect(&[
            HEAD,
            SANDBOX,
            &[
                "-kernel",
                "/run/urunc/boot/kernel",
                "-initrd",
                "/run/urunc/boot/initrd",
                "-nic",
                "none"
            ],
            FS0_9P,
            &[
                "-append",
                "app env.vars=[ K=V ] vfs.fstab=[ \"fs0:/:9pfs:::\" ] -- 'arg one' -x"
            ]
        ])
    );
    // Before 0.16.1: the root device parameters.
    u.version = Some("0.15.0".into());
    assert_eq!(
        argv(&u, false).last().unwrap(),
        "app vfs.rootdev=fs0 vfs.rootfs=9pfs -- 'arg one' -x"
    );
}

#[test]
fn unikraft_volumes_with_and_without_mount_rootfs() {
    let mut u = unikernel("unikraft");
    u.env = vec![];
    u.shares = vec![
        rootfs_share(true),
        volume("fs1", "/srv/data,1", "/data", true),
        volume("fs2", "/srv/cache", "/var/cache", false),
    ];
    assert_eq!(
        argv(&u, true),
        expect(&[HEAD, SANDBOX, &["-kernel", "/run/urunc/boot/kernel"], NETDEV, &[
            "-fsdev",
            "local,id=fs0,path=/rootfs,security_model=none,readonly=on",
            "-device",
            "virtio-9p-pci,fsdev=fs0,mount_tag=fs0",
            "-fsdev",
            "local,id=fs1,path=/run/urunc/shares/fs1,security_model=none,readonly=on",
            "-device",
            "virtio-9p-pci,fsdev=fs1,mount_tag=fs1",
            "-fsdev",
            "local,id=fs2,path=/run/urunc/shares/fs2,security_model=none",
            "-device",
            "virtio-9p-pci,fsdev=fs2,mount_tag=fs2",
            "-append",
            "app netdev.ip=10.10.0.5/16:10.10.0.1:1.1.1.1 vfs.fstab=[ \"fs0:/:9pfs:::\" \"fs1:/data:9pfs:::\" \"fs2:/var/cache:9pfs:::\" ] -- 'arg one' -x"
        ]])
    );
    // A volume next to an initrd root; on the host view, host paths (commas
    // escaped).
    u.shares.remove(0);
    u.initrd = Some(resolved("/bundle/rootfs/i"));
    let a = plan(&u, &View::Host, None).unwrap().command.argv;
    assert!(
        a.windows(2).any(|w| w
            == [
                "-fsdev",
                "local,id=fs1,path=/srv/data,,1,security_model=none,readonly=on"
            ]),
        "{a:?}"
    );
    assert_eq!(
        a.last().unwrap(),
        "app vfs.fstab=[ \"initrd0:/:extract:::\" \"fs1:/data:9pfs:::\" \"fs2:/var/cache:9pfs:::\" ] -- 'arg one' -x"
    );
    // Old Unikraft has no vfs.fstab for volumes.
    u.version = Some("0.15.0".into());
    let e = plan(&u, &view(), None).unwrap_err().to_string();
    assert!(e.contains("volume /data") && e.contains("0.16.1"), "{e}");
}

#[test]
fn linux_mount_rootfs_and_volume() {
    let mut u = unikernel("linux");
    u.initrd = Some(resolved("/bundle/rootfs/boot/initrd"));
    u.app = vec!["/sbin/init".into(), "serve".into()];
    u.shares = vec![
        rootfs_share(false),
        volume("fs1", "/srv/data", "/data", true),
    ];
    assert_eq!(
        argv(&u, false),
        expect(&[HEAD, &["-no-reboot", "-nodefaults", "-serial", "stdio"], SANDBOX, &["-kernel", "/run/urunc/boot/kernel", "-initrd", "/run/urunc/boot/initrd", "-nic", "none"], FS0_9P, &[
            "-fsdev",
            "local,id=fs1,path=/run/urunc/shares/fs1,security_model=none,readonly=on",
            "-device",
            "virtio-9p-pci,fsdev=fs1,mount_tag=fs1",
            "-append",
            "panic=-1 console=ttyS0 root=fs0 rootfstype=9p rootflags=trans=virtio,version=9p2000.L rw URUNC_SHARES=fs1:/data:9p:ro K=V init=/sbin/init -- serve"
        ]])
    );
    // A volume only: the initrd stays the root.
    u.shares.remove(0);
    assert_eq!(
        argv(&u, false).last().unwrap(),
        "panic=-1 console=ttyS0 root=/dev/ram0 rw URUNC_SHARES=fs1:/data:9p:ro K=V rdinit=/sbin/init -- serve"
    );
    // A disk and a shared root cannot both be the root.
    u.shares.insert(0, rootfs_share(false));
    u.block = Some(resolved("/bundle/rootfs/disk.img"));
    let e = plan(&u, &view(), None).unwrap_err().to_string();
    assert!(e.contains("mountRootfs") && e.contains("disk"), "{e}");
}

#[test]
fn virtiofs_shares_use_vhost_user_and_shared_memory() {
    let mut u = unikernel("linux");
    u.app = vec!["/init".into()];
    u.env = vec![];
    u.seccomp = false;
    u.share_fs = ShareFs::VirtioFs;
    u.shares = vec![rootfs_share(false), volume("fs1", "/srv/d", "/d", false)];
    assert_eq!(
        argv(&u, false),
        expect(&[HEAD, &["-no-reboot", "-nodefaults", "-serial", "stdio", "-kernel", "/run/urunc/boot/kernel", "-nic", "none",
            "-chardev",
            "socket,id=cfs0,path=/run/urunc/fs0.sock",
            "-device",
            "vhost-user-fs-pci,chardev=cfs0,tag=fs0",
            "-chardev",
            "socket,id=cfs1,path=/run/urunc/fs1.sock",
            "-device",
            "vhost-user-fs-pci,chardev=cfs1,tag=fs1",
            "-object",
            "memory-backend-memfd,id=mem,size=256M,share=on",
            "-numa",
            "node,memdev=mem",
            "-append",
            "panic=-1 console=ttyS0 root=fs0 rootfstype=virtiofs rw URUNC_SHARES=fs1:/d:virtiofs:rw init=/init"
        ]])
    );
    // One virtiofsd per share, on the socket QEMU connects to, serving the
    // directory as the sandbox sees it.
    u.virtiofsd = Some("/usr/libexec/virtiofsd".into());
    let d = plan(&u, &view(), None).unwrap().fs_daemons;
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].socket, PathBuf::from("/run/urunc/fs1.sock"));
    assert_eq!(
        d[1].argv,
        [
            "/usr/libexec/virtiofsd",
            "--fd=3",
            "-o",
            "source=/run/urunc/shares/fs1",
            "-o",
            "cache=auto",
            "-o",
            "log_level=warn"
        ]
    );
    assert_eq!(d[0].argv[3], "source=/rootfs");
    // Unikraft has no virtio-fs.
    let mut u = unikernel("unikraft");
    u.share_fs = ShareFs::VirtioFs;
    u.shares = vec![rootfs_share(false)];
    let e = plan(&u, &view(), None).unwrap_err().to_string();
    assert!(e.contains("9p only"), "{e}");
}

#[test]
fn microvm_shares_use_virtio_mmio() {
    let mut u = unikernel("unikraft");
    u.monitor_config.machine = Some("microvm".into());
    u.shares = vec![rootfs_share(false)];
    let a = argv(&u, false);
    assert!(
        a.contains(&"virtio-9p-device,fsdev=fs0,mount_tag=fs0".to_string()),
        "{a:?}"
    );
}

#[test]
fn vhost_net_on_the_tap_when_enabled() {
    let mut u = unikernel("unikraft");
    u.monitor_config.vhost = Some(true);
    let f = facts();
    let n = NetInput {
        facts: &f,
        tap: "urunc0a1b2c3d",
        dns: None,
    };
    let p = plan(&u, &view(), Some(&n)).unwrap();
    let a = &p.command.argv;
    let i = a.iter().position(|x| x == "-netdev").unwrap();
    assert_eq!(
        a[i + 1],
        "tap,id=n0,ifname=urunc0a1b2c3d,script=no,downscript=no,vhost=on"
    );
    // The node is made visible in the monitor's sandbox root, like the tun.
    let vhost = PathBuf::from("/dev/vhost-net");
    assert!(
        p.command.devices.contains(&vhost),
        "{:?}",
        p.command.devices
    );
    assert!(p.command.devices.contains(&PathBuf::from("/dev/net/tun")));
    // Off (config `vhost = false`): QEMU's own virtio-net backend.
    u.monitor_config.vhost = Some(false);
    let p = plan(&u, &view(), Some(&n)).unwrap();
    assert!(p.command.argv.contains(&NETDEV[1].to_string()));
    assert!(!p.command.devices.contains(&vhost));
    // Without a network there is nothing to accelerate.
    u.monitor_config.vhost = Some(true);
    let p = plan(&u, &view(), None).unwrap();
    assert!(!p.command.devices.contains(&vhost));
    assert!(!p.command.argv.iter().any(|x| x.contains("vhost")));
}

/// `prepare` settles `vhost`: unset means "where the host has
/// /dev/vhost-net"; the config's `vhost = false` wins.
#[test]
fn vhost_default_follows_the_host_device() {
    use urunc_core::config::Config;
    use urunc_core::metadata::{Metadata, KEY_BINARY, KEY_HYPERVISOR, KEY_TYPE};
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("unikernel")).unwrap();
    std::fs::write(d.path().join("unikernel/kernel"), b"k").unwrap();
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    }))
    .unwrap();
    let md = Metadata::from_map([
        (KEY_TYPE, "unikraft"),
        (KEY_HYPERVISOR, "qemu"),
        (KEY_BINARY, "/unikernel/kernel"),
    ])
    .unwrap();
    let mut cfg =
        Config::parse("[monitors.qemu]\npath = \"/bin/true\"\n", "c.toml".as_ref()).unwrap();
    let u = urunc_core::plan::prepare(&spec, d.path(), &md, &cfg).unwrap();
    let host_has_it = std::path::Path::new("/dev/vhost-net").exists();
    assert_eq!(u.monitor_config.vhost, Some(host_has_it));
    cfg.monitors.get_mut("qemu").unwrap().vhost = Some(false);
    let u = urunc_core::plan::prepare(&spec, d.path(), &md, &cfg).unwrap();
    assert_eq!(u.monitor_config.vhost, Some(false));
}

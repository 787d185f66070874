//! Shared directories (SPEC §8): the container rootfs (`mountRootfs`) and
//! the spec's bind mounts (volumes) reach QEMU guests over 9p (or
//! virtio-fs), by tag: `fs0` the rootfs, `fs1`.. the volumes.

mod support;
use serde_json::json;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(120);

/// A host directory holding `file.txt` with `content`.
fn host_dir(content: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("urunc-vol-")
        .tempdir()
        .unwrap();
    std::fs::write(d.path().join("file.txt"), content).unwrap();
    d
}

/// The mounts an engine adds (none of which may become shares) plus
/// `extra`.
fn set_mounts(b: &mut Bundle, extra: &[serde_json::Value], hosts: &std::path::Path) {
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}),
        json!({"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": hosts, "options": ["rbind", "ro"]}),
    ];
    m.extend(extra.iter().cloned());
    b.spec["mounts"] = json!(m);
}

/// Waits for the container's monitor to exit 0; returns its output.
fn exits_ok(env: &Env, pid: i32, id: &str) -> String {
    assert_eq!(
        wait_exit(pid, T),
        Some(0),
        "{}\n{}",
        env.out(id),
        env.err(id)
    );
    env.out(id)
}

#[test]
fn linux_guest_reads_a_volume_over_9p() {
    if !need_qemu("linux_guest_reads_a_volume_over_9p") {
        return;
    }
    subreaper();
    let env = Env::new(LINUX_CONFIG);
    let vol = host_dir("hello from a volume");
    let hosts = tempfile::NamedTempFile::new().unwrap();
    let mut b = linux_bundle(&["/init", "readshare", "fs1", "file.txt"]);
    set_mounts(
        &mut b,
        &[
            json!({"destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "ro"]}),
        ],
        hosts.path(),
    );
    let pid = env.create(&b.write(), "vol1", &[]);
    env.ok(&["start", "vol1"]);
    let out = exits_ok(&env, pid, "vol1");
    assert_eq!(
        marker_lines(&out, "URUNC-SHARE"),
        ["URUNC-SHARE hello from a volume"],
        "{out}"
    );
    // The init is told where the volume goes; the plumbing binds
    // (/etc/hosts, /etc/resolv.conf) are not shares.
    assert!(
        out.contains("URUNC-ENV URUNC_SHARES=fs1:/data:9p:ro"),
        "{out}"
    );
    let cmdline = marker_lines(&out, "URUNC-INIT cmdline:");
    assert!(
        cmdline.len() == 1 && cmdline[0].contains("root=/dev/ram0 rw"),
        "{cmdline:?}"
    );
    env.ok(&["delete", "vol1"]);
    // The volume is untouched on the host.
    assert_eq!(
        std::fs::read_to_string(vol.path().join("file.txt")).unwrap(),
        "hello from a volume"
    );
}

#[test]
fn linux_guest_mounts_the_container_rootfs_over_9p() {
    if !need_qemu("linux_guest_mounts_the_container_rootfs_over_9p") {
        return;
    }
    subreaper();
    let env = Env::new(LINUX_CONFIG);
    // The initrd's /init (the kernel runs it: Debian's 9p is modular) mounts
    // the share named by root=.
    let mut b = linux_bundle(&["/init", "readshare", "fs0", "/etc/motd"]);
    std::fs::create_dir_all(b.rootfs().join("etc")).unwrap();
    std::fs::write(b.rootfs().join("etc/motd"), "rootfs over 9p").unwrap();
    b.annotate("com.urunc.unikernel.mountRootfs", "true");
    let pid = env.create(&b.write(), "rfs1", &[]);
    env.ok(&["start", "rfs1"]);
    let out = exits_ok(&env, pid, "rfs1");
    assert_eq!(
        marker_lines(&out, "URUNC-SHARE"),
        ["URUNC-SHARE rootfs over 9p"],
        "{out}"
    );
    let cmdline = marker_lines(&out, "URUNC-INIT cmdline:");
    assert!(
        cmdline.len() == 1
            && cmdline[0]
                .contains("root=fs0 rootfstype=9p rootflags=trans=virtio,version=9p2000.L rw")
            && cmdline[0].contains("init=/init -- readshare fs0 /etc/motd")
            && !cmdline[0].contains("rdinit="),
        "{cmdline:?}"
    );
    env.ok(&["delete", "rfs1"]);
}

#[test]
fn unikraft_mount_rootfs_and_volume_give_fstab_and_9p_devices() {
    if !need_qemu("unikraft_mount_rootfs_and_volume_give_fstab_and_9p_devices") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let vol = host_dir("x");
    let hosts = tempfile::NamedTempFile::new().unwrap();
    let mut b = tiny_bundle(&["app", "hang"]);
    b.annotate("com.urunc.unikernel.mountRootfs", "true")
        .env(&[]);
    set_mounts(
        &mut b,
        &[
            json!({"destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "ro"]}),
        ],
        hosts.path(),
    );
    let pid = env.create(&b.write(), "uk9p", &[]);
    env.ok(&["start", "uk9p"]);
    assert!(
        env.wait_out("uk9p", "URUNC-TESTKERNEL hang", T),
        "{}\n{}",
        env.out("uk9p"),
        env.err("uk9p")
    );
    assert_eq!(
        marker_lines(&env.out("uk9p"), "URUNC-TESTKERNEL cmdline:"),
        ["URUNC-TESTKERNEL cmdline: /run/urunc/boot/kernel app vfs.fstab=[ \"fs0:/:9pfs:::\" \"fs1:/data:9pfs:::\" ] -- hang"]
    );
    // The container's process is QEMU with both 9p devices (microvm:
    // virtio-mmio), serving the rootfs and the volume's sandbox bind.
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect();
    for want in [
        "local,id=fs0,path=/rootfs,security_model=none",
        "virtio-9p-device,fsdev=fs0,mount_tag=fs0",
        "local,id=fs1,path=/run/urunc/shares/fs1,security_model=none,readonly=on",
        "virtio-9p-device,fsdev=fs1,mount_tag=fs1",
    ] {
        assert!(argv.iter().any(|a| a == want), "{want} missing: {argv:?}");
    }
    // Inside the monitor's sandbox the volume is bound read-only.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/run/urunc/shares/fs1"))
        .unwrap_or_else(|| panic!("no volume bind in the sandbox: {mounts}"));
    assert!(
        line.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{line}"
    );
    env.ok(&["kill", "uk9p", "KILL"]);
    assert_eq!(wait_exit(pid, T), Some(137));
    env.ok(&["delete", "uk9p"]);
}

#[test]
fn mount_rootfs_on_firecracker_is_refused() {
    if !need_root("mount_rootfs_on_firecracker_is_refused") {
        return;
    }
    let env = Env::new("");
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("fckernel.elf"), "/unikernel/kernel")
        .unikernel("unikraft", "firecracker", "/unikernel/kernel")
        .annotate("com.urunc.unikernel.mountRootfs", "true")
        .args(&["app"]);
    let err = env.create_fails(&b, "fc9p");
    assert!(
        err.contains("com.urunc.unikernel.mountRootfs")
            && err.contains("firecracker cannot share directories"),
        "{err}"
    );
    // A volume on a guest that cannot mount one is refused too, naming it.
    let env = Env::new(TINY_CONFIG);
    let vol = host_dir("x");
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("testkernel.elf"), "/unikernel/kernel")
        .unikernel("mewz", "qemu", "/unikernel/kernel")
        .memory_mib(512);
    b.spec["mounts"] = json!([{"destination": "/data", "type": "bind", "source": vol.path()}]);
    let err = env.create_fails(&b, "mewz9p");
    assert!(
        err.contains("spec mount /data") && err.contains("mewz guests cannot mount"),
        "{err}"
    );
}

#[test]
fn missing_bind_source_is_refused_at_create() {
    if !need_qemu("missing_bind_source_is_refused_at_create") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let gone = tempfile::tempdir().unwrap().path().join("gone");
    let hosts = tempfile::NamedTempFile::new().unwrap();
    let mut b = tiny_bundle(&["app"]);
    set_mounts(
        &mut b,
        &[json!({"destination": "/data", "type": "bind", "source": gone, "options": ["rbind"]})],
        hosts.path(),
    );
    let err = env.create_fails(&b, "nosrc");
    assert!(
        err.contains("spec mount /data")
            && err.contains(&format!("bind source {} does not exist", gone.display())),
        "{err}"
    );
}

/// virtiofsd as urunc looks for it (no config path).
fn virtiofsd_present() -> bool {
    which("virtiofsd").is_some()
        || ["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"]
            .iter()
            .any(|p| std::path::Path::new(p).is_file())
}

#[test]
fn linux_guest_reads_volume_and_rootfs_over_virtiofs() {
    let name = "linux_guest_reads_volume_and_rootfs_over_virtiofs";
    if !need_qemu(name) {
        return;
    }
    if !virtiofsd_present() {
        println!("SKIP: {name}: virtiofsd not found");
        return;
    }
    subreaper();
    let env = Env::new(&format!("{LINUX_CONFIG}shared_fs = \"virtiofs\"\n"));
    // A volume.
    let vol = host_dir("hello over virtio-fs");
    let hosts = tempfile::NamedTempFile::new().unwrap();
    let mut b = linux_bundle(&["/init", "readshare", "fs1", "file.txt"]);
    set_mounts(
        &mut b,
        &[
            json!({"destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "ro"]}),
        ],
        hosts.path(),
    );
    let pid = env.create(&b.write(), "vfs1", &[]);
    env.ok(&["start", "vfs1"]);
    let out = exits_ok(&env, pid, "vfs1");
    assert_eq!(
        marker_lines(&out, "URUNC-SHARE"),
        ["URUNC-SHARE hello over virtio-fs"],
        "{out}"
    );
    assert!(
        out.contains("URUNC-ENV URUNC_SHARES=fs1:/data:virtiofs:ro"),
        "{out}"
    );
    env.ok(&["delete", "vfs1"]);
    // The container rootfs as the root.
    let mut b = linux_bundle(&["/init", "readshare", "fs0", "/etc/motd"]);
    std::fs::create_dir_all(b.rootfs().join("etc")).unwrap();
    std::fs::write(b.rootfs().join("etc/motd"), "rootfs over virtio-fs").unwrap();
    b.annotate("com.urunc.unikernel.mountRootfs", "true");
    let pid = env.create(&b.write(), "vfs0", &[]);
    env.ok(&["start", "vfs0"]);
    let out = exits_ok(&env, pid, "vfs0");
    assert_eq!(
        marker_lines(&out, "URUNC-SHARE"),
        ["URUNC-SHARE rootfs over virtio-fs"],
        "{out}"
    );
    let cmdline = marker_lines(&out, "URUNC-INIT cmdline:");
    assert!(
        cmdline.len() == 1 && cmdline[0].contains("root=fs0 rootfstype=virtiofs rw"),
        "{cmdline:?}"
    );
    env.ok(&["delete", "vfs0"]);
    // The daemons went with their monitors (the PID namespace's end).
    assert!(no_process_with("virtiofsd"), "a virtiofsd was left behind");
}

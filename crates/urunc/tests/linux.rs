//! A Linux kernel used as a unikernel: Debian's kernel + a busybox initramfs
//! on QEMU (TCG: this host's nested KVM cannot run Linux guests).

mod support;
use std::time::Duration;
use support::*;

#[test]
fn linux_guest_gets_args_env_and_no_network() {
    if !need_qemu("linux_guest_gets_args_env_and_no_network") {
        return;
    }
    subreaper();
    let env = Env::new(LINUX_CONFIG);
    let mut b = linux_bundle(&["/init", "print", "two words", "three"]);
    b.env(&["PATH=/bin:/sbin", "GREETING=hello there", "MODE=test"]);
    let pid = env.create(&b.write(), "lnx", &[]);
    env.ok(&["start", "lnx"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(120)),
        Some(0),
        "{}\n{}",
        env.out("lnx"),
        env.err("lnx")
    );
    let out = env.out("lnx");
    assert_eq!(
        marker_lines(&out, "URUNC-ARG 1:"),
        ["URUNC-ARG 1: print"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-ARG 2:"),
        ["URUNC-ARG 2: two words"],
        "{out}"
    );
    assert_eq!(
        marker_lines(&out, "URUNC-ARG 3:"),
        ["URUNC-ARG 3: three"],
        "{out}"
    );
    for e in ["URUNC-ENV GREETING=hello there", "URUNC-ENV MODE=test"] {
        assert!(out.contains(e), "{e} missing: {out}");
    }
    assert!(out.contains("URUNC-NET none"), "{out}");
    let cmdline = marker_lines(&out, "URUNC-INIT cmdline:");
    assert_eq!(cmdline.len(), 1, "{out}");
    assert!(
        cmdline[0].contains("panic=-1 console=ttyS0 root=/dev/ram0 rw"),
        "{cmdline:?}"
    );
    assert!(
        !cmdline[0].contains("ip="),
        "no network, no ip=: {cmdline:?}"
    );
    assert!(
        cmdline[0].contains("rdinit=/init -- print 'two words' three"),
        "{cmdline:?}"
    );
    env.ok(&["delete", "lnx"]);
}

#[test]
fn linux_guest_reads_a_disk_image_from_the_rootfs() {
    disk_image_from_the_rootfs("linux_guest_reads_a_disk_image_from_the_rootfs", false);
}

/// root.readonly (readOnlyRootFilesystem): the image sits on a read-only
/// mount, so QEMU gets it with readonly=on (read-write it would fail to
/// open it, after `start`) and the kernel is told `ro`.
#[test]
fn linux_guest_reads_a_disk_image_from_a_read_only_rootfs() {
    disk_image_from_the_rootfs(
        "linux_guest_reads_a_disk_image_from_a_read_only_rootfs",
        true,
    );
}

fn disk_image_from_the_rootfs(test: &str, readonly: bool) {
    if !need_qemu(test) || !need_bin(test, "mke2fs") {
        return;
    }
    subreaper();
    let env = Env::new(LINUX_CONFIG);
    let mut b = linux_bundle(&["/init", "readdisk", "note.txt"]);
    let img = b.rootfs().join("disk.img");
    let o = std::process::Command::new("bash")
        .arg(repo_root().join("tests/fixtures/mkdisk.sh"))
        .arg(&img)
        .arg("note.txt=read from the rootfs disk")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    b.annotate("com.urunc.unikernel.block", "/disk.img");
    b.spec["root"]["readonly"] = serde_json::json!(readonly);
    let pid = env.create(&b.write(), "disk1", &[]);
    env.ok(&["start", "disk1"]);
    assert_eq!(
        wait_exit(pid, Duration::from_secs(120)),
        Some(0),
        "{}",
        env.out("disk1")
    );
    assert!(
        env.out("disk1")
            .contains("URUNC-DISK read from the rootfs disk"),
        "{}",
        env.out("disk1")
    );
    let root = if readonly {
        "root=/dev/vda ro"
    } else {
        "root=/dev/vda rw"
    };
    assert!(env.out("disk1").contains(root), "{}", env.out("disk1"));
    env.ok(&["delete", "disk1"]);
}

//! Storage: the block-backed rootfs hand-over (`useDMBlock`) with a real
//! loop device, and the file-system checks.

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Mount points (field 5 of mountinfo) whose source is `dev`.
fn mounts_of(dev: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(" - ").nth(1).and_then(|p| p.split(' ').nth(1)) == Some(dev))
        .map(|l| l.split(' ').nth(4).unwrap().to_string())
        .collect()
}

fn is_mount_point(p: &Path) -> bool {
    let p = p.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p))
}

/// A file system image on a loop device, mounted on a bundle's rootfs.
/// Dropping it unmounts and detaches, whatever the test left.
struct LoopRootfs {
    dev: String,
    mountpoint: PathBuf,
    _img_dir: tempfile::TempDir,
}

impl LoopRootfs {
    /// `files`: (path inside the image, host source file).
    fn new(
        fstype: &str,
        files: &[(&str, &Path)],
        texts: &[(&str, &str)],
        mountpoint: &Path,
    ) -> LoopRootfs {
        let d = tempfile::Builder::new()
            .prefix("urunc-loop-")
            .tempdir()
            .unwrap();
        let stage = d.path().join("stage");
        let mut bytes = 0u64;
        for (dst, src) in files {
            let to = stage.join(dst.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            bytes += std::fs::copy(src, &to).unwrap();
        }
        for (dst, content) in texts {
            let to = stage.join(dst.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(&to, content).unwrap();
        }
        std::fs::create_dir_all(&stage).unwrap();
        let img = d.path().join("rootfs.img");
        let kib = 4096 + bytes / 1024 * 3 / 2;
        sh(
            "mke2fs",
            &[
                "-q",
                "-F",
                "-t",
                fstype,
                "-b",
                "1024",
                "-d",
                stage.to_str().unwrap(),
                img.to_str().unwrap(),
                &format!("{kib}k"),
            ],
        );
        let dev = sh("losetup", &["--find", "--show", img.to_str().unwrap()]);
        let r = LoopRootfs {
            dev,
            mountpoint: mountpoint.to_path_buf(),
            _img_dir: d,
        };
        sh(
            "mount",
            &["-t", fstype, &r.dev, mountpoint.to_str().unwrap()],
        );
        r
    }

    /// Can the device be opened exclusively (nothing mounts or holds it)?
    fn free(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(&self.dev)
            .is_ok()
    }
}

impl Drop for LoopRootfs {
    fn drop(&mut self) {
        while is_mount_point(&self.mountpoint) {
            if Command::new("umount")
                .arg(&self.mountpoint)
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                break;
            }
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn need_loop(test: &str) -> bool {
    need_root(test)
        && need_bin(test, "losetup")
        && need_bin(test, "mke2fs")
        && need_bin(test, "mount")
}

#[test]
fn loop_rootfs_is_handed_to_linux_guest_and_restored_at_delete() {
    let test = "loop_rootfs_is_handed_to_linux_guest_and_restored_at_delete";
    if !need_qemu(test) || !need_loop(test) {
        return;
    }
    subreaper();
    let fx = fixtures();
    let env = Env::new(LINUX_CONFIG);
    let mut b = Bundle::new();
    // Metadata only in the image's urunc.json: read before the hand-over.
    let md = r#"{"com.urunc.unikernel.unikernelType":"linux","com.urunc.unikernel.hypervisor":"qemu","com.urunc.unikernel.binary":"/boot/kernel","com.urunc.unikernel.initrd":"/boot/initrd","com.urunc.unikernel.useDMBlock":"true"}"#;
    let lo = LoopRootfs::new(
        "ext2",
        &[
            ("/boot/kernel", &fx.join("bzImage")),
            ("/boot/initrd", &fx.join("initramfs.cpio.gz")),
        ],
        &[
            ("/urunc.json", md),
            ("/hello.txt", "hello from the loop device"),
        ],
        &b.rootfs(),
    );
    b.args(&["/init", "readdisk", "hello.txt"]);
    let bundle = b.write();
    let pid = env.create(&bundle, "dm1", &[]);
    // Handed over: unmounted everywhere, nothing else holds the device.
    assert!(
        mounts_of(&lo.dev).is_empty(),
        "{} still mounted: {:?}",
        lo.dev,
        mounts_of(&lo.dev)
    );
    assert!(lo.free(), "{} is held after create", lo.dev);
    env.ok(&["start", "dm1"]);
    let code = wait_exit(pid, Duration::from_secs(180));
    let out = env.out("dm1");
    assert_eq!(code, Some(0), "{out}\n{}", env.err("dm1"));
    assert_eq!(
        marker_lines(&out, "URUNC-DISK"),
        ["URUNC-DISK hello from the loop device"],
        "{out}"
    );
    env.ok(&["delete", "dm1"]);
    assert!(!env.state_dir("dm1").exists());
    // Restored: mounted back on the rootfs, with its files.
    assert_eq!(mounts_of(&lo.dev), [b.rootfs().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("hello.txt")).unwrap(),
        "hello from the loop device"
    );
    // What containerd then does: unmount. The device is free again.
    sh("umount", &[b.rootfs().to_str().unwrap()]);
    assert!(mounts_of(&lo.dev).is_empty());
    assert!(
        lo.free(),
        "{} still in use after delete and unmount",
        lo.dev
    );
}

#[test]
fn failed_create_mounts_the_rootfs_back() {
    let test = "failed_create_mounts_the_rootfs_back";
    if !need_qemu(test) || !need_loop(test) {
        return;
    }
    let fx = fixtures();
    let env = Env::new(LINUX_CONFIG);
    let mut b = Bundle::new();
    let md = r#"{"com.urunc.unikernel.unikernelType":"linux","com.urunc.unikernel.hypervisor":"qemu","com.urunc.unikernel.binary":"/boot/kernel","com.urunc.unikernel.useDMBlock":"true"}"#;
    let lo = LoopRootfs::new(
        "ext2",
        &[("/boot/kernel", &fx.join("testkernel.elf"))],
        &[("/urunc.json", md)],
        &b.rootfs(),
    );
    // A terminal without a console socket fails after the hand-over.
    b.spec["process"]["terminal"] = serde_json::json!(true);
    let o = env.urunc(&["create", "--bundle", &b.write(), "dm-fail"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("console-socket"), "{}", text(&o));
    assert_eq!(mounts_of(&lo.dev), [b.rootfs().to_str().unwrap()]);
    assert!(b.rootfs().join("urunc.json").is_file());
    assert!(!env.state_dir("dm-fail").exists());
}

#[test]
fn rootfs_held_by_another_mount_is_not_handed_over() {
    let test = "rootfs_held_by_another_mount_is_not_handed_over";
    if !need_qemu(test) || !need_loop(test) {
        return;
    }
    let fx = fixtures();
    let env = Env::new(LINUX_CONFIG);
    let b = Bundle::new();
    let md = r#"{"com.urunc.unikernel.unikernelType":"linux","com.urunc.unikernel.hypervisor":"qemu","com.urunc.unikernel.binary":"/boot/kernel","com.urunc.unikernel.useDMBlock":"true"}"#;
    let lo = LoopRootfs::new(
        "ext2",
        &[("/boot/kernel", &fx.join("testkernel.elf"))],
        &[("/urunc.json", md)],
        &b.rootfs(),
    );
    let other = tempfile::tempdir().unwrap();
    sh(
        "mount",
        &[
            "--bind",
            b.rootfs().to_str().unwrap(),
            other.path().to_str().unwrap(),
        ],
    );
    let o = env.urunc(&["create", "--bundle", &b.write(), "dm-held"]);
    sh("umount", &[other.path().to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("mounted elsewhere"), "{}", text(&o));
    // Mounted back on the rootfs.
    assert_eq!(mounts_of(&lo.dev), [b.rootfs().to_str().unwrap()]);
}

#[test]
fn rumprun_refuses_a_non_ext2_rootfs_device() {
    let test = "rumprun_refuses_a_non_ext2_rootfs_device";
    if !need_loop(test) {
        return;
    }
    let env = Env::new("");
    let mut b = Bundle::new();
    let k = b.dir.path().join("k");
    std::fs::write(&k, b"not looked at before the disk check").unwrap();
    let lo = LoopRootfs::new("ext4", &[("/unikernel/app", &k)], &[], &b.rootfs());
    b.unikernel("rumprun", "spt", "/unikernel/app")
        .annotate("com.urunc.unikernel.useDMBlock", "true");
    let o = env.urunc(&["create", "--bundle", &b.write(), "rump-ext4"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(
            "guest rumprun: com.urunc.unikernel.useDMBlock: it mounts its rootfs device as ext2"
        ) && t.contains(&lo.dev)
            && t.contains("extent"),
        "{t}"
    );
    // Nothing was handed over.
    assert_eq!(mounts_of(&lo.dev), [b.rootfs().to_str().unwrap()]);
}

#[test]
fn use_dm_block_on_a_plain_directory_is_a_clear_error() {
    let env = Env::new("");
    let mut b = Bundle::new();
    b.add_file(&std::env::current_exe().unwrap(), "/unikernel/app")
        .unikernel("linux", "qemu", "/unikernel/app")
        .annotate("com.urunc.unikernel.useDMBlock", "true");
    let o = env.urunc(&["create", "--bundle", &b.write(), "dm-dir"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("key com.urunc.unikernel.useDMBlock") && t.contains("is not a mount point"),
        "{t}"
    );
    assert!(!env.state_dir("dm-dir").exists());
}

#[test]
fn rumprun_block_image_is_not_checked_but_a_read_only_root_refuses_it_on_solo5() {
    let t = "rumprun_block_image_is_not_checked_but_a_read_only_root_refuses_it_on_solo5";
    if !need_bin(t, "mke2fs") {
        return;
    }
    let env = Env::new("");
    let img = env.dir.path().join("disk4.img");
    let o = std::process::Command::new("bash")
        .arg(repo_root().join("tests/fixtures/mkdisk.sh"))
        .arg(&img)
        .arg("hello.txt=ext4")
        .env("FSTYPE", "ext4")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut b = Bundle::new();
    b.add_file(&std::env::current_exe().unwrap(), "/unikernel/app")
        .add_file(&img, "/data/disk.img")
        .unikernel("rumprun", "hvt", "/unikernel/app")
        .annotate("com.urunc.unikernel.block", "/data/disk.img");
    // Rumprun's `fstype: blk` tries LFS, CD9660, FFS and EXT2FS: an image
    // is not refused for its file system; this one fails later, on its
    // kernel (not a Solo5 ELF).
    let o = env.urunc(&["create", "--bundle", &b.write(), "rump-img"]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        !msg.contains("ext2") && msg.contains("com.urunc.unikernel.binary"),
        "{msg}"
    );
    // With a read-only rootfs the tender could not open the image
    // (O_RDWR): refused at create, naming root.readonly and the disk.
    b.spec["root"]["readonly"] = serde_json::json!(true);
    let o = env.urunc(&["create", "--bundle", &b.write(), "rump-ro"]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains("root.readonly")
            && msg.contains("/data/disk.img")
            && msg.contains("com.urunc.unikernel.block")
            && msg.contains("read-write"),
        "{msg}"
    );
    assert!(!env.state_dir("rump-ro").exists());
}

//! Paths from metadata are resolved once, at `create`, and the monitor is
//! given the file that was resolved, never the name again (README
//! "### Paths"). Here a thread swaps the kernel named by the metadata
//! between the real kernel and a symlink to a host file outside the rootfs
//! — a copy of the test kernel that prints `URUNC-HOSTSECRET` instead of
//! `URUNC-TESTKERNEL`, so the guest's output says which file QEMU loaded —
//! as fast as it can, while containers are created, started and deleted.
//! Every `create` must either refuse the path, naming the key and the
//! path, or hand over the real kernel: the waiting process holds no
//! descriptor of the host file, and the guest prints `URUNC-TESTKERNEL`.
//!
//! Two containers reach host files differently when a name is looked up
//! again at `start`: one without a mount namespace (the monitor opens host
//! paths), one without a PID namespace (its sandbox's /proc shows the
//! host's processes, and `/proc/<pid>/root` is their root).

mod support;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const KEY: &str = "com.urunc.unikernel.binary";
const SECRET_MARK: &str = "URUNC-HOSTSECRET";

/// The test kernel with its marker replaced (same length, so it boots).
fn write_secret_kernel(dst: &Path) {
    let k = std::fs::read(fixtures().join("testkernel.elf")).unwrap();
    let (from, to) = (b"URUNC-TESTKERNEL", SECRET_MARK.as_bytes());
    let mut out = Vec::with_capacity(k.len());
    let mut i = 0;
    while i < k.len() {
        if k[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(k[i]);
            i += 1;
        }
    }
    assert_ne!(out, k, "the test kernel has no marker to replace");
    std::fs::write(dst, out).unwrap();
}

/// Swaps `a` and `b` (`renameat2(RENAME_EXCHANGE)`: the name always
/// exists) until dropped; counts the swaps.
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    fn start(a: PathBuf, b: PathBuf) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), swaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(None, &a, None, &b, nix::fcntl::RenameFlags::RENAME_EXCHANGE)
                    .expect("renameat2");
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        Swapper {
            stop,
            swaps,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (device, inode) of every descriptor `pid` holds.
fn fd_ids(pid: i32) -> Vec<(u64, u64, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let m = std::fs::metadata(e.path()).ok()?;
            Some((m.dev(), m.ino(), std::fs::read_link(e.path()).ok()?))
        })
        .collect()
}

struct Outcome {
    created: u32,
    refused: u32,
    escaped: Vec<String>,
}

/// Creates, starts and deletes containers of the tiny bundle without the
/// `drop_ns` namespace while /unikernel/kernel swaps with a symlink to
/// each of `targets(secret)` in turn, for up to 25 containers each.
fn race(test: &str, drop_ns: &str, targets: impl Fn(&Path) -> Vec<String>) -> Outcome {
    let env = Env::new(TINY_CONFIG);
    let secret_path = env.dir.path().join("secret");
    write_secret_kernel(&secret_path);
    let secret = std::fs::metadata(&secret_path).unwrap();
    let mut b = tiny_bundle(&[]);
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != drop_ns);
    let bundle = b.write();
    let dir = b.rootfs().join("unikernel");
    let real = std::fs::metadata(dir.join("kernel")).unwrap();
    let mut out = Outcome {
        created: 0,
        refused: 0,
        escaped: vec![],
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    'targets: for target in targets(&secret_path) {
        let link = dir.join("other");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let swapper = Swapper::start(dir.join("kernel"), link.clone());
        for _ in 0..25 {
            if Instant::now() > deadline {
                break 'targets;
            }
            i += 1;
            let id = format!("paths-{drop_ns}-{i}");
            let pidfile = env.dir.path().join(format!("{id}.pid"));
            let st = env
                .cmd()
                .args(["create", "--bundle", &bundle, "--pid-file"])
                .arg(&pidfile)
                .arg(&id)
                .stdin(std::process::Stdio::null())
                .stdout(std::fs::File::create(env.out_path(&id)).unwrap())
                .stderr(std::fs::File::create(env.dir.path().join(format!("{id}.err"))).unwrap())
                .status()
                .unwrap();
            let _cleanup = DeleteOnDrop(&env, &id);
            if !st.success() {
                // Refused: the symlink was there when create looked.
                let err = env.err(&id);
                assert!(
                    err.contains(KEY) && err.contains("/unikernel/kernel"),
                    "{test}: {id}: the error names neither the key nor the path: {err}"
                );
                assert!(!env.state_dir(&id).exists(), "{test}: {id}: state left");
                out.refused += 1;
                continue;
            }
            out.created += 1;
            let pid: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // What the waiting process holds for the monitor is never the
            // host file.
            for (dev, ino, what) in fd_ids(pid) {
                assert!(
                    (dev, ino) != (secret.dev(), secret.ino()),
                    "{test}: {id}: the waiting process holds the host file as {}",
                    what.display()
                );
            }
            env.ok(&["start", &id]);
            let code = wait_exit(pid, Duration::from_secs(30));
            let guest = env.out(&id);
            if guest.contains(SECRET_MARK) {
                out.escaped.push(format!("{id} (symlink to {target})"));
            } else {
                assert!(
                    guest.contains("URUNC-TESTKERNEL poweroff") && code == Some(0),
                    "{test}: {id}: exit {code:?}, guest output: {guest}\n{}",
                    env.err(&id)
                );
            }
            env.ok(&["delete", &id]);
            assert!(!env.state_dir(&id).exists(), "{test}: {id}: state left");
            assert!(no_process_with(&bundle), "{test}: {id}: a process left");
        }
        let swaps = swapper.swaps.load(Ordering::Relaxed);
        drop(swapper);
        assert!(swaps > 100, "{test}: the swapper ran only {swaps} times");
        // The real kernel back at its name for the next target.
        if std::fs::metadata(dir.join("kernel")).unwrap().ino() != real.ino() {
            nix::fcntl::renameat2(
                None,
                &dir.join("kernel"),
                None,
                &link,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .unwrap();
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.root.to_str().unwrap()),
        "{test}: mounts left under the state root"
    );
    // The host file is as it was.
    let now = std::fs::metadata(&secret_path).unwrap();
    assert_eq!((now.ino(), now.size()), (secret.ino(), secret.size()));
    out
}

fn check(test: &str, o: &Outcome) {
    println!(
        "{test}: {} created, {} refused, {} escaped",
        o.created,
        o.refused,
        o.escaped.len()
    );
    assert!(
        o.escaped.is_empty(),
        "{test}: the monitor loaded the host file in {:?}",
        o.escaped
    );
    // Both sides of the race were seen: the swap really raced create.
    assert!(o.created > 0 && o.refused > 0, "{test}: no race was run");
}

#[test]
fn symlink_swap_without_a_mount_namespace() {
    let test = "symlink_swap_without_a_mount_namespace";
    if !need_qemu(test) {
        return;
    }
    subreaper();
    // The monitor would open host paths: the host file's own path.
    let o = race(test, "mount", |secret| {
        vec![
            secret.display().to_string(),
            format!("../../../../../../../../..{}", secret.display()),
        ]
    });
    check(test, &o);
}

#[test]
fn symlink_swap_without_a_pid_namespace() {
    let test = "symlink_swap_without_a_pid_namespace";
    if !need_qemu(test) {
        return;
    }
    subreaper();
    // The sandbox's /proc would show this process, whose root is the
    // host's.
    let me = std::process::id();
    let o = race(test, "pid", |secret| {
        vec![
            format!("/proc/{me}/root{}", secret.display()),
            format!(
                "../../../../../../../../../proc/{me}/root{}",
                secret.display()
            ),
        ]
    });
    check(test, &o);
}

/// The mount options of the mount on `point` in `pid`'s mount namespace.
fn mount_opts(pid: i32, point: &str) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&point)).then(|| f[5].to_string())
    })
}

/// What the sandbox attaches are the files resolved in the rootfs (same
/// device and inode), the kernel and initrd read-only, the disk read-only
/// exactly when `root.readonly` is set.
#[test]
fn resolved_files_are_attached_read_only_as_asked() {
    let test = "resolved_files_are_attached_read_only_as_asked";
    if !need_qemu(test) {
        return;
    }
    subreaper();
    // A disk needs PCI: not microvm.
    let env = Env::new("[monitors.qemu]\naccel = \"kvm-tcg\"\nmachine = \"pc\"\n");
    for readonly in [true, false] {
        let mut b = tiny_bundle(&["/init", "hang"]);
        b.annotate("com.urunc.unikernel.unikernelType", "linux")
            .annotate("com.urunc.unikernel.initrd", "/unikernel/initrd")
            .annotate("com.urunc.unikernel.block", "/disk.img");
        b.spec["root"]["readonly"] = readonly.into();
        std::fs::write(b.rootfs().join("unikernel/initrd"), b"initrd").unwrap();
        std::fs::write(b.rootfs().join("disk.img"), vec![0u8; 1 << 20]).unwrap();
        let bundle = b.write();
        let id = format!("attach-{readonly}");
        let pid = env.create(&bundle, &id, &[]);
        let _cleanup = DeleteOnDrop(&env, &id);
        env.ok(&["start", &id]);
        assert!(
            env.wait_out(&id, "URUNC-TESTKERNEL hang", Duration::from_secs(30)),
            "{test}: {}{}",
            env.out(&id),
            env.err(&id)
        );
        for (name, host, ro) in [
            ("kernel", "unikernel/kernel", true),
            ("initrd", "unikernel/initrd", true),
            ("disk", "disk.img", readonly),
        ] {
            let point = format!("/run/urunc/boot/{name}");
            let opts = mount_opts(pid, &point)
                .unwrap_or_else(|| panic!("{test}: nothing attached on {point}"));
            assert_eq!(
                opts.split(',').next(),
                Some(if ro { "ro" } else { "rw" }),
                "{test}: {point}: {opts}"
            );
            let seen = std::fs::metadata(format!("/proc/{pid}/root{point}")).unwrap();
            let file = std::fs::metadata(b.rootfs().join(host)).unwrap();
            assert_eq!(
                (seen.dev(), seen.ino()),
                (file.dev(), file.ino()),
                "{test}: {point}"
            );
        }
        env.ok(&["kill", &id, "KILL"]);
        assert_eq!(wait_exit(pid, Duration::from_secs(10)), Some(137));
        env.ok(&["delete", &id]);
        assert!(!env.state_dir(&id).exists());
    }
}

//! Fault injection: `urunc create`, `start` and `delete` SIGKILLed at each
//! step (paused there by the test-only `URUNC_TEST_PAUSE_AT`, see
//! `urunc-core/src/testpoint.rs`), the monitor crashing, `/dev/kvm` and
//! `/dev/net/tun` missing, a full state directory, state left from a
//! previous boot. Meanwhile `state` and `list` must tell the truth, and
//! afterwards `delete --force` must leave no tap, qdisc, mount, cgroup,
//! state directory or process.
//!
//! Real QEMU with the tiny test kernel (KVM when there, else TCG), a pod
//! network namespace per case (tap + tc on its eth0) and a cgroup per case.

mod support;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::*;

const T: Duration = Duration::from_secs(60);
/// The tiny kernel with a NIC: microvm has no PCI bus for virtio-net-pci.
const NET_CONFIG: &str = "[monitors.qemu]\naccel = \"kvm-tcg\"\nmachine = \"pc\"\n";
static SEQ: AtomicU32 = AtomicU32::new(0);

/// One container under test: its environment, bundle, pod network
/// namespace and cgroup, all with names unique to this test run.
struct Case {
    env: Env,
    id: String,
    bundle: Bundle,
    pod: Option<PodNetNs>,
    /// Top of the container's cgroup path (`/<cg_top>/<id>`).
    cg_top: String,
    hooks_log: PathBuf,
}

impl Case {
    fn new(tag: &str, net: bool) -> Case {
        Case::with_config(tag, net, if net { NET_CONFIG } else { TINY_CONFIG })
    }

    fn with_config(tag: &str, net: bool, config: &str) -> Case {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let id = format!("{tag}-{pid}-{n}");
        let env = Env::new(config);
        let mut bundle = tiny_bundle(&["app", "hang"]);
        let cg_top = format!("urunc-faults-{pid}-{n}");
        bundle.spec["linux"]["cgroupsPath"] = json!(format!("/{cg_top}/{id}"));
        let hooks_log = env.dir.path().join("poststop.log");
        bundle.spec["hooks"] = json!({"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo poststop >> {}", hooks_log.display())]}]});
        let pod = net.then(|| {
            let name = format!("uf{pid}x{n}");
            let ns = PodNetNs::new(&name, "10.213.7", "02:00:0a:d5:07:02");
            bundle.spec["linux"]["namespaces"] = json!([
                {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "network", "path": ns.path()},
            ]);
            ns
        });
        bundle.write();
        Case {
            env,
            id,
            bundle,
            pod,
            cg_top,
            hooks_log,
        }
    }

    fn bundle_path(&self) -> String {
        self.bundle.path().to_str().unwrap().to_string()
    }

    /// `urunc <args> ID` in the background, stdio to the case's files,
    /// with `extra_env` (e.g. the pause point).
    fn spawn(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
        let mut c = self.env.cmd();
        c.args(args)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(self.out_file())
            .stderr(self.err_file());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }

    fn err_path(&self) -> PathBuf {
        self.env.dir.path().join(format!("{}.err", self.id))
    }

    fn out_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.out_path(&self.id))
            .unwrap()
    }

    fn err_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.err_path())
            .unwrap()
    }

    fn create_args(&self) -> Vec<String> {
        vec![
            "create".into(),
            "--bundle".into(),
            self.bundle_path(),
            "--pid-file".into(),
            self.pid_file().to_str().unwrap().into(),
        ]
    }

    fn pid_file(&self) -> PathBuf {
        self.env.dir.path().join(format!("{}.pid", self.id))
    }

    /// `create` in the background with `extra_env` (inherited by the
    /// waiting process).
    fn spawn_create(&self, extra_env: &[(&str, &str)]) -> Child {
        let a = self.create_args();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        self.spawn(&a, extra_env)
    }

    /// `create` to completion; the waiting process's PID.
    fn create(&self, extra_env: &[(&str, &str)]) -> i32 {
        let st = self.spawn_create(extra_env).wait().unwrap();
        assert!(st.success(), "{}: create failed: {}", self.id, self.err());
        self.created_pid()
    }

    /// The waiting process's PID, as create wrote it to --pid-file.
    fn created_pid(&self) -> i32 {
        std::fs::read_to_string(self.pid_file())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits for the guest's "hang" line.
    fn wait_booted(&self) {
        assert!(
            self.env.wait_out(&self.id, "URUNC-TESTKERNEL hang", T),
            "{}: guest did not boot: {}",
            self.id,
            self.err()
        );
    }

    /// create + start + the guest's "hang" line; the monitor's PID.
    fn running(&self) -> i32 {
        let pid = self.create(&[]);
        self.env.ok(&["start", &self.id]);
        self.wait_booted();
        pid
    }

    fn err(&self) -> String {
        std::fs::read_to_string(self.err_path()).unwrap_or_default()
    }

    /// Waits until a process writes `urunc: test pause at <step>`.
    fn wait_paused(&self, step: &str) {
        let needle = format!("test pause at {step} ");
        let deadline = Instant::now() + T;
        while !self.err().contains(&needle) {
            assert!(
                Instant::now() < deadline,
                "{}: never paused at {step}: {}",
                self.id,
                self.err()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `state` and `list` agree on `want`.
    fn assert_status(&self, want: &str, when: &str) {
        let st = self.env.state(&self.id);
        assert_eq!(st["status"], want, "{} {when}: state: {st}", self.id);
        let o = self.env.ok(&["list", "--format", "json"]);
        let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        let row = rows.iter().find(|r| r["id"] == self.id.as_str());
        assert_eq!(
            row.map(|r| r["status"].clone()),
            Some(json!(want)),
            "{} {when}: list: {rows:?}",
            self.id
        );
    }

    fn state_pid(&self) -> i32 {
        self.env.state(&self.id)["pid"].as_i64().unwrap() as i32
    }

    /// The container's tap name (what urunc's network::tap_name derives
    /// from the ID), as the state file records it.
    fn tap(&self) -> String {
        let mut h: u32 = 0x811c9dc5;
        for b in self.id.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x01000193);
        }
        format!("urunc{h:08x}")
    }

    /// The pod's eth0 has an ingress qdisc (urunc's redirect).
    fn has_ingress(&self) -> bool {
        let Some(pod) = &self.pod else { return false };
        let o = Command::new("tc")
            .args(["-n", &pod.name, "qdisc", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("ingress")
    }

    /// Removes the container's (empty) cgroups, as a reboot would.
    fn remove_cgroups(&self) {
        for d in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(d.join(&self.id));
            let _ = std::fs::remove_dir(d);
        }
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let mut v = vec![root.join(&self.cg_top)];
        if let Ok(rd) = std::fs::read_dir(root) {
            v.extend(rd.flatten().map(|e| e.path().join(&self.cg_top)));
        }
        v.into_iter().filter(|p| p.exists()).collect()
    }

    /// Nothing of the container is left: no state directory (nor a staged
    /// one), no process, no cgroup, no tap, no qdisc, no mount; `state`
    /// does not know it and `list` does not show it.
    fn assert_clean(&self, when: &str) {
        let w = format!("{} {when}", self.id);
        let tap = &self.tap();
        assert!(
            !self.env.state_dir(&self.id).exists(),
            "{w}: state dir left"
        );
        if let Ok(rd) = std::fs::read_dir(&self.env.root) {
            let left: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            assert!(left.is_empty(), "{w}: left under --root: {left:?}");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !no_process_with(&self.bundle_path()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            no_process_with(&self.bundle_path()),
            "{w}: a process is left"
        );
        assert_eq!(
            self.cgroup_dirs(),
            Vec::<PathBuf>::new(),
            "{w}: cgroups left"
        );
        if let Some(pod) = &self.pod {
            assert!(pod.link(tap).is_none(), "{w}: tap {tap} left");
            assert!(!self.has_ingress(), "{w}: ingress qdisc left on eth0");
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let env_dir = self.env.dir.path().to_str().unwrap();
        let bundle = self.bundle_path();
        assert!(
            !mi.lines()
                .any(|l| l.contains(env_dir) || l.contains(&bundle)),
            "{w}: mount left:\n{mi}"
        );
        let o = self.env.urunc(&["state", &self.id]);
        assert!(
            !o.status.success(),
            "{w}: state still answers: {}",
            text(&o)
        );
        let o = self.env.ok(&["list", "--format", "json"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&self.id),
            "{w}: list still shows it"
        );
    }

    fn force_delete_clean(&self, when: &str) {
        let o = self.env.urunc(&["delete", "--force", &self.id]);
        assert!(
            o.status.success(),
            "{} {when}: delete --force: {}",
            self.id,
            text(&o)
        );
        self.assert_clean(when);
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if self.env.state_dir(&self.id).exists() {
            let _ = self.env.urunc(&["delete", "--force", &self.id]);
        }
        self.remove_cgroups();
    }
}

fn sigkill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn kill9(pid: i32) {
    // SAFETY: kill with a PID and a constant signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// SIGKILLs the monitor (or waiting process) `pid` and reaps it: 137.
fn crash(pid: i32) {
    kill9(pid);
    assert_eq!(wait_exit(pid, T), Some(137));
}

fn fault_preconditions(test: &str) -> bool {
    need_qemu(test) && need_bin(test, "ip") && need_bin(test, "tc")
}

#[test]
fn create_killed_at_each_step_leaves_nothing_after_delete() {
    if !fault_preconditions("create_killed_at_each_step_leaves_nothing_after_delete") {
        return;
    }
    subreaper();
    for step in [
        "create:state",
        "create:forked",
        "create:placed",
        "create:hooks",
    ] {
        let c = Case::new("fc", true);
        let mut create = c.spawn_create(&[("URUNC_TEST_PAUSE_AT", step)]);
        c.wait_paused(step);
        c.assert_status("creating", &format!("paused at {step}"));
        // Nothing can be started, signalled or deleted without --force.
        for args in [vec!["start"], vec!["kill"], vec!["delete"]] {
            let mut a = args.clone();
            a.push(&c.id);
            let o = c.env.urunc(&a);
            assert!(!o.status.success(), "{step}: {a:?} must fail: {}", text(&o));
        }
        let waiting = c.state_pid();
        sigkill(&mut create);
        // A create that died: the container never came to be.
        c.assert_status("stopped", &format!("create killed at {step}"));
        c.force_delete_clean(&format!("after create killed at {step}"));
        if waiting > 0 {
            assert!(wait_exit(waiting, T).is_some(), "{step}: waiting process");
        }
        println!("create killed at {step}: state creating, then stopped; delete --force: clean");
    }
}

#[test]
fn delete_force_during_create_kills_it_and_leaves_nothing() {
    if !fault_preconditions("delete_force_during_create_kills_it_and_leaves_nothing") {
        return;
    }
    subreaper();
    for step in ["create:state", "create:placed", "create:hooks"] {
        let c = Case::new("fd", true);
        let mut create = c.spawn_create(&[("URUNC_TEST_PAUSE_AT", step)]);
        c.wait_paused(step);
        let waiting = c.state_pid();
        c.force_delete_clean(&format!("delete --force while create paused at {step}"));
        let st = create.wait().unwrap();
        assert!(!st.success(), "{step}: the killed create must not succeed");
        if waiting > 0 {
            assert!(wait_exit(waiting, T).is_some());
        }
    }
}

#[test]
fn start_killed_before_waking_the_container_leaves_it_created() {
    if !fault_preconditions("start_killed_before_waking_the_container_leaves_it_created") {
        return;
    }
    subreaper();
    let c = Case::new("fs", true);
    let pid = c.create(&[]);
    let mut start = c.spawn(&["start"], &[("URUNC_TEST_PAUSE_AT", "start:saved")]);
    c.wait_paused("start:saved");
    c.assert_status("created", "start paused before waking it");
    sigkill(&mut start);
    c.assert_status("created", "start killed before waking it");
    // It can still be started.
    c.env.ok(&["start", &c.id]);
    c.wait_booted();
    c.assert_status("running", "started again");
    c.force_delete_clean("after start killed at start:saved");
    assert_eq!(wait_exit(pid, T), Some(137));
}

#[test]
fn waiting_process_killed_during_start_fails_start_and_leaves_nothing() {
    if !fault_preconditions("waiting_process_killed_during_start_fails_start_and_leaves_nothing") {
        return;
    }
    subreaper();
    for step in ["start:network", "start:sandbox"] {
        let c = Case::new("fw", true);
        let pid = c.create(&[("URUNC_TEST_PAUSE_AT", step)]);
        let start = c.spawn(&["start"], &[]);
        c.wait_paused(step);
        c.assert_status("created", &format!("waiting process paused at {step}"));
        let tap = c.tap();
        let pod = c.pod.as_ref().unwrap();
        assert!(
            pod.link(&tap).is_some(),
            "{step}: the tap should exist by now"
        );
        assert!(c.has_ingress(), "{step}: the redirect should exist by now");
        crash(pid);
        let out = start.wait_with_output().unwrap();
        assert!(!out.status.success(), "{step}: start must fail");
        let err = c.err();
        assert!(
            err.contains("died before the monitor was started"),
            "{step}: {err}"
        );
        c.assert_status("stopped", &format!("waiting process killed at {step}"));
        // A stopped container: plain delete cleans up the pod's network.
        c.env.ok(&["delete", &c.id]);
        c.assert_clean(&format!("after the waiting process was killed at {step}"));
    }
}

#[test]
fn start_killed_while_the_monitor_starts_leaves_it_running() {
    if !fault_preconditions("start_killed_while_the_monitor_starts_leaves_it_running") {
        return;
    }
    subreaper();
    let c = Case::new("fr", true);
    let resume = c.env.dir.path().join("resume");
    let pid = c.create(&[
        ("URUNC_TEST_PAUSE_AT", "start:network"),
        ("URUNC_TEST_RESUME", resume.to_str().unwrap()),
    ]);
    let mut start = c.spawn(&["start"], &[]);
    c.wait_paused("start:network");
    sigkill(&mut start);
    std::fs::write(&resume, "").unwrap();
    c.wait_booted();
    c.assert_status("running", "start killed, the monitor exec'd anyway");
    c.force_delete_clean("after start killed while the monitor started");
    assert_eq!(wait_exit(pid, T), Some(137));
}

#[test]
fn delete_killed_at_each_step_is_finished_by_the_next_delete() {
    if !fault_preconditions("delete_killed_at_each_step_is_finished_by_the_next_delete") {
        return;
    }
    subreaper();
    for step in [
        "delete:killed",
        "delete:network",
        "delete:cgroups",
        "delete:hooks",
    ] {
        let c = Case::new("fx", true);
        let pid = c.running();
        let mut del = c.spawn(&["delete", "--force"], &[("URUNC_TEST_PAUSE_AT", step)]);
        c.wait_paused(step);
        assert_eq!(wait_exit(pid, T), Some(137), "{step}: monitor");
        c.assert_status("stopped", &format!("delete paused at {step}"));
        sigkill(&mut del);
        c.assert_status("stopped", &format!("delete killed at {step}"));
        c.force_delete_clean(&format!("after delete killed at {step}"));
        let hooks = std::fs::read_to_string(&c.hooks_log).unwrap_or_default();
        assert!(hooks.contains("poststop"), "{step}: poststop never ran");
    }
}

#[test]
fn monitor_crash_mid_run_is_cleaned_by_delete() {
    if !fault_preconditions("monitor_crash_mid_run_is_cleaned_by_delete") {
        return;
    }
    subreaper();
    let c = Case::new("fm", true);
    let pid = c.running();
    let tap = c.tap();
    // A crash from outside: a signal the monitor does not handle, sent
    // from an ancestor PID namespace to the namespace's init, is dropped by
    // the kernel unless it is SIGKILL, so the crash is a SIGKILL (no chance
    // to clean up, as with a real fault).
    crash(pid);
    c.assert_status("stopped", "after the monitor crashed");
    // The crash left the persistent tap and the redirect in the pod.
    assert!(c.pod.as_ref().unwrap().link(&tap).is_some());
    let o = c.env.urunc(&["kill", &c.id, "KILL"]);
    assert!(
        !o.status.success(),
        "kill of a crashed container: {}",
        text(&o)
    );
    c.env.ok(&["delete", &c.id]);
    c.assert_clean("after the monitor crashed");
}

/// `urunc ARGS` in a private mount namespace whose /dev lacks `hide`
/// (`kvm` or `net/tun`): a fresh tmpfs with binds of the usual nodes.
fn without_dev(c: &Case, hide: &str, args: &[String]) -> std::process::Output {
    let script = r#"set -e
o=$(mktemp -d)
mount --rbind /dev "$o"
mount -t tmpfs -o mode=755 urunc-test-dev /dev
mkdir /dev/net /dev/pts /dev/shm
for n in null zero full random urandom tty ptmx kvm net/tun; do
  [ "$n" = "$HIDE" ] && continue
  [ -e "$o/$n" ] || continue
  touch "/dev/$n"; mount --bind "$o/$n" "/dev/$n"
done
mount --rbind "$o/pts" /dev/pts
umount -l "$o"; rmdir "$o"
exec "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(urunc_bin())
    .args(["--root", c.env.root.to_str().unwrap()])
    .args(["--log", c.env.log.to_str().unwrap(), "--log-format", "json"])
    .args(args)
    .arg(&c.id)
    .env("URUNC_CONFIG", &c.env.config)
    .env("HIDE", hide)
    .stdin(Stdio::null())
    .stdout(c.out_file())
    .stderr(c.err_file());
    let st = cmd.status().unwrap();
    std::process::Output {
        status: st,
        stdout: vec![],
        stderr: c.err().into_bytes(),
    }
}

#[test]
fn missing_dev_kvm_or_tun_fails_clearly_and_leaves_nothing() {
    let test = "missing_dev_kvm_or_tun_fails_clearly_and_leaves_nothing";
    if !fault_preconditions(test) || !need_bin(test, "unshare") {
        return;
    }
    subreaper();
    // /dev/kvm missing with accel = "kvm": QEMU cannot start the guest.
    let c = Case::with_config(
        "fk",
        true,
        "[monitors.qemu]\naccel = \"kvm\"\nmachine = \"pc\"\n",
    );
    let o = without_dev(&c, "kvm", &c.create_args());
    assert!(o.status.success(), "create: {}", c.err());
    let pid = c.created_pid();
    let o = c.env.urunc(&["start", &c.id]);
    let code = wait_exit(pid, T);
    let err = c.err();
    println!(
        "no /dev/kvm: start {:?}, monitor exit {code:?}, stderr: {}",
        o.status.code(),
        err.lines().last().unwrap_or("")
    );
    assert!(err.contains("kvm"), "the failure must name KVM: {err}");
    assert_ne!(code, Some(0), "QEMU cannot have run the guest without KVM");
    c.assert_status("stopped", "no /dev/kvm");
    c.force_delete_clean("after no /dev/kvm");

    // /dev/net/tun missing: the network step at start fails, naming it.
    let c = Case::new("ft", true);
    let o = without_dev(&c, "net/tun", &c.create_args());
    assert!(o.status.success(), "create: {}", c.err());
    let pid = c.created_pid();
    let o = c.env.urunc(&["start", &c.id]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "start without /dev/net/tun must fail");
    assert!(err.contains("/dev/net/tun"), "{err}");
    println!("no /dev/net/tun: start fails: {}", err.trim());
    assert!(wait_exit(pid, T).is_some());
    c.assert_status("stopped", "no /dev/net/tun");
    c.force_delete_clean("after no /dev/net/tun");
}

/// A size-limited tmpfs mounted for one test; unmounted on drop.
struct SmallTmpfs(tempfile::TempDir);

impl SmallTmpfs {
    fn new() -> SmallTmpfs {
        let d = tempfile::Builder::new()
            .prefix("urunc-full-")
            .tempdir()
            .unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=700", "urunc-test-full"])
            .arg(d.path())
            .status()
            .unwrap();
        assert!(st.success());
        SmallTmpfs(d)
    }

    /// Fills the file system; `free` removes the filler.
    fn fill(&self) {
        let _ = std::fs::create_dir_all(self.0.path().join("state"));
        let filler = self.0.path().join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", filler.display()))
            .stderr(Stdio::null())
            .status();
        // dd stops at ENOSPC; a few more small files take the last blocks.
        for i in 0..64 {
            if std::fs::write(self.0.path().join(format!("f{i}")), [0u8; 512]).is_err() {
                break;
            }
        }
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.path().join("filler"));
        for i in 0..64 {
            let _ = std::fs::remove_file(self.0.path().join(format!("f{i}")));
        }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn full_state_directory_fails_create_and_start_cleanly() {
    if !fault_preconditions("full_state_directory_fails_create_and_start_cleanly") {
        return;
    }
    subreaper();
    let fs = SmallTmpfs::new();
    let mut c = Case::new("fl", true);
    c.env.root = fs.0.path().join("state");
    fs.fill();
    let st = c.spawn_create(&[]).wait().unwrap();
    let err = c.err();
    assert!(!st.success(), "create on a full state dir must fail");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(c.env.root.to_str().unwrap()),
        "names the path: {err}"
    );
    println!("full --root: create fails: {}", err.trim());
    c.assert_clean("after create on a full state dir");

    fs.free();
    let pid = c.create(&[]);
    fs.fill();
    let o = c.env.urunc(&["start", &c.id]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "start on a full state dir must fail");
    assert!(err.contains("No space left on device"), "{err}");
    println!("full --root: start fails: {}", err.trim());
    c.assert_status("created", "start failed on a full state dir");
    // delete only removes: it works on a full file system.
    c.force_delete_clean("after start on a full state dir");
    assert!(wait_exit(pid, T).is_some());
}

/// Rewrites the state file as another boot would have left it: `pid`
/// (now someone else's process) with the old start time.
fn rewrite_state(c: &Case, f: impl FnOnce(&mut Value)) {
    let p = c.env.state_dir(&c.id).join("urunc-state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut st);
    std::fs::write(&p, serde_json::to_vec(&st).unwrap()).unwrap();
}

#[test]
fn state_left_from_a_previous_boot_is_stopped_and_deletable() {
    if !fault_preconditions("state_left_from_a_previous_boot_is_stopped_and_deletable") {
        return;
    }
    subreaper();
    // An unrelated process that now holds the recorded PID.
    let mut other = Command::new("sleep").arg("600").spawn().unwrap();
    let other_pid = other.id() as i32;

    // A crash, then the PID reused: the tap and redirect are still in the
    // pod's namespace, the cgroup is still there.
    let c = Case::new("fb", true);
    let pid = c.running();
    crash(pid);
    rewrite_state(&c, |st| st["pid"] = json!(other_pid));
    c.assert_status("stopped", "pid reused by another process");
    c.env.ok(&["delete", &c.id]);
    c.assert_clean("after a crash with the PID reused");

    // A previous boot: processes, namespace and cgroups gone, the state
    // directory still there (a --root that is not on a tmpfs).
    let c = Case::new("fp", true);
    let pid = c.create(&[]);
    kill9(pid);
    assert!(wait_exit(pid, T).is_some());
    c.remove_cgroups();
    let _ = Command::new("ip")
        .args(["netns", "del", &c.pod.as_ref().unwrap().name])
        .status();
    rewrite_state(&c, |st| {
        st["pid"] = json!(other_pid);
        st["creating"] = json!({"pid": other_pid, "start": 1});
    });
    c.assert_status("stopped", "state from a previous boot");
    c.force_delete_clean("after a previous boot");
    assert_eq!(
        nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(other_pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        )
        .unwrap(),
        nix::sys::wait::WaitStatus::StillAlive,
        "delete killed a process that merely reuses the recorded PID"
    );
    let _ = other.kill();
    let _ = other.wait();
}

//! Shared helpers for urunc's integration tests: private state root and
//! config, bundle builder, fixtures, SKIP checks, waiting as a subreaper.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::{Duration, Instant};

pub mod netns;

pub fn urunc_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_urunc"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Prints `SKIP: <test>: <reason>` and returns false when not root.
pub fn need_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("SKIP: {test}: needs root");
    false
}

pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Prints SKIP and returns false when `bin` is not on PATH.
pub fn need_bin(test: &str, bin: &str) -> bool {
    if which(bin).is_some() {
        return true;
    }
    println!("SKIP: {test}: {bin} not found on PATH");
    false
}

/// Root, QEMU: the common precondition of the boot tests.
pub fn need_qemu(test: &str) -> bool {
    need_root(test) && need_bin(test, "qemu-system-x86_64")
}

static FIXTURES: Once = Once::new();

/// Builds (once) and returns tests/fixtures/build.
pub fn fixtures() -> PathBuf {
    let root = repo_root();
    FIXTURES.call_once(|| {
        let out = Command::new("bash")
            .arg(root.join("tests/fixtures/build.sh"))
            .output()
            .expect("running build.sh");
        assert!(
            out.status.success(),
            "fixtures/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    root.join("tests/fixtures/build")
}

/// Makes this test process a child subreaper, so that the monitors that
/// `urunc create` leaves behind become our children and we can wait for
/// them (what a shim does).
pub fn subreaper() {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Waits for `pid` (our child via subreaper) up to `timeout`; exit code, or
/// 128+signal. None on timeout.
pub fn wait_exit(pid: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return Some(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Some(128 + libc::WTERMSIG(status));
            }
        }
        if r < 0 || Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A private urunc environment: its own `--root` and config file.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// QEMU settings for the tiny test kernel (KVM when possible, microvm).
pub const TINY_CONFIG: &str = "[monitors.qemu]\naccel = \"kvm-tcg\"\nmachine = \"microvm\"\n";
/// QEMU settings for Linux guests: this host's nested KVM cannot run them.
pub const LINUX_CONFIG: &str = "[monitors.qemu]\naccel = \"tcg\"\nmachine = \"pc\"\n";

impl Env {
    pub fn new(config_toml: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("urunc-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("state");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml).unwrap();
        let log = dir.path().join("log.json");
        Env {
            dir,
            root,
            config,
            log,
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(urunc_bin());
        c.env("URUNC_CONFIG", &self.config)
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// Runs urunc with `args`, returning its output.
    pub fn urunc(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running urunc")
    }

    /// Runs urunc and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.urunc(args);
        assert!(o.status.success(), "urunc {args:?} failed: {}", text(&o));
        o
    }

    /// `urunc create` with the container's stdio going to files (a pipe
    /// would be held open by the container); returns the container PID.
    pub fn create(&self, bundle: &str, id: &str, extra: &[&str]) -> i32 {
        let pidfile = self.dir.path().join(format!("{id}.pid"));
        let out = std::fs::File::create(self.out_path(id)).unwrap();
        let err = std::fs::File::create(self.dir.path().join(format!("{id}.err"))).unwrap();
        let st = self
            .cmd()
            .args([
                "create",
                "--bundle",
                bundle,
                "--pid-file",
                pidfile.to_str().unwrap(),
            ])
            .args(extra)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "urunc create {id} failed: {st}: {}",
            self.err(id)
        );
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn out_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.out"))
    }

    /// What the container wrote on stdout so far.
    pub fn out(&self, id: &str) -> String {
        std::fs::read_to_string(self.out_path(id)).unwrap_or_default()
    }

    /// What the container (and create) wrote on stderr so far.
    pub fn err(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.err"))).unwrap_or_default()
    }

    /// Waits until the container's stdout contains `needle`.
    pub fn wait_out(&self, id: &str, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.out(id).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.ok(&["state", id]);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// State directory entries left for `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs tests/fixtures/FIXTURE/build.sh into `dir`; None (after printing
/// SKIP) when it exits 3 (no Solo5 toolchain).
pub fn build_fixture(test: &str, fixture: &str, dir: &Path) -> Option<()> {
    let o = std::process::Command::new("bash")
        .arg(repo_root().join(format!("tests/fixtures/{fixture}/build.sh")))
        .arg(dir)
        .output()
        .unwrap();
    if o.status.code() == Some(3) {
        println!(
            "SKIP: {test}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return None;
    }
    assert!(o.status.success(), "{fixture}/build.sh: {}", text(&o));
    Some(())
}

/// An OCI bundle in a temp dir.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub spec: Value,
}

impl Bundle {
    /// A bundle with an empty rootfs and a minimal spec (new pid, mount,
    /// ipc, uts and network namespaces; seccomp on).
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("urunc-bundle-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs")).unwrap();
        let spec = json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": [], "env": ["PATH=/usr/bin:/bin"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "urunc-test",
            "annotations": {},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
            },
        });
        Bundle { dir, spec }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Copies `src` into the rootfs at `dst` (absolute, inside the rootfs).
    pub fn add_file(&mut self, src: &Path, dst: &str) -> &mut Self {
        let to = self.rootfs().join(dst.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src, &to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", src.display(), to.display()));
        self
    }

    /// Sets plain-text metadata annotations.
    pub fn unikernel(&mut self, ty: &str, hv: &str, binary: &str) -> &mut Self {
        self.annotate("com.urunc.unikernel.unikernelType", ty)
            .annotate("com.urunc.unikernel.hypervisor", hv)
            .annotate("com.urunc.unikernel.binary", binary)
    }

    /// Joins the spec's network namespace to the one at `path` (a pod's).
    pub fn netns(&mut self, path: &str) -> &mut Self {
        for n in self.spec["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = path.into();
            }
        }
        self
    }

    pub fn annotate(&mut self, k: &str, v: &str) -> &mut Self {
        self.spec["annotations"][k] = json!(v);
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.spec["process"]["args"] = json!(args);
        self
    }

    pub fn env(&mut self, env: &[&str]) -> &mut Self {
        self.spec["process"]["env"] = json!(env);
        self
    }

    pub fn memory_mib(&mut self, mib: u64) -> &mut Self {
        self.spec["linux"]["resources"]["memory"]["limit"] = json!(mib << 20);
        self
    }

    /// Writes config.json; returns the bundle path as a string.
    pub fn write(&self) -> String {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
        self.path().to_str().unwrap().to_string()
    }
}

/// The tiny test kernel as a Unikraft-style unikernel on QEMU.
pub fn tiny_bundle(args: &[&str]) -> Bundle {
    let fx = fixtures();
    let mut b = Bundle::new();
    b.add_file(&fx.join("testkernel.elf"), "/unikernel/kernel")
        .unikernel("unikraft", "qemu", "/unikernel/kernel")
        .args(args);
    b.write();
    b
}

/// The Linux fixture (vmlinux + busybox initramfs) on QEMU.
pub fn linux_bundle(args: &[&str]) -> Bundle {
    let fx = fixtures();
    let mut b = Bundle::new();
    b.add_file(&fx.join("vmlinux"), "/boot/vmlinux")
        .add_file(&fx.join("initramfs.cpio.gz"), "/boot/initrd")
        .unikernel("linux", "qemu", "/boot/vmlinux")
        .annotate("com.urunc.unikernel.initrd", "/boot/initrd")
        .args(args);
    b.write();
    b
}

/// Lines of output containing `marker`.
pub fn marker_lines(out: &str, marker: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.find(marker).map(|i| l[i..].trim_end().to_string()))
        .collect()
}

/// True if no process has `needle` in its command line.
pub fn no_process_with(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| !String::from_utf8_lossy(&c).contains(needle))
            .unwrap_or(true)
    })
}

impl Env {
    /// `urunc create` of `b` must fail cleanly: non-zero exit, no state
    /// directory, no process left, and the same message as the last
    /// `"level":"error"` line of the JSON log. Returns stderr.
    pub fn create_fails(&self, b: &Bundle, id: &str) -> String {
        let bundle = b.write();
        let o = self.urunc(&["create", "--bundle", &bundle, id]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success(),
            "{id}: create should fail: {}",
            text(&o)
        );
        assert!(
            !self.state_dir(id).exists(),
            "{id}: state directory left behind"
        );
        assert!(no_process_with(&bundle), "{id}: a process was left behind");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let last: Value = log
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        assert_eq!(last["level"], "error", "{id}: log: {log}");
        assert!(
            err.contains(last["msg"].as_str().unwrap_or("?")),
            "{id}: stderr and log differ: {err} / {log}"
        );
        err
    }
}

/// `create` in a fresh environment fails cleanly, naming all of `needles`.
pub fn assert_create_fails(b: &Bundle, id: &str, needles: &[&str]) {
    let err = Env::new("").create_fails(b, id);
    for n in needles {
        assert!(err.contains(n), "{id}: error lacks {n:?}: {err}");
    }
}

/// Force-deletes a container when dropped, so that a failed assertion
/// leaves no monitor running.
pub struct DeleteOnDrop<'a>(pub &'a Env, pub &'a str);

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.state_dir(self.1).exists() {
            let _ = self.0.urunc(&["delete", "--force", self.1]);
        }
    }
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("running ip")
}

fn ip_ok(args: &[&str]) {
    let o = ip(args);
    assert!(o.status.success(), "ip {args:?}: {}", text(&o));
}

/// A pod network namespace made by the test: `eth0` (a veth whose other
/// end stays in the host) with `<subnet>.2/24`, the given MAC and a default
/// route via `<subnet>.1`. Removed on drop.
pub struct PodNetNs {
    pub name: String,
    host_if: String,
}

impl PodNetNs {
    pub fn new(name: &str, subnet: &str, mac: &str) -> PodNetNs {
        let host_if = format!("{name}-h");
        let _ = ip(&["netns", "del", name]);
        let _ = ip(&["link", "del", &host_if]);
        ip_ok(&["netns", "add", name]);
        let ns = PodNetNs {
            name: name.into(),
            host_if,
        };
        ip_ok(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            name,
        ]);
        ip_ok(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{subnet}.2/24"),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", name, "link", "set", "eth0", "address", mac]);
        ip_ok(&["-n", name, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", name, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n",
            name,
            "route",
            "add",
            "default",
            "via",
            &format!("{subnet}.1"),
        ]);
        ns
    }

    /// The path for the spec's `{"type": "network", "path": ...}`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip -d link show DEV` in the namespace, if DEV exists there.
    pub fn link(&self, dev: &str) -> Option<String> {
        let o = ip(&["-n", &self.name, "-d", "link", "show", dev]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for PodNetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// What the test kernels' Unikraft reader (`tests/fixtures/ukparse`) says a
/// Unikraft kernel understood: its argv and its environment (`env.vars`).
pub fn unikraft_understood(out: &str) -> (Vec<String>, Vec<String>) {
    let after = |m: &str| -> Vec<String> {
        marker_lines(out, m)
            .into_iter()
            .map(|l| l[l.find(": ").unwrap() + 2..].to_string())
            .collect()
    };
    (after("URUNC-UK argv["), after("URUNC-UK env: "))
}

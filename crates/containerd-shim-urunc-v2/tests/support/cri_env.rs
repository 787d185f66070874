//! The CRI tests' environment: which containerd (Debian's or
//! `$URUNC_TEST_CONTAINERD`) and its config in both formats, the checks
//! that decide SKIP, network namespaces, and the images (our pause, the
//! Linux fixture guest with and without urunc.json).

#![allow(dead_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::{text, which};

/// The CRI namespace of containerd.
pub const K8S_NS: &str = "k8s.io";
pub const PAUSE_IMAGE: &str = "localhost/urunc-test-pause:latest";
/// Where the test's pods get their addresses (inside the test's own
/// network namespace, so every test can use the same range).
pub const POD_SUBNET: &str = "10.88.0.0/24";
/// QEMU for the Linux fixture guest: TCG (this host's nested KVM cannot run
/// Linux guests), `-M pc`.
pub const URUNC_CONFIG: &str =
    "[monitors.qemu]\naccel = \"tcg\"\nmachine = \"pc\"\nextra_guest_args = [\"quiet\"]\n";

/// A containerd binary and its ctr.
#[derive(Clone, Debug)]
pub struct Engine {
    pub containerd: PathBuf,
    pub ctr: PathBuf,
    /// Major version: 1 → config version 2 (plugin `io.containerd.grpc.v1.cri`),
    /// 2 → config version 3 (`io.containerd.cri.v1.runtime` / `.images`).
    pub major: u32,
    pub minor: u32,
    pub version: String,
}

pub use crate::support::ENGINE_ENV;

/// Each case once on Debian's containerd and once on `$URUNC_TEST_CONTAINERD`;
/// `$setup` checks what the file's cases need (SKIP or `Some(engine)`).
#[macro_export]
macro_rules! engine_tests {
    ($setup:path; $($name:ident),* $(,)?) => {
        /// Debian's containerd (1.6).
        mod debian {
            $(
                #[test]
                fn $name() {
                    let t = concat!("debian::", stringify!($name));
                    if let Some(e) = $setup(t, $crate::harness::Engine::debian().map(Some)) {
                        super::$name(&e);
                    }
                }
            )*
        }
        /// The containerd named by `$URUNC_TEST_CONTAINERD` (e.g. 2.x).
        mod env_containerd {
            $(
                #[test]
                fn $name() {
                    let t = concat!("env_containerd::", stringify!($name));
                    if let Some(e) = $setup(t, $crate::harness::Engine::from_env()) {
                        super::$name(&e);
                    }
                }
            )*
        }
    };
}

/// The engine a case runs on, or SKIP: Debian's containerd missing, or
/// `$URUNC_TEST_CONTAINERD` unset. A `$URUNC_TEST_CONTAINERD` that is set
/// but unusable is a failure, not a SKIP: the run asked for that engine.
pub fn engine_or_skip(test: &str, engine: Result<Option<Engine>, String>) -> Option<Engine> {
    match engine {
        Ok(Some(e)) => Some(e),
        Ok(None) => {
            println!("SKIP: {test}: {ENGINE_ENV} not set");
            None
        }
        Err(e) if test.starts_with("env_containerd::") => panic!("{test}: {e}"),
        Err(e) => {
            println!("SKIP: {test}: {e}");
            None
        }
    }
}

impl Engine {
    /// Debian's containerd (1.6) from PATH.
    pub fn debian() -> Result<Engine, String> {
        let containerd = which("containerd").ok_or("containerd not found in PATH")?;
        let ctr = which("ctr").ok_or("ctr not found in PATH")?;
        Engine::probe(containerd, ctr)
    }

    /// `$URUNC_TEST_CONTAINERD` (and `ctr` next to it); `Ok(None)` when unset.
    pub fn from_env() -> Result<Option<Engine>, String> {
        let Some(bin) = std::env::var_os(ENGINE_ENV).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let containerd = PathBuf::from(bin);
        let ctr = containerd.with_file_name("ctr");
        if !ctr.is_file() {
            return Err(format!(
                "{ENGINE_ENV}={}: no ctr next to it ({})",
                containerd.display(),
                ctr.display()
            ));
        }
        Engine::probe(containerd, ctr).map(Some)
    }

    fn probe(containerd: PathBuf, ctr: PathBuf) -> Result<Engine, String> {
        let out = Command::new(&containerd)
            .arg("--version")
            .output()
            .map_err(|e| format!("{}: {e}", containerd.display()))?;
        // "containerd github.com/containerd/containerd 1.6.20~ds1 <rev>" or
        // "containerd github.com/containerd/containerd/v2 v2.1.5 <rev>".
        let s = text(&out.stdout);
        let version = s
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| format!("{}: unexpected --version: {s:?}", containerd.display()))?
            .trim_start_matches('v')
            .to_string();
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        Ok(Engine {
            containerd,
            ctr,
            major,
            minor,
            version,
        })
    }

    /// The containerd config for `dir`: CRI with the `urunc` and `runc`
    /// handlers, private paths, CNI from Debian's plugins.
    pub fn config(&self, dir: &Path) -> String {
        let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap();
        let common = format!(
            "root = {}\nstate = {}\n[grpc]\n  address = {}\n[ttrpc]\n  address = \"\"\n\
             [debug]\n  level = \"debug\"\n",
            q(&dir.join("root")),
            q(&dir.join("state")),
            q(&dir.join("c.sock")),
        );
        let runtimes = |p: &str| {
            format!(
                "  [{p}.containerd]\n    default_runtime_name = \"runc\"\n\
                 \x20   [{p}.containerd.runtimes.runc]\n      runtime_type = \"io.containerd.runc.v2\"\n\
                 \x20   [{p}.containerd.runtimes.urunc]\n      runtime_type = \"io.containerd.urunc.v2\"\n\
                 \x20     pod_annotations = [\"com.urunc.unikernel.*\", \"com.urunc.network.*\"]\n\
                 \x20     container_annotations = [\"com.urunc.unikernel.*\", \"com.urunc.network.*\"]\n"
            )
        };
        let cni_dir = q(&dir.join("cni"));
        // 2.x: CRI starts NRI (`internal/nri/config.go`), whose socket is
        // /var/run/nri/nri.sock by default: a second containerd of a
        // parallel case then failed to start ("bind: address already in
        // use"). Each gets its own.
        if self.major >= 2 {
            let rt = "plugins.\"io.containerd.cri.v1.runtime\"";
            // containerd 2.1 takes a list of CNI binary directories.
            let bins = if self.minor >= 1 || self.major > 2 {
                "bin_dirs = [\"/usr/lib/cni\"]"
            } else {
                "bin_dir = \"/usr/lib/cni\""
            };
            format!(
                "version = 3\n{common}\
                 [plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"\n\
                 \x20 [plugins.\"io.containerd.cri.v1.images\".pinned_images]\n    sandbox = \"{PAUSE_IMAGE}\"\n\
                 [{rt}]\n  restrict_oom_score_adj = true\n  disable_apparmor = true\n\
                 \x20 netns_mounts_under_state_dir = true\n{}\
                 \x20 [{rt}.cni]\n    {bins}\n    conf_dir = {cni_dir}\n    max_conf_num = 1\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  stream_server_address = \"127.0.0.1\"\n\
                 \x20 stream_server_port = \"0\"\n\
                 [plugins.\"io.containerd.nri.v1.nri\"]\n  socket_path = {}\n",
                runtimes(rt),
                q(&dir.join("nri.sock"))
            )
        } else {
            let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
            format!(
                "version = 2\n{common}\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}\n\
                 [{cri}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n\
                 \x20 disable_apparmor = true\n  netns_mounts_under_state_dir = true\n\
                 \x20 stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
                 {}    snapshotter = \"overlayfs\"\n\
                 \x20 [{cri}.cni]\n    bin_dir = \"/usr/lib/cni\"\n    conf_dir = {cni_dir}\n\
                 \x20   max_conf_num = 1\n",
                q(&dir.join("opt")),
                runtimes(cri)
            )
        }
    }
}

/// Prints SKIP and returns `None` when the CRI tests cannot run here.
pub fn need_cri(test: &str) -> Option<()> {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP: {test}: needs root to run containerd");
        return None;
    }
    for tool in ["nsenter", "ip", "tc", "tar"] {
        if which(tool).is_none() {
            println!("SKIP: {test}: {tool} not found in PATH");
            return None;
        }
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        if !Path::new("/usr/lib/cni").join(plugin).is_file() {
            println!(
                "SKIP: {test}: CNI plugin /usr/lib/cni/{plugin} missing \
                 (apt-get install containernetworking-plugins)"
            );
            return None;
        }
    }
    if crate::support::busybox().is_none() {
        println!("SKIP: {test}: no static busybox (apt-get install busybox-static)");
        return None;
    }
    Some(())
}

/// A network namespace the test owns (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let st = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {name} failed");
        let st = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status();
        assert!(st.is_ok_and(|s| s.success()), "lo up in {name} failed");
        Netns { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `args` inside the network namespace at `netns` (nsenter --net).
pub fn in_netns(netns: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What urunc's network step left in a pod network namespace: taps named
/// `urunc…`, the ingress qdisc and filters on eth0. Empty when clean.
pub fn network_leftovers(netns: &Path) -> String {
    let mut s = String::new();
    let links = text(&in_netns(netns, &["ip", "-o", "link", "show"]).stdout);
    for l in links.lines().filter(|l| l.contains(": urunc")) {
        s += &format!("link: {l}\n");
    }
    let q = text(&in_netns(netns, &["tc", "qdisc", "show", "dev", "eth0"]).stdout);
    if q.contains("ingress") {
        s += &format!("qdisc: {q}\n");
    }
    let f = text(&in_netns(netns, &["tc", "filter", "show", "dev", "eth0", "ingress"]).stdout);
    if !f.trim().is_empty() {
        s += &format!("filter: {f}\n");
    }
    // Shared mode: the per-container nftables tables and the taps' /30s.
    if which("nft").is_some() {
        let t = text(&in_netns(netns, &["nft", "list", "tables"]).stdout);
        for l in t.lines().filter(|l| l.contains("urunc")) {
            s += &format!("nft: {l}\n");
        }
    }
    let a = text(&in_netns(netns, &["ip", "-o", "addr", "show"]).stdout);
    for l in a.lines().filter(|l| l.contains("169.254.")) {
        s += &format!("addr: {l}\n");
    }
    s
}

/// True while `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    let st = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    st.rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .is_some_and(|s| s != "Z" && s != "X")
}

/// Polls `f` every 100 ms until it holds or `limit` passes (a readiness
/// wait, not a timing assertion).
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The fixtures directory (`tests/fixtures/build`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/build")
}

/// The pause image: the fixtures' `pause` (our own source) at /pause.
pub fn pause_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("pause-rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    let pause = fixtures().join("pause");
    assert!(
        pause.is_file(),
        "{} missing (run tests/fixtures/build.sh)",
        pause.display()
    );
    fs::copy(&pause, rootfs.join("pause")).unwrap();
    crate::support::pack_rootfs(dir, &rootfs, "pause", PAUSE_IMAGE, Some(&["/pause"]))
}

/// An image with the Linux fixture guest at /unikernel/vmlinux and
/// /unikernel/initramfs.cpio.gz and *no* urunc.json: its metadata must come
/// from annotations.
pub fn bare_guest_image(dir: &Path, reference: &str) -> PathBuf {
    let rootfs = dir.join("bare-rootfs");
    fs::create_dir_all(rootfs.join("unikernel")).unwrap();
    for f in ["vmlinux", "initramfs.cpio.gz"] {
        fs::copy(fixtures().join(f), rootfs.join("unikernel").join(f)).unwrap();
    }
    crate::support::pack_rootfs(dir, &rootfs, "bare", reference, None)
}

/// The workspace's `urunc-pack` (built next to this test binary).
pub fn urunc_pack() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("urunc-pack")))
        .filter(|p| p.is_file())
}

/// The Linux fixture guest packed by `urunc-pack`, metadata in /urunc.json.
pub fn packed_guest_image(dir: &Path, reference: &str) -> PathBuf {
    packed_guest_image_with(dir, reference, "packed.tar", &[])
}

/// The same with more `urunc-pack` flags (e.g. `--port 8081`), written to
/// `dir/file`.
pub fn packed_guest_image_with(dir: &Path, reference: &str, file: &str, extra: &[&str]) -> PathBuf {
    let pack = urunc_pack().expect("urunc-pack not built (cargo build -p urunc-pack)");
    let out = dir.join(file);
    let o = Command::new(pack)
        .arg("--kernel")
        .arg(fixtures().join("vmlinux"))
        .arg("--initrd")
        .arg(fixtures().join("initramfs.cpio.gz"))
        .args(["--unikernel-type", "linux", "--hypervisor", "qemu"])
        .args(extra)
        .args(["--ref", reference, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "urunc-pack: {}", text(&o.stderr));
    out
}

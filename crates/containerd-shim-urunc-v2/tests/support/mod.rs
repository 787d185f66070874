//! Test harness: a private containerd (Debian's 1.6) whose PATH starts with
//! a directory holding this crate's shim, and a busybox image built locally
//! as an OCI image layout archive (no registry is reachable).

#![allow(dead_code)]

use std::{
    fs,
    io::Write,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::Duration,
};

use sha2::{Digest, Sha256};

pub const IMAGE: &str = "docker.io/library/urunc-shim-test:latest";
pub const RUNTIME: &str = "io.containerd.urunc.v2";

/// Print a skip line and return `None` when something the tests need is
/// missing on this host.
pub fn need(test: &str) -> Option<()> {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP: {test}: needs root to run containerd");
        return None;
    }
    if which("tar").is_none() {
        println!("SKIP: {test}: tar not found in PATH");
        return None;
    }
    if let Err(e) = engine() {
        println!("SKIP: {test}: {e}");
        return None;
    }
    let rt = runtime_under_test();
    if !rt.contains('/') && which(&rt).is_none() {
        println!("SKIP: {test}: runtime {rt} not found in PATH");
        return None;
    }
    if busybox().is_none() {
        println!("SKIP: {test}: no static busybox (apt-get install busybox-static)");
        return None;
    }
    Some(())
}

/// [`need`], then a private containerd named `name`: the start of most
/// tests (`None` after the SKIP line).
pub fn containerd_for(test: &str, name: &str) -> Option<Containerd> {
    need(test)?;
    Some(Containerd::start(name))
}

/// The OCI runtime the shim drives in these tests: `$URUNC_SHIM_TEST_RUNTIME`
/// (a name in PATH or a path), default `runc`.
/// The OCI runtime the shim drives in these tests: `$URUNC_SHIM_TEST_RUNTIME`,
/// else the workspace's own `urunc` build (next to this test binary), else
/// `runc`.
pub fn runtime_under_test() -> String {
    if let Some(rt) = std::env::var("URUNC_SHIM_TEST_RUNTIME")
        .ok()
        .filter(|s| !s.is_empty())
    {
        return rt;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("urunc")))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "runc".to_string())
}

/// The environment variable naming the containerd binary the engine tests
/// run on instead of Debian's (e.g. a 2.x build); `ctr` is taken from the
/// same directory.
pub const ENGINE_ENV: &str = "URUNC_TEST_CONTAINERD";

/// containerd and ctr under test: `$URUNC_TEST_CONTAINERD` and the ctr next
/// to it, else both from PATH (Debian's 1.6).
pub fn engine() -> Result<(PathBuf, PathBuf), String> {
    if let Some(bin) = std::env::var_os(ENGINE_ENV).filter(|v| !v.is_empty()) {
        let containerd = PathBuf::from(bin);
        let ctr = containerd.with_file_name("ctr");
        if !containerd.is_file() || !ctr.is_file() {
            return Err(format!(
                "{ENGINE_ENV}={}: needs that file and ctr beside it",
                containerd.display()
            ));
        }
        return Ok((containerd, ctr));
    }
    let containerd =
        which("containerd").ok_or("containerd not found in PATH (apt-get install containerd)")?;
    let ctr = which("ctr").ok_or("ctr not found in PATH (apt-get install containerd)")?;
    Ok((containerd, ctr))
}

/// Major version of a containerd binary (`containerd --version`: "containerd
/// github.com/containerd/containerd 1.6.20~ds1 …" or "… /v2 v2.1.5 …").
pub fn containerd_major(containerd: &Path) -> u32 {
    let out = Command::new(containerd).arg("--version").output();
    let s = out.map(|o| text(&o.stdout)).unwrap_or_default();
    s.split_whitespace()
        .nth(2)
        .map(|v| v.trim_start_matches('v'))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write an OCI image layout archive holding busybox and a few applet links.
pub fn build_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("img-rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy(busybox().unwrap(), rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "sleep", "cat", "ls", "tty"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    pack_rootfs(dir, &rootfs, "img", IMAGE, Some(&["/bin/sh"]))
}

/// Standard base64 with padding (the form urunc.json values take in
/// existing unikernel images).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Write an image for urunc: `kernel` at /unikernel/<name> and /urunc.json
/// with the given metadata (keys without the `com.urunc.unikernel.` prefix,
/// values base64-encoded as bunny/bima write them).
pub fn build_unikernel_image(
    dir: &Path,
    name: &str,
    kernel: &Path,
    meta: &[(&str, &str)],
) -> PathBuf {
    build_unikernel_image_with(dir, name, kernel, &[], meta)
}

/// As `build_unikernel_image`, with `extra` files also copied to
/// /unikernel/ (an initrd, a disk image).
pub fn build_unikernel_image_with(
    dir: &Path,
    name: &str,
    kernel: &Path,
    extra: &[&Path],
    meta: &[(&str, &str)],
) -> PathBuf {
    let rootfs = dir.join(format!("{name}-rootfs"));
    fs::create_dir_all(rootfs.join("unikernel")).unwrap();
    let file = kernel.file_name().unwrap().to_string_lossy().into_owned();
    fs::copy(kernel, rootfs.join("unikernel").join(&file)).unwrap();
    for f in extra {
        fs::copy(f, rootfs.join("unikernel").join(f.file_name().unwrap())).unwrap();
    }
    let mut m = serde_json::Map::new();
    m.insert(
        "com.urunc.unikernel.binary".into(),
        base64(format!("/unikernel/{file}").as_bytes()).into(),
    );
    for (k, v) in meta {
        m.insert(
            format!("com.urunc.unikernel.{k}"),
            base64(v.as_bytes()).into(),
        );
    }
    fs::write(
        rootfs.join("urunc.json"),
        serde_json::Value::Object(m).to_string(),
    )
    .unwrap();
    // No Cmd: urunc then takes the guest's command line from the metadata.
    let image = format!("docker.io/library/{name}:latest");
    pack_rootfs(dir, &rootfs, name, &image, None)
}

/// Pack `rootfs` as a one-layer OCI image named `image_name`; returns the
/// archive path.
pub fn pack_rootfs(
    dir: &Path,
    rootfs: &Path,
    tag: &str,
    image_name: &str,
    cmd: Option<&[&str]>,
) -> PathBuf {
    let layer_tar = dir.join(format!("{tag}-layer.tar"));
    let st = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&layer_tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the image rootfs failed");
    let layer = fs::read(&layer_tar).unwrap();

    let layout = dir.join(format!("{tag}-layout"));
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let d = sha256_hex(data);
        fs::write(blobs.join(&d), data).unwrap();
        (d, data.len())
    };
    let (ld, ls) = put(&layer);
    let mut image_config = serde_json::json!({"Env": ["PATH=/bin"]});
    if let Some(cmd) = cmd {
        image_config["Cmd"] = serde_json::json!(cmd);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{ld}")]},
        "config": image_config
    })
    .to_string();
    let (cd, cs) = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{cd}"), "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{ld}"), "size": ls}]
    })
    .to_string();
    let (md, ms) = put(manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{md}"), "size": ms,
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": image_name,
                                       "org.opencontainers.image.ref.name": "latest"}}]
    })
    .to_string();
    fs::write(layout.join("index.json"), index).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join(format!("{tag}.tar"));
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the image layout failed");
    archive
}

/// A private containerd with the shim in its PATH and the test image imported.
pub struct Containerd {
    pub dir: PathBuf,
    /// The ctr matching the containerd under test.
    pub ctr: PathBuf,
    pub sock: PathBuf,
    pub namespace: String,
    daemon: Option<Child>,
}

impl Containerd {
    /// `name` keeps namespaces (and so runtime roots) apart between tests.
    pub fn start(name: &str) -> Containerd {
        Containerd::start_with_env(name, &[])
    }

    /// As `start`, with `env` set for containerd and so for the shims and
    /// the runtime it starts (e.g. `URUNC_CONFIG`).
    pub fn start_with_env(name: &str, env: &[(&str, &Path)]) -> Containerd {
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = PathBuf::from(format!("/tmp/ushim-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        symlink(
            env!("CARGO_BIN_EXE_containerd-shim-urunc-v2"),
            dir.join("bin/containerd-shim-urunc-v2"),
        )
        .unwrap();
        let sock = dir.join("c.sock");
        let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap();
        let (containerd, ctr) = engine().unwrap();
        // containerd 2.x: config version 3, its CRI split into several
        // plugins, no `opt` plugin.
        let (version, cri, opt) = if containerd_major(&containerd) >= 2 {
            (
                3,
                "\"io.containerd.grpc.v1.cri\", \"io.containerd.cri.v1.runtime\", \
                 \"io.containerd.cri.v1.images\"",
                String::new(),
            )
        } else {
            (
                2,
                "\"io.containerd.grpc.v1.cri\"",
                format!(
                    "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}\n",
                    q(&dir.join("opt"))
                ),
            )
        };
        let config = format!(
            "version = {version}\nroot = {}\nstate = {}\n\
             disabled_plugins = [{cri}]\n\
             [grpc]\n  address = {}\n[ttrpc]\n  address = \"\"\n\
             [debug]\n  address = {}\n  level = \"debug\"\n{opt}",
            q(&dir.join("root")),
            q(&dir.join("state")),
            q(&sock),
            q(&dir.join("debug.sock")),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        // The engine's own directory too (a 2.x build may bring its shims).
        let path = format!(
            "{}:{}:{}",
            dir.join("bin").display(),
            containerd.parent().unwrap_or(Path::new("/")).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let daemon = Command::new(&containerd)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            .env("URUNC_SHIM_RUNTIME", runtime_under_test())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            ctr,
            sock,
            namespace: format!("ushim-{name}"),
            daemon: Some(daemon),
        };
        // Readiness wait (not a timing assertion): up to ~30 s.
        let mut up = false;
        for _ in 0..300 {
            if c.sock.exists() && c.ctr(&["version"]).status.success() {
                up = true;
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        assert!(up, "containerd did not come up; log:\n{}", c.log_tail());
        let archive = build_image(&c.dir);
        let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "ctr image import: {}",
            text(&out.stderr)
        );
        c
    }

    /// The containerd daemon's PID.
    pub fn pid(&self) -> i32 {
        self.daemon.as_ref().map_or(0, |d| d.id() as i32)
    }

    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("--address")
            .arg(&self.sock)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// `ctr run --rm --runtime io.containerd.urunc.v2 IMAGE ID ARGS...`
    pub fn run(&self, id: &str, extra: &[&str], args: &[&str]) -> Output {
        let mut a = vec!["run", "--rm", "--runtime", RUNTIME];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.push(id);
        a.extend_from_slice(args);
        self.ctr(&a)
    }

    pub fn run_with_stdin(&self, id: &str, args: &[&str], input: &[u8]) -> Output {
        let mut a = vec!["run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        a.extend_from_slice(args);
        let mut cmd = self.ctr_cmd(&a);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// `ctr run -d --runtime io.containerd.urunc.v2 EXTRA... IMAGE ID ARGS...`,
    /// asserting it started.
    pub fn run_detached(&self, id: &str, extra: &[&str], args: &[&str]) {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--runtime", RUNTIME, IMAGE, id]);
        a.extend_from_slice(args);
        let out = self.ctr(&a);
        assert!(
            out.status.success(),
            "run -d {id}: {}\n{}",
            text(&out.stderr),
            self.log_tail()
        );
    }

    /// `ctr run --rm --runtime io.containerd.urunc.v2 IMAGE ID ARGS...` in
    /// the background, its stdout and stderr piped.
    pub fn spawn_run(&self, id: &str, args: &[&str]) -> Child {
        let mut a = vec!["run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        a.extend_from_slice(args);
        self.spawn_ctr(&a)
    }

    /// `ctr ARGS...` started in the background, its stdout and stderr piped.
    pub fn spawn_ctr(&self, args: &[&str]) -> Child {
        self.ctr_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `ctr task kill -s SIGNAL ID`, asserting it succeeded.
    pub fn kill(&self, id: &str, signal: &str) {
        let k = self.ctr(&["task", "kill", "-s", signal, id]);
        assert!(k.status.success(), "kill {id}: {}", text(&k.stderr));
    }

    /// The PID column of `ctr task ls` for `id`; panics when not listed.
    pub fn task_pid(&self, id: &str) -> i32 {
        let ls = text(&self.ctr(&["task", "ls"]).stdout);
        ls.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f.get(1)?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no pid for {id} in task ls:\n{ls}"))
    }

    /// The STATUS column of `ctr task ls` for `id`, if listed.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["task", "ls"]);
        text(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.last().unwrap_or(&"").to_string())
        })
    }

    /// Poll `ctr task ls` until `id` shows `want` (bounded readiness wait).
    pub fn wait_status(&self, id: &str, want: &str) -> bool {
        for _ in 0..300 {
            if self.task_status(id).as_deref() == Some(want) {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// PIDs of shim processes serving `id` in this test's namespace.
    pub fn shim_pids(&self, id: &str) -> Vec<i32> {
        let mut pids = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let has = |k: &str, v: &str| args.windows(2).any(|w| w[0] == k && w[1] == v);
            if args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-urunc-v2"))
                && has("-namespace", &self.namespace)
                && has("-id", id)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Poll until no shim for `id` remains (bounded).
    pub fn shim_gone(&self, id: &str) -> bool {
        for _ in 0..100 {
            if self.shim_pids(id).is_empty() {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The runtime's state directory for `id`.
    pub fn runtime_state(&self, id: &str) -> PathBuf {
        Path::new("/run/containerd/urunc")
            .join(&self.namespace)
            .join(id)
    }

    /// Bundle directory containerd made for `id`.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
    }

    /// Mount points below this test's directory.
    pub fn mounts_below(&self) -> Vec<String> {
        let prefix = format!("{}/", self.dir.display());
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Remove whatever a failed test left behind, then stop containerd.
        let out = self.ctr(&["task", "ls", "-q"]);
        for id in text(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            let _ = self.wait_status(id, "STOPPED");
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let out = self.ctr(&["container", "ls", "-q"]);
        for id in text(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let _ = self.ctr(&["container", "delete", id]);
        }
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: plain kill(2) on the PID of a child we spawned and
            // have not reaped yet.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            let _ = d.wait();
        }
        let mut mounts = self.mounts_below();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // The runtime's per-namespace root, once empty.
        let _ = fs::remove_dir(Path::new("/run/containerd/urunc").join(&self.namespace));
        if std::env::var_os("URUNC_SHIM_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits for a background `ctr` (run or exec) killed with SIGKILL: its
/// exit status must be 128 + 9; its output.
pub fn killed_output(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "ctr stderr: {}",
        text(&out.stderr)
    );
    out
}

/// Run `cmd` to completion, or kill it after `limit`: `None` then. A
/// bound on a hang, not a timing measurement.
pub fn output_within(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

//! A private containerd for tests: its own config, root, state, socket and
//! log in a temporary directory, stopped (SIGTERM, then SIGKILL) and removed
//! on drop. Depends only on `std` and `tempfile`, so other crates' tests can
//! include it with
//! `#[path = "../../urunc-pack/tests/support/containerd.rs"] mod containerd;`.
//!
//! ```ignore
//! let Some(ctrd) = Containerd::start_or_skip("my_test", ContainerdOptions::default()) else { return };
//! let out = ctrd.ctr(&["image", "import", "img.tar"]);
//! assert!(out.status.success(), "{}", ctrd.describe(&out));
//! ```
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How to start the private containerd.
#[derive(Debug, Clone)]
pub struct ContainerdOptions {
    /// Snapshotter named in the `ctr` calls made through [`Containerd::ctr`]
    /// (`overlayfs` by default).
    pub snapshotter: String,
    /// TOML appended to the generated config (e.g. a runtime section:
    /// `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.urunc]`).
    /// The generated config is version 2 and disables the CRI plugin unless
    /// `enable_cri` is set.
    pub extra_config: String,
    /// Keep the CRI plugin enabled.
    pub enable_cri: bool,
    /// Directories put in front of containerd's `PATH` (where it looks for
    /// `containerd-shim-<name>-v2` binaries).
    pub path_prepend: Vec<PathBuf>,
    /// Extra environment for containerd.
    pub env: Vec<(String, String)>,
    /// How long to wait for the socket to answer before giving up.
    pub start_wait: Duration,
}

impl Default for ContainerdOptions {
    fn default() -> Self {
        ContainerdOptions {
            snapshotter: "overlayfs".into(),
            extra_config: String::new(),
            enable_cri: false,
            path_prepend: Vec::new(),
            env: Vec::new(),
            start_wait: Duration::from_secs(60),
        }
    }
}

/// A running private containerd.
pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// The gRPC socket (`ctr --address`).
    pub socket: PathBuf,
    /// containerd's `root` (content store, snapshots, metadata).
    pub root: PathBuf,
    /// containerd's `state`.
    pub state: PathBuf,
    /// The config file it was started with.
    pub config: PathBuf,
    /// containerd's stdout and stderr.
    pub log: PathBuf,
    /// Namespace used by [`Containerd::ctr`] (`default`).
    pub namespace: String,
    pub snapshotter: String,
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Containerd {
    /// Starts containerd, or prints `SKIP: <test>: <reason>` and returns
    /// `None` when `containerd`/`ctr` are missing or we are not root.
    /// Panics (failing the test) if containerd is present but does not start.
    pub fn start_or_skip(test: &str, opts: ContainerdOptions) -> Option<Containerd> {
        for tool in ["containerd", "ctr"] {
            if which(tool).is_none() {
                println!("SKIP: {test}: {tool} not found on PATH");
                return None;
            }
        }
        // The effective uid, read from /proc (no libc needed).
        if !is_root() {
            println!("SKIP: {test}: containerd needs root");
            return None;
        }
        match Containerd::start(opts) {
            Ok(c) => Some(c),
            Err(e) => panic!("{test}: starting containerd: {e}"),
        }
    }

    /// Starts containerd and waits until `ctr version` answers.
    pub fn start(opts: ContainerdOptions) -> Result<Containerd, String> {
        // Unix socket paths are limited to 108 bytes: keep the dir short.
        let dir = tempfile::Builder::new()
            .prefix("ctrd-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| format!("creating a temp dir: {e}"))?;
        let d = dir.path();
        let root = d.join("root");
        let state = d.join("state");
        let socket = d.join("c.sock");
        let config = d.join("config.toml");
        let log = d.join("containerd.log");
        let q = |p: &Path| toml_string(&p.display().to_string());
        let disabled = if opts.enable_cri {
            "[]"
        } else {
            r#"["io.containerd.grpc.v1.cri"]"#
        };
        let text = format!(
            "version = 2\nroot = {root}\nstate = {state}\ndisabled_plugins = {disabled}\n\
             [grpc]\n  address = {sock}\n[ttrpc]\n  address = {ttrpc}\n[debug]\n  address = {debug}\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n{extra}\n",
            root = q(&root),
            state = q(&state),
            sock = q(&socket),
            ttrpc = q(&d.join("c.sock.ttrpc")),
            debug = q(&d.join("debug.sock")),
            opt = q(&d.join("opt")),
            extra = opts.extra_config,
        );
        fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let logf =
            fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let logf2 = logf
            .try_clone()
            .map_err(|e| format!("cloning the log handle: {e}"))?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(logf2);
        if !opts.path_prepend.is_empty() {
            let mut paths = opts.path_prepend.clone();
            if let Some(p) = std::env::var_os("PATH") {
                paths.extend(std::env::split_paths(&p));
            }
            let joined = std::env::join_paths(paths).map_err(|e| format!("PATH: {e}"))?;
            cmd.env("PATH", joined);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning containerd: {e}"))?;
        let mut c = Containerd {
            dir: Some(dir),
            child: Some(child),
            socket,
            root,
            state,
            config,
            log,
            namespace: "default".into(),
            snapshotter: opts.snapshotter.clone(),
        };
        let deadline = Instant::now() + opts.start_wait;
        loop {
            if let Some(status) = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
                let log = c.log_text();
                c.child = None;
                return Err(format!("containerd exited early ({status}); log:\n{log}"));
            }
            if c.socket.exists() {
                let out = c.ctr_raw(&["version"]);
                if out.status.success() {
                    return Ok(c);
                }
            }
            if Instant::now() > deadline {
                let log = c.log_text();
                return Err(format!(
                    "socket {} did not answer within {:?}; log:\n{log}",
                    c.socket.display(),
                    opts.start_wait
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// The temporary directory holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir present until drop").path()
    }

    /// containerd's log so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn ctr_raw(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// Runs `ctr --address SOCK --namespace NS <args>`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// A readable account of a `ctr` result plus the containerd log tail,
    /// for assertion messages.
    pub fn describe(&self, out: &Output) -> String {
        let log = self.log_text();
        let tail: String = log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}\ncontainerd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail
        )
    }

    /// Stops containerd (SIGTERM, SIGKILL after 20 s), unmounts anything
    /// left under its directory and removes the directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(50)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            unmount_below(dir.path());
            let _ = dir.close();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Unmounts (lazily) every mount point under `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", &p]).status();
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

//! CRI harness: a private containerd with its CRI plugin, the way a
//! Kubernetes node runs it, driven through the CRI v1 gRPC API (the
//! `k8s-cri` crate's tonic client) as a kubelet does.
//!
//! Everything is private to one test: containerd runs inside a network
//! namespace the test creates (so CNI's bridge, the CRI streaming port and
//! the pod addresses cannot collide with other tests), with its own config,
//! root, state, socket, CNI config and IPAM store below `/tmp/ucri-<pid>-<name>`.
//! containerd is started with `nsenter --net=`: `ip netns exec` would also
//! remount /sys, which hides the cgroup v1 mounts from runc ("no cgroup
//! mount found in mountinfo").
//!
//! The runtime handler `urunc` is this crate's shim (`io.containerd.urunc.v2`)
//! driving the workspace's `urunc`; `runc` is containerd's runc shim. The
//! config mirrors the README's Kubernetes section.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    fs,
    io::{Read, Write},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient, *,
};
use tonic::transport::{Channel, Endpoint, Uri};

pub use crate::cri_env::*;
use crate::support::{runtime_under_test, text};

/// A private containerd with CRI and a connected CRI client.
pub struct Cri {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub engine: Engine,
    pub netns: Netns,
    daemon: Option<Child>,
    rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Starts containerd for test `name` on `engine` and imports the pause
    /// image.
    pub fn start(engine: &Engine, name: &str) -> Cri {
        let pid = std::process::id();
        // The same case runs on each engine at once: keep them apart.
        let name = &format!("{name}{}", engine.major);
        let dir = PathBuf::from(format!("/tmp/ucri-{pid}-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("cni")).unwrap();
        symlink(
            env!("CARGO_BIN_EXE_containerd-shim-urunc-v2"),
            dir.join("bin/containerd-shim-urunc-v2"),
        )
        .unwrap();
        fs::write(dir.join("config.toml"), engine.config(&dir)).unwrap();
        fs::write(dir.join("urunc.toml"), URUNC_CONFIG).unwrap();
        // bridge + host-local, the bridge being the pods' gateway in the
        // test's namespace; IPAM state kept below the test's directory.
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "ucri",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": POD_SUBNET}]],
                         "dataDir": dir.join("ipam").display().to_string()}
            }]
        });
        fs::write(dir.join("cni/10-ucri.conflist"), cni.to_string()).unwrap();
        let netns = Netns::new(format!("ucri{pid}{name}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let daemon = spawn_containerd(engine, &dir, &netns);
        let sock = dir.join("c.sock");
        let (runtime, images) = connect(&rt, &sock, &dir);
        let mut c = Cri {
            dir,
            sock,
            engine: engine.clone(),
            netns,
            daemon: Some(daemon),
            rt,
            runtime,
            images,
        };
        let pause = pause_image(&c.dir);
        c.import(&pause, PAUSE_IMAGE);
        c
    }

    /// Stops containerd (SIGTERM; shims and pods keep running) and starts
    /// it again on the same config; reconnects the client.
    pub fn restart_containerd(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) on the PID of our own, not yet reaped child.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            let _ = d.wait();
        }
        let _ = fs::remove_file(&self.sock);
        self.daemon = Some(spawn_containerd(&self.engine, &self.dir, &self.netns));
        let (runtime, images) = connect(&self.rt, &self.sock, &self.dir);
        self.runtime = runtime;
        self.images = images;
    }

    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `ctr -n k8s.io image import ARCHIVE`, then waits until CRI sees
    /// `reference` (CRI learns of imported images from containerd's events).
    pub fn import(&mut self, archive: &Path, reference: &str) {
        let out = Command::new(&self.engine.ctr)
            .arg("--address")
            .arg(&self.sock)
            .args(["-n", K8S_NS, "image", "import"])
            .arg(archive)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctr image import {}: {}",
            archive.display(),
            text(&out.stderr)
        );
        let seen = wait_for(Duration::from_secs(20), || {
            let req = ImageStatusRequest {
                image: Some(ImageSpec {
                    image: reference.into(),
                    ..Default::default()
                }),
                verbose: false,
            };
            self.rt
                .block_on(self.images.image_status(req))
                .is_ok_and(|r| r.into_inner().image.is_some())
        });
        assert!(seen, "CRI never listed {reference}\n{}", self.log_tail());
    }

    /// Blocks on one CRI call.
    pub fn call<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// A pod config as a kubelet writes it: metadata, hostname, a log
    /// directory, annotations.
    pub fn pod_config(&self, name: &str, annotations: &[(&str, &str)]) -> PodSandboxConfig {
        let logs = self.dir.join("pods").join(name);
        fs::create_dir_all(&logs).unwrap();
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("{name}-{}", std::process::id()),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            annotations: owned(annotations),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn run_pod(&mut self, cfg: &PodSandboxConfig, handler: &str) -> Result<String, String> {
        let req = RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: handler.into(),
        };
        let mut r = self.runtime.clone();
        self.call(r.run_pod_sandbox(req))
            .map(|r| r.into_inner().pod_sandbox_id)
            .map_err(|s| s.message().to_string())
    }

    pub fn pod_status(&self, pod: &str) -> PodSandboxStatusResponse {
        let mut r = self.runtime.clone();
        self.call(r.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: true,
        }))
        .unwrap_or_else(|e| panic!("PodSandboxStatus {pod}: {e}"))
        .into_inner()
    }

    /// The pod's IP, as the kubelet reads it from PodSandboxStatus.
    pub fn pod_ip(&self, pod: &str) -> String {
        self.pod_status(pod)
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default()
    }

    pub fn create(
        &mut self,
        pod: &str,
        pod_cfg: &PodSandboxConfig,
        cfg: ContainerConfig,
    ) -> Result<String, String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cfg),
            sandbox_config: Some(pod_cfg.clone()),
        };
        let mut r = self.runtime.clone();
        self.call(r.create_container(req))
            .map(|r| r.into_inner().container_id)
            .map_err(|s| s.message().to_string())
    }

    pub fn start_container(&mut self, id: &str) -> Result<(), String> {
        let mut r = self.runtime.clone();
        self.call(r.start_container(StartContainerRequest {
            container_id: id.into(),
        }))
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    }

    /// Create + Start; panics with containerd's log on failure.
    pub fn run_container(
        &mut self,
        pod: &str,
        pod_cfg: &PodSandboxConfig,
        cfg: ContainerConfig,
    ) -> String {
        let name = cfg.metadata.as_ref().map(|m| m.name.clone());
        let id = self
            .create(pod, pod_cfg, cfg)
            .unwrap_or_else(|e| panic!("CreateContainer {name:?}: {e}\n{}", self.log_tail()));
        self.start_container(&id)
            .unwrap_or_else(|e| panic!("StartContainer {name:?}: {e}\n{}", self.log_tail()));
        id
    }

    pub fn stop_container(&mut self, id: &str, timeout_s: i64) -> Result<(), String> {
        let mut r = self.runtime.clone();
        self.call(r.stop_container(StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_s,
        }))
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<(), String> {
        let mut r = self.runtime.clone();
        self.call(r.remove_container(RemoveContainerRequest {
            container_id: id.into(),
        }))
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    }

    pub fn stop_pod(&mut self, pod: &str) -> Result<(), String> {
        let mut r = self.runtime.clone();
        self.call(r.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.into(),
        }))
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    }

    pub fn remove_pod(&mut self, pod: &str) -> Result<(), String> {
        let mut r = self.runtime.clone();
        self.call(r.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.into(),
        }))
        .map(|_| ())
        .map_err(|s| s.message().to_string())
    }

    /// ContainerStatus (verbose) of `id`.
    pub fn status(&self, id: &str) -> ContainerStatusResponse {
        let mut r = self.runtime.clone();
        self.call(r.container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        }))
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .into_inner()
    }

    /// The container's state and exit code as the kubelet reads them.
    pub fn state(&self, id: &str) -> (ContainerState, i32) {
        let s = self.status(id).status.unwrap();
        (s.state(), s.exit_code)
    }

    /// containerd's verbose info for a container: `pid`, `runtimeSpec`, ….
    pub fn info(&self, id: &str) -> serde_json::Value {
        let resp = self.status(id);
        serde_json::from_str(resp.info.get("info").map(String::as_str).unwrap_or("{}"))
            .unwrap_or_default()
    }

    /// The container's process (for a unikernel: its monitor).
    pub fn pid(&self, id: &str) -> u32 {
        self.info(id)["pid"].as_u64().unwrap_or(0) as u32
    }

    /// The network namespace the container joined (the pod's).
    pub fn netns_of(&self, id: &str) -> PathBuf {
        let info = self.info(id);
        let ns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["type"] == "network").cloned())
            .unwrap_or_default();
        PathBuf::from(ns["path"].as_str().unwrap_or_default())
    }

    /// ListContainers of a pod: (id, state).
    pub fn list(&self, pod: &str) -> Vec<(String, ContainerState)> {
        let mut r = self.runtime.clone();
        let resp = self
            .call(r.list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: pod.into(),
                    ..Default::default()
                }),
            }))
            .unwrap()
            .into_inner();
        resp.containers
            .into_iter()
            .map(|c| {
                let st = c.state();
                (c.id, st)
            })
            .collect()
    }

    /// Waits (bounded) until `id` is in `want`.
    pub fn wait_state(&self, id: &str, want: ContainerState, limit: Duration) -> bool {
        wait_for(limit, || self.state(id).0 == want)
    }

    /// Connects from the test's namespace (where the CNI bridge is the
    /// pods' gateway) to `ip:port` until an answer containing `want`
    /// arrives or `limit` passes; returns the last answer.
    pub fn tcp_reply(&self, ip: &str, port: u16, want: &str, limit: Duration) -> String {
        self.tcp_reply_every(ip, port, want, limit, Duration::from_millis(200))
    }

    /// [`Cri::tcp_reply`], trying again `every` after a failed attempt,
    /// each connect bounded by 20 × `every` (at most 2 s): a benchmark's
    /// short `every` sees the first reply within a few ms, not after the
    /// kernel's 1 s SYN retransmission.
    pub fn tcp_reply_every(
        &self,
        ip: &str,
        port: u16,
        want: &str,
        limit: Duration,
        every: Duration,
    ) -> String {
        let connect = (every * 20).min(Duration::from_secs(2));
        let ns = self.netns.path();
        let addr: std::net::SocketAddr = format!("{ip}:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("pod address {ip:?}: {e}"));
        let want = want.to_string();
        thread::spawn(move || {
            let f = fs::File::open(&ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let end = Instant::now() + limit;
            let mut last = String::new();
            while Instant::now() < end {
                if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, connect) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(b"hello\n");
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    last = String::from_utf8_lossy(&buf).into_owned();
                    if last.contains(&want) {
                        break;
                    }
                }
                thread::sleep(every);
            }
            last
        })
        .join()
        .unwrap()
    }

    /// PIDs of this containerd's urunc shims.
    pub fn shims(&self) -> Vec<i32> {
        let sock = self.sock.display().to_string();
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
            if args
                .first()
                .is_some_and(|a| a.ends_with("containerd-shim-urunc-v2"))
                && args.windows(2).any(|w| w[0] == "-address" && w[1] == sock)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// urunc's state directory for container `id`.
    pub fn runtime_state(&self, id: &str) -> PathBuf {
        Path::new("/run/containerd/urunc").join(K8S_NS).join(id)
    }

    /// containerd's bundle for task `id`.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(K8S_NS)
            .join(id)
    }

    /// Mount points below the test's directory (rootfs snapshots, the
    /// pod network namespaces' bind mounts, shm).
    pub fn mounts_below(&self) -> Vec<String> {
        let prefix = format!("{}/", self.dir.display());
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    }

    /// All pods of this containerd.
    pub fn pods(&self) -> Vec<String> {
        let mut r = self.runtime.clone();
        self.call(r.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
            .map(|r| r.into_inner().items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Whatever a failed test left: stop and remove its pods.
        for pod in self.pods() {
            let _ = self.stop_pod(&pod);
            let _ = self.remove_pod(&pod);
        }
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) on the PID of our own, not yet reaped child.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            let _ = d.wait();
        }
        for pid in self.shims() {
            // SAFETY: kill(2) of a shim of this test's containerd.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let mut mounts = self.mounts_below();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if std::env::var_os("URUNC_SHIM_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The namespaces a kubelet asks for (pod without shareProcessNamespace):
/// network and IPC of the pod, a PID namespace per container. (The CRI
/// default, 0, would be the pod's PID namespace.)
pub fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A container's security context with the kubelet's namespaces.
pub fn kubelet_security_context() -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(kubelet_namespaces()),
        ..Default::default()
    }
}

fn owned(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn spawn_containerd(engine: &Engine, dir: &Path, netns: &Netns) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    // The engine's own directory first (containerd 2.x brings its runc
    // shim), then ours with the urunc shim.
    let engine_dir = engine.containerd.parent().unwrap_or(Path::new("/"));
    let path = format!(
        "{}:{}:{}",
        dir.join("bin").display(),
        engine_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("nsenter")
        .arg(format!("--net={}", netns.path().display()))
        .arg(&engine.containerd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path)
        .env("URUNC_SHIM_RUNTIME", runtime_under_test())
        .env("URUNC_CONFIG", dir.join("urunc.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Waits for containerd's socket and connects the CRI clients.
fn connect(
    rt: &tokio::runtime::Runtime,
    sock: &Path,
    dir: &Path,
) -> (RuntimeServiceClient<Channel>, ImageServiceClient<Channel>) {
    let up = wait_for(Duration::from_secs(30), || sock.exists());
    let log = || fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    assert!(up, "containerd did not come up:\n{}", log());
    let path = sock.to_path_buf();
    // The URI is not used: every connection goes to the unix socket.
    let channel = rt
        .block_on(
            Endpoint::from_static("http://[::]:50051").connect_with_connector(tower::service_fn(
                move |_: Uri| {
                    let p = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(p).await?,
                        ))
                    }
                },
            )),
        )
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", sock.display()));
    let mut runtime = RuntimeServiceClient::new(channel.clone());
    // Ready when the CRI plugin answers (it starts after the socket).
    let ready = wait_for(Duration::from_secs(30), || {
        rt.block_on(runtime.version(VersionRequest::default()))
            .is_ok()
    });
    assert!(ready, "CRI did not answer Version:\n{}", log());
    (runtime, ImageServiceClient::new(channel))
}

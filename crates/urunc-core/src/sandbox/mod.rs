//! The waiting process: forked by `create`, it enters the container's
//! namespaces and blocks on a socket until `start`; then it applies the
//! [`LaunchPlan`](crate::plan::LaunchPlan) (network, sandbox root, user)
//! and `execve`s the monitor, so that the container's PID is the
//! monitor's. Failures before the exec are written back to `start`; a
//! successful exec closes the socket (close-on-exec), which `start` reads
//! as success. All fork/exec code lives here and runs single-threaded.

pub mod console;
mod fork;
pub mod fsdaemon;
pub mod namespaces;
pub mod root;
pub mod userns;

use crate::config::Config;
use crate::error::{Context, Error, Result};
use crate::plan::{self, NetInput, Unikernel, View};
use crate::state::StateDir;
use crate::timestamps::{ts, Recorder};
use crate::{hooks, network};
use nix::unistd::ForkResult;
use oci_spec::runtime::Spec;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// What the waiting process needs, all in memory from `create`.
pub struct Launch<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub unikernel: &'a Unikernel,
    pub config: &'a Config,
    pub state_dir: &'a StateDir,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    /// State JSON handed to createContainer/startContainer hooks.
    pub state_json: String,
    /// The network mode settled at create.
    pub network: &'a crate::network::mode::Choice,
    /// Rootless: the caller is already in the user namespace it made
    /// (see [`userns`]); the spec's `user` namespace entry is that one.
    pub rootless: bool,
    /// The container's cgroup v2 directory, made before the fork so that
    /// the waiting process is born in it (see [`fork`]).
    pub cgroup: Option<std::os::fd::BorrowedFd<'a>>,
    /// cgroup v1: `create` makes the hierarchies' directories after the
    /// fork, and the waiting process joins them itself ([`Spawned::join`];
    /// `cgroups::join_self` says why).
    pub cgroups_v1: bool,
}

/// The parent's end after [`spawn`].
pub struct Spawned {
    pub pid: i32,
    /// Born in [`Launch::cgroup`]: nothing left to move.
    pub in_cgroup: bool,
    channel: BufReader<UnixStream>,
    ready: bool,
    /// Whether the waiting process has work to do once `create` has run
    /// the runtime hooks (see [`container_step`]).
    container_step: bool,
}

fn send_line(s: &mut UnixStream, line: &str) {
    let _ = s.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes());
}

fn read_line(r: &mut BufReader<UnixStream>) -> Option<String> {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(n) if n > 0 => Some(l.trim_end_matches('\n').to_string()),
        _ => None,
    }
}

fn nss(l: &Launch) -> Vec<oci_spec::runtime::LinuxNamespace> {
    let mut v = l
        .spec
        .linux()
        .as_ref()
        .and_then(|x| x.namespaces().clone())
        .unwrap_or_default();
    if l.rootless {
        v.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::User);
    }
    v
}

/// The createContainer hooks the spec asks for.
fn container_hooks(l: &Launch) -> Vec<oci_spec::runtime::Hook> {
    l.spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
        .unwrap_or_default()
}

/// Whether the waiting process must wait, after entering its namespaces,
/// for `create` to finish the runtime hooks and cgroup placement: only to
/// join or create a cgroup namespace (rooted at its cgroup) or to run
/// createContainer hooks. Both ends decide this from the same spec; without
/// either, that step (one more round trip between them, two context
/// switches and six syscalls) is skipped and the waiting process goes
/// straight to waiting for `start`.
fn container_step(l: &Launch, nss: &[oci_spec::runtime::LinuxNamespace]) -> bool {
    nss.iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
        || !container_hooks(l).is_empty()
}

/// Forks the waiting process into the spec's namespaces. Returns its host
/// PID once it exists; it is not our child (it is reparented to the
/// caller's subreaper, e.g. the shim, once `create` exits).
pub fn spawn(l: &Launch) -> Result<Spawned> {
    let nss = nss(l);
    namespaces::check(&nss)?;
    let slave = match (
        &l.console_socket,
        l.spec.process().as_ref().and_then(|p| p.terminal()),
    ) {
        (Some(sock), Some(true)) => Some(console::setup(sock)?),
        (None, Some(true)) => {
            return Err(Error::msg(
                "process.terminal is true but no --console-socket was given",
            ))
        }
        _ => None,
    };
    let listener = console::bind(&l.state_dir.socket())?;
    let (parent, child) =
        UnixStream::pair().ctx(|| "creating the create/start channel".to_string())?;
    // One fork: the child is born in the container's PID namespace, enters
    // the others itself while the parent carries on, and says when it is
    // in them. It is not waited for: once `create` exits it belongs to the
    // caller's subreaper.
    let step = container_step(l, &nss);
    let pid_ns = namespaces::pid_for_children(&nss)?;
    // SAFETY: urunc is single-threaded here, so the child may run arbitrary
    // code after fork.
    let forked = unsafe { fork::fork_into(l.cgroup) }.ctx(|| "fork".to_string());
    match forked {
        Ok((ForkResult::Parent { child: pid }, in_cgroup)) => {
            drop(pid_ns);
            Ok(Spawned {
                pid: pid.as_raw(),
                in_cgroup,
                channel: BufReader::new(parent),
                ready: false,
                container_step: step,
            })
        }
        Err(e) => {
            drop(pid_ns);
            Err(e)
        }
        Ok((ForkResult::Child, _)) => {
            // The guard is the parent's to restore: here its setns fails
            // (EINVAL, the child is in the new namespace already) and its
            // close-on-exec descriptor goes at the monitor's exec anyway.
            std::mem::forget(pid_ns);
            drop(parent);
            let mut ch = child;
            let code = match namespaces::enter(&nss).and_then(|entered| {
                if entered.new_mount {
                    root::make_private()?;
                }
                waiting(l, &entered, step, &mut ch, slave, listener)
            }) {
                Ok(never) => match never {},
                Err(e) => {
                    send_line(&mut ch, &format!("error {e}"));
                    crate::log::error(&e.to_string());
                    1
                }
            };
            std::process::exit(code)
        }
    }
}

enum Never {}

/// The waiting process itself.
fn waiting(
    l: &Launch,
    entered: &namespaces::Entered,
    container_step: bool,
    ch: &mut UnixStream,
    slave: Option<OwnedFd>,
    listener: UnixListener,
) -> Result<Never> {
    nix::unistd::setsid().ctx(|| "setsid".to_string())?;
    if let Some(s) = slave {
        for fd in 0..3 {
            nix::unistd::dup2(s.as_raw_fd(), fd).ctx(|| "console: dup2".to_string())?;
        }
        // SAFETY: TIOCSCTTY on our own pty slave (now fd 0).
        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    if entered.new_uts {
        if let Some(h) = l.spec.hostname() {
            nix::unistd::sethostname(h).ctx(|| format!("setting hostname {h:?}"))?;
        }
    }
    if l.cgroups_v1 {
        join_cgroups(ch)?;
    }
    // Everything that can fail before `start` has been done (or is the
    // container step below, which reports on its own).
    send_line(ch, "ready");
    if container_step {
        run_container_step(l, ch)?;
    }
    // Block until `start`.
    let (mut conn, _) = listener.accept().ctx(|| "waiting for start".to_string())?;
    match start_monitor(l, entered, &mut conn) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = conn.write_all(e.to_string().as_bytes());
            Err(e)
        }
    }
}

/// Joins the cgroup v1 directories `create` sends ("join <JSON list>").
fn join_cgroups(ch: &mut UnixStream) -> Result<()> {
    let mut r = BufReader::new(ch.try_clone().ctx(|| "channel".to_string())?);
    let line = read_line(&mut r)
        .ok_or_else(|| Error::msg("create went away before it placed the cgroups"))?;
    let joins: Vec<crate::cgroups::Join> = line
        .strip_prefix("join ")
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| Error::msg(format!("create sent {line:?}, not the cgroups to join")))?;
    crate::cgroups::join_self(&joins)
}

/// The cgroup namespace and createContainer hooks, once the parent says the
/// runtime hooks ran (and so we are in our cgroup).
fn run_container_step(l: &Launch, ch: &mut UnixStream) -> Result<()> {
    let mut r = BufReader::new(ch.try_clone().ctx(|| "channel".to_string())?);
    match read_line(&mut r).as_deref() {
        Some("hooks") => {}
        _ => {
            return Err(Error::msg(
                "create went away before the container was created",
            ))
        }
    }
    let done = namespaces::enter_cgroup(&nss(l))
        .and_then(|()| hooks::run_all("createContainer", &container_hooks(l), &l.state_json));
    match done {
        Ok(()) => {
            send_line(ch, "ok");
            Ok(())
        }
        Err(e) => {
            send_line(ch, &format!("error {e}"));
            Err(e)
        }
    }
}

/// What the waiting process writes to `start` just before `execve`. The
/// socket is close-on-exec, so `start` then reads EOF; without the word the
/// EOF means the waiting process died before it got there.
const EXEC_MARK: &str = "exec\n";

/// Applies the plan and execs the monitor. Returns only on failure.
fn start_monitor(
    l: &Launch,
    entered: &namespaces::Entered,
    conn: &mut UnixStream,
) -> Result<Never> {
    let rec = Recorder::new(&l.config.timestamps, l.id);
    rec.mark(ts::START_SIGNALLED);
    let u = l.unikernel;
    let tap = network::tap_name(l.id);
    let own_netns = l
        .spec
        .linux()
        .as_ref()
        .and_then(|x| x.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        });
    network::check_own_netns(own_netns)?;
    let facts = network::discover()?;
    let (uid, gid) = l
        .spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or((0, 0));
    let shared = l.network.mode == network::mode::Mode::Shared;
    let guest_facts = match &facts {
        Some(f) if shared => {
            let range =
                network::shared::parse_range(&l.config.network.shared_range).ok_or_else(|| {
                    Error::msg(format!(
                        "network.shared_range {:?} is not an IPv4 network",
                        l.config.network.shared_range
                    ))
                })?;
            Some(network::shared::setup(
                l.id,
                f,
                &tap,
                uid,
                gid,
                &l.network.ports,
                range,
            )?)
        }
        Some(f) => {
            network::setup(f, &tap, uid, gid)?;
            Some(f.clone())
        }
        None => None,
    };
    crate::testpoint::pause_at("start:network");
    rec.mark(ts::START_NETWORK);
    let result = (|| {
        // (the nameserver is looked up in the rootfs only for a guest with a network)
        let net = guest_facts.as_ref().map(|f| NetInput {
            facts: f,
            tap: &tap,
            dns: network::container_nameserver(l.spec, &u.rootfs),
        });
        // The files resolved at `create` reach the monitor as detached
        // mounts attached in the sandbox where `create` could make them,
        // else as the descriptors themselves (see `plan::View`).
        let files = u.boot_files();
        let attached = entered.new_mount && files.iter().all(|f| f.file.tree.is_some());
        let view = if entered.new_mount {
            View::Sandbox {
                rootfs: root::ROOTFS.into(),
                work: root::WORK.into(),
                shares: Some(root::SHARES.into()),
                boot: attached.then(|| root::BOOT.into()),
            }
        } else {
            // No mount namespace: host paths as they are, and files the
            // monitor reads (Firecracker's config) in the state directory,
            // which `delete` removes.
            View::Sandbox {
                rootfs: u.rootfs.clone(),
                work: l.state_dir.path.join(crate::state::SANDBOX_DIR),
                shares: None,
                boot: None,
            }
        };
        let launch = plan::plan(u, &view, net.as_ref())?;
        rec.mark(ts::START_PLANNED);
        crate::log::debug(&format!(
            "container {}: monitor argv {}",
            l.id,
            serde_json::to_string(&launch.command.argv).unwrap_or_default()
        ));
        let hs = l
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().clone())
            .unwrap_or_default();
        hooks::run_all("startContainer", &hs, &l.state_json)?;
        if entered.new_mount {
            let readonly = l
                .spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false);
            let attach: Vec<(PathBuf, &OwnedFd, bool)> = files
                .iter()
                .filter(|_| attached)
                .filter_map(|f| {
                    let tree = f.file.tree.as_ref()?;
                    Some((Path::new(root::BOOT).join(f.name), tree, f.readonly))
                })
                .collect();
            root::enter(&root::RootRequest {
                mountpoint: &l.state_dir.path.join(crate::state::SANDBOX_DIR),
                rootfs: &u.rootfs,
                rootfs_readonly: readonly,
                monitor_binary: &u.monitor_binary,
                devices: &launch.command.devices,
                owner: (uid, gid),
                files: &launch.command.files,
                shares: &u.shares,
                helpers: u.virtiofsd.as_slice(),
                attach: &attach,
            })?;
        } else {
            for (p, data) in &launch.command.files {
                std::fs::write(p, data).ctx(|| format!("writing {}", p.display()))?;
            }
        }
        for d in &launch.fs_daemons {
            fsdaemon::spawn(d, (uid, gid))?;
        }
        rec.mark(ts::START_SANDBOX);
        crate::testpoint::pause_at("start:sandbox");
        // Compiled before dropping privileges, installed after: the filter
        // then covers the monitor from its first instruction.
        let filter = if u.seccomp {
            u.monitor
                .seccomp_filter()
                .map_err(|e| Error::msg(format!("monitor {}: {e}", u.monitor.name())))?
        } else {
            None
        };
        become_user(l.spec, l.rootless)?;
        rec.mark(ts::START_EXEC);
        // Nothing of urunc's (or its caller's) leaks into the monitor: every
        // descriptor above stdio and the --preserve-fds ones is closed at exec.
        // SAFETY: close_range with CLOEXEC only flags descriptors.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32 + l.preserve_fds,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        // ...but the resolved files the monitor is given as
        // /proc/self/fd/<n> (nothing was attached for it).
        if !attached {
            for f in &files {
                nix::fcntl::fcntl(
                    f.file.file.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )
                .ctx(|| format!("handing {} to the monitor", f.file.path.display()))?;
            }
        }
        let _ = conn.write_all(EXEC_MARK.as_bytes());
        if let Some(f) = &filter {
            seccompiler::apply_filter(f).map_err(|e| {
                Error::msg(format!(
                    "monitor {}: installing its seccomp filter: {e}",
                    u.monitor.name()
                ))
            })?;
        }
        exec(&launch.command.argv)
    })();
    if facts.is_some() {
        if shared {
            let _ = network::shared::teardown(l.id, &tap);
        } else {
            let _ = network::teardown(&tap, facts.as_ref().map(|f| f.ifname.as_str()));
        }
    }
    result
}

/// Switches to `process.user` and applies the process attributes.
fn become_user(spec: &Spec, rootless: bool) -> Result<()> {
    let Some(p) = spec.process() else {
        return Ok(());
    };
    if let Some(rl) = p.rlimits() {
        for r in rl {
            let res = rlimit_resource(&format!("{:?}", r.typ()));
            if let Some(res) = res {
                let lim = libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                };
                // SAFETY: setrlimit with a valid, initialised struct.
                if unsafe { libc::setrlimit(res, &lim) } != 0 {
                    return Err(Error::sys(
                        format!("process.rlimits: setting {:?}", r.typ()),
                        std::io::Error::last_os_error(),
                    ));
                }
            }
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        // Lowering it needs CAP_SYS_RESOURCE; keep going without it.
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    if p.no_new_privileges() == Some(true) {
        // SAFETY: prctl with constant, valid arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    }
    let user = p.user();
    let (uid, gid) = (user.uid(), user.gid());
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(nix::unistd::Gid::from_raw)
        .collect();
    // Rootless: setgroups is denied in our user namespace (and the process
    // has no supplementary groups there to drop).
    if rootless && !groups.is_empty() {
        return Err(Error::msg(format!(
            "process.user.additionalGids {groups:?}: not possible for a rootless container"
        )));
    }
    if !rootless {
        nix::unistd::setgroups(&groups).ctx(|| format!("process.user: setgroups {groups:?}"))?;
    }
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))
        .ctx(|| format!("process.user: setgid {gid}"))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
        .ctx(|| format!("process.user: setuid {uid}"))?;
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(
        match name.to_ascii_uppercase().trim_start_matches("RLIMIT") {
            "AS" => libc::RLIMIT_AS,
            "CORE" => libc::RLIMIT_CORE,
            "CPU" => libc::RLIMIT_CPU,
            "DATA" => libc::RLIMIT_DATA,
            "FSIZE" => libc::RLIMIT_FSIZE,
            "LOCKS" => libc::RLIMIT_LOCKS,
            "MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "NICE" => libc::RLIMIT_NICE,
            "NOFILE" => libc::RLIMIT_NOFILE,
            "NPROC" => libc::RLIMIT_NPROC,
            "RSS" => libc::RLIMIT_RSS,
            "RTPRIO" => libc::RLIMIT_RTPRIO,
            "RTTIME" => libc::RLIMIT_RTTIME,
            "SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "STACK" => libc::RLIMIT_STACK,
            _ => return None,
        },
    )
}

fn exec(argv: &[String]) -> Result<Never> {
    let c: Vec<CString> = argv
        .iter()
        .map(|a| {
            CString::new(a.as_str())
                .map_err(|_| Error::msg(format!("monitor argument {a:?} contains a NUL byte")))
        })
        .collect::<Result<_>>()?;
    let env = [
        CString::new("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .unwrap_or_default(),
        CString::new("HOME=/").unwrap_or_default(),
    ];
    let Some(prog) = c.first() else {
        return Err(Error::msg("empty monitor command line"));
    };
    reset_signals();
    let e = nix::unistd::execve(prog, &c, &env).unwrap_err();
    Err(Error::sys(format!("executing monitor {}", argv[0]), e))
}

/// The monitor starts with the signal state a process started by a shell
/// gets. `execve` keeps ignored dispositions and the blocked mask
/// (signal(7), "Signal mask and pending signals" / "Execution of signal
/// handlers"): Rust's runtime sets SIGPIPE to SIG_IGN in every Rust
/// program (std `sys::pal::unix::init`), so without this QEMU or a Solo5
/// tender would inherit an ignored SIGPIPE from urunc, and a mask left by
/// the engine that started urunc would keep signals from the monitor.
fn reset_signals() {
    use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    // SAFETY: SIG_DFL installs no handler; nothing else runs in this
    // single-threaded process between here and execve.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

impl Spawned {
    /// Waits until the child is in all its namespaces (before anything that
    /// acts on them, such as the createRuntime hooks' network setup).
    pub fn ready(&mut self) -> Result<()> {
        if self.ready {
            return Ok(());
        }
        match read_line(&mut self.channel).as_deref() {
            Some("ready") => {
                self.ready = true;
                Ok(())
            }
            Some(l) if l.starts_with("error ") => Err(Error::msg(l["error ".len()..].to_string())),
            _ => Err(Error::msg(
                "the waiting process died while entering namespaces",
            )),
        }
    }

    /// Sends the waiting process the cgroup v1 directories to join
    /// ([`Launch::cgroups_v1`]); its `ready` says it has.
    pub fn join(&mut self, joins: &[crate::cgroups::Join]) -> Result<()> {
        let list = serde_json::to_string(joins)
            .map_err(|e| Error::msg(format!("cgroup list for the waiting process: {e}")))?;
        send_line(self.channel.get_mut(), &format!("join {list}"));
        Ok(())
    }

    /// Asks the waiting process to run the createContainer hooks (and
    /// enter its cgroup namespace), when it has any of that to do.
    pub fn run_container_hooks(&mut self) -> Result<()> {
        self.ready()?;
        if !self.container_step {
            return Ok(());
        }
        send_line(self.channel.get_mut(), "hooks");
        match read_line(&mut self.channel).as_deref() {
            Some("ok") => Ok(()),
            Some(l) if l.starts_with("error ") => Err(Error::msg(l["error ".len()..].to_string())),
            _ => Err(Error::msg(
                "the waiting process died while running createContainer hooks",
            )),
        }
    }
}

/// `start`: wakes the waiting process; returns once the monitor is exec'd,
/// or the reason it could not be.
pub fn signal_start(state_dir: &StateDir) -> Result<()> {
    let mut s = console::connect(&state_dir.socket())?;
    let mut msg = String::new();
    let _ = s.read_to_string(&mut msg);
    match msg.strip_prefix(EXEC_MARK) {
        Some("") => Ok(()),
        // execve itself (or the seccomp filter before it) failed.
        Some(err) => Err(Error::msg(err.to_string())),
        None if msg.is_empty() => Err(Error::msg(
            "the waiting process died before the monitor was started",
        )),
        None => Err(Error::msg(msg)),
    }
}

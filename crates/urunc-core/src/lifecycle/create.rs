//! `create`: validate, make the state directory, fork the waiting process
//! into the container's namespaces and cgroup, run the create hooks.

use super::Runtime;
use crate::bundle::Bundle;
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::metadata::Metadata;
use crate::plan;
use crate::sandbox::{self, Launch};
use crate::state::{proc_stat, ProcRef, State, StateDir, SANDBOX_DIR};
use crate::testpoint;
use crate::timestamps::{ts, Recorder};
use oci_spec::runtime::Spec;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds`: descriptors 3..3+N are passed on to the monitor.
    pub preserve_fds: u32,
}

pub enum Outcome {
    /// Created: the state as written (the waiting process is `pid`).
    Created(Box<State>),
    /// Not a unikernel: the caller hands the command to the delegate.
    NotUnikernel,
}

pub fn create(rt: &Runtime, opts: &CreateOpts) -> Result<Outcome> {
    let rec = Recorder::new(&rt.config.timestamps, &opts.id);
    rec.mark(ts::CREATE_START);
    // Classification reads only annotations and root.path: everything
    // else in config.json is the delegate's to judge (crate::bundle).
    let b = Bundle::read(&opts.bundle)?;
    let Some((md, _src)) = Metadata::discover(Some(&b.annotations), b.rootfs.as_deref())? else {
        refuse_beside_tc(rt, &opts.id, &b)?;
        return Ok(Outcome::NotUnikernel);
    };
    // A config file that could not be read or parsed stops unikernels only.
    if let Some(e) = &rt.config_error {
        return Err(e.clone().into());
    }
    // Unprivileged without --rootless=true/auto: say so instead of EPERM
    // from the first unshare.
    if !nix::unistd::geteuid().is_root() && !rt.rootless {
        return Err(Error::msg(format!(
            "container {}: unikernel containers need root, or rootless operation (--rootless)",
            opts.id
        )));
    }
    crate::state::validate_id(&opts.id)?;
    let rootfs = b.require_rootfs()?.to_path_buf();
    let spec = b.spec()?;
    let userns = if rt.rootless {
        Some(sandbox::userns::mapping(&spec)?)
    } else {
        None
    };
    let bundle = b.dir.clone();
    let mut unikernel = plan::prepare(&spec, &rootfs, &md, &rt.config)?;
    // Plan once: errors in the user's input surface now.
    plan::validate(&unikernel)?;
    rec.mark(ts::CREATE_VALIDATED);

    let dir = StateDir::new(&rt.root, &opts.id)?;
    let mut st = initial_state(rt, opts, &bundle, &spec, &rootfs, &unikernel)?;
    // From here on, whatever kills this process, `delete` finds the record.
    dir.create(&st)?;
    testpoint::pause_at("create:state");
    // Rootless: from here on, create runs in its own user namespace, so
    // that the waiting process is born in namespaces that it owns.
    if let Some((uid, gid)) = userns {
        if let Err(e) = sandbox::userns::enter(uid, gid) {
            let _ = dir.remove();
            return Err(e);
        }
    }
    let result = unikernel.hand_over_block(&dir.path).and_then(|()| {
        detach_files(&mut unikernel, &spec, rt.rootless);
        create_in(rt, opts, &dir, &mut st, &spec, &unikernel, &rec)
    });
    if result.is_err() {
        if let Err(e) = crate::storage::restore(&dir.path) {
            crate::log::warn(&e.to_string());
        }
        let _ = dir.remove();
    }
    result.map(|()| Outcome::Created(Box::new(st)))
}

/// Makes detached mounts of the files resolved at `prepare`
/// ([`sandbox::root::detach`]) for the sandbox to attach at fixed paths,
/// where the waiting process gets a mount namespace of its own and urunc
/// may make mounts (not rootless: `open_tree` needs `CAP_SYS_ADMIN` over
/// the host's mount namespace). Where any cannot be made (a kernel before
/// 5.2, a seccomp filter around urunc), none is used: the monitor is given
/// the descriptors themselves, the same files.
fn detach_files(u: &mut plan::Unikernel, spec: &Spec, rootless: bool) {
    use oci_spec::runtime::LinuxNamespaceType;
    let new_mount = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Mount && n.path().is_none())
        });
    if rootless || !new_mount {
        return;
    }
    let files = std::iter::once(&mut u.kernel)
        .chain(u.initrd.as_mut())
        .chain(u.block.as_mut());
    let mut made = vec![];
    for f in files {
        match sandbox::root::detach(&f.file) {
            Ok(t) => {
                f.tree = Some(t);
                made.push(f);
            }
            Err(e) => {
                crate::log::debug(&format!(
                    "open_tree {}: {e}; the monitor gets the open files instead",
                    f.path.display()
                ));
                for m in made {
                    m.tree = None;
                }
                return;
            }
        }
    }
}

/// The cgroup path of the spec, relative to the hierarchy's root.
/// Rootless: none, the caller cannot write cgroups; the container stays in
/// the caller's.
fn cgroup_rel(rt: &Runtime, spec: &Spec) -> Option<PathBuf> {
    if rt.rootless {
        return None;
    }
    let cg = spec.linux().as_ref()?.cgroups_path().as_ref()?;
    Some(cgroups::relative_path(
        &cg.to_string_lossy(),
        rt.systemd_cgroup,
    ))
}

/// The cgroup limits of the spec's resources. The memory limit is the
/// guest's memory plus the monitor's overhead reserve (cgroups).
fn cgroup_limits(spec: &Spec, u: &plan::Unikernel) -> cgroups::Limits {
    let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let cpu = res.and_then(|r| r.cpu().as_ref());
    cgroups::Limits {
        memory_bytes: res
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|_| (u.memory_mib + u.overhead_mib) << 20),
        cpu_quota: cpu.and_then(|c| c.quota()),
        cpu_period: cpu.and_then(|c| c.period()),
        cpu_shares: cpu.and_then(|c| c.shares()),
        pids: res.and_then(|r| r.pids().as_ref()).map(|p| p.limit()),
    }
}

/// The state as it is written before anything exists: no process yet, the
/// cgroups that placement will create, and this `create` as the one at work.
fn initial_state(
    rt: &Runtime,
    opts: &CreateOpts,
    bundle: &Path,
    spec: &Spec,
    rootfs: &Path,
    u: &plan::Unikernel,
) -> Result<State> {
    let netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|n| {
            n.iter()
                .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        })
        .and_then(|n| n.path().clone());
    let hooks = spec.hooks().clone().unwrap_or_default();
    let network = network_choice(rt, opts, spec, rootfs, netns.as_deref())?;
    let planned = cgroup_rel(rt, spec)
        .map(|rel| cgroups::planned(&rel))
        .unwrap_or_default();
    Ok(State {
        id: opts.id.clone(),
        bundle: bundle.to_path_buf(),
        rootfs: rootfs.to_path_buf(),
        pid: 0,
        pid_start: 0,
        created: crate::log::rfc3339_now(),
        started: false,
        annotations: spec.annotations().clone().unwrap_or_default(),
        monitor: u.monitor.name().into(),
        guest: u.guest.name().into(),
        cgroups: planned.dirs,
        cgroup_parents: planned.created_parents,
        netns,
        tap: crate::network::tap_name(&opts.id),
        network: network.clone(),
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
        creating: ProcRef::current(),
    })
}

fn create_in(
    rt: &Runtime,
    opts: &CreateOpts,
    dir: &StateDir,
    st: &mut State,
    spec: &Spec,
    u: &plan::Unikernel,
    rec: &Recorder,
) -> Result<()> {
    // No lock here: the exclusive rename already makes this create the
    // only one, and a lock fd would be inherited by the waiting process.
    std::fs::create_dir(dir.path.join(SANDBOX_DIR))
        .ctx(|| "creating the sandbox mountpoint".to_string())?;
    let hooks = spec.hooks().clone().unwrap_or_default();
    let creating = st.oci_json_as(crate::state::Status::Creating);
    let network = st.network.clone();
    // The cgroup before the fork, so that on cgroup v2 the waiting process
    // is born in it (sandbox/fork.rs says why that is faster).
    let pending = cgroup_rel(rt, spec)
        .map(|rel| cgroups::prepare(&rel, &cgroup_limits(spec, u)))
        .transpose()?;
    let cgroups_v1 = matches!(pending, Some(cgroups::Pending::Later { .. }));
    let launch = Launch {
        id: &opts.id,
        spec,
        unikernel: u,
        config: &rt.config,
        state_dir: dir,
        console_socket: opts.console_socket.clone(),
        preserve_fds: opts.preserve_fds,
        state_json: creating.to_string(),
        network: &network,
        rootless: rt.rootless,
        cgroup: pending.as_ref().and_then(cgroups::Pending::dir),
        cgroups_v1,
    };
    let mut child = match sandbox::spawn(&launch) {
        Ok(c) => c,
        Err(e) => {
            if let Some(p) = pending {
                p.discard();
            }
            return Err(e);
        }
    };
    rec.mark(ts::CREATE_FORKED);
    let child_pid = child.pid;
    let kill_child = |e: Error| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        e
    };
    st.pid = child_pid;
    st.pid_start = proc_stat(child_pid).map(|s| s.0).unwrap_or(0);
    // Record the waiting process at once: without a container step it no
    // longer waits on this process, so if `create` dies from here on only
    // the state lets `delete` find and kill it.
    if let Err(e) = dir.save(st) {
        let e = kill_child(e.into());
        wait_gone(child_pid, st.pid_start);
        return Err(e);
    }
    testpoint::pause_at("create:forked");
    let placed = (|| -> Result<()> {
        // Saved again only when placement changed what was recorded (the
        // cgroups it actually made): otherwise the file says the same.
        let mut to_join = vec![];
        if let Some(pending) = pending {
            let cg = cgroups::place(pending, child_pid, child.in_cgroup)?;
            to_join = cg.to_join;
            cgroups::share_parents(&rt.root, &cg.created_parents);
            st.cgroups = cg.dirs;
            st.cgroup_parents = cg.created_parents;
            dir.save(st)?;
        }
        testpoint::pause_at("create:placed");
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, child_pid)?;
        }
        if cgroups_v1 {
            child.join(&to_join)?;
        }
        let state_json = creating.to_string();
        // The child must be in its namespaces before hooks act on them.
        child.ready()?;
        // prestart (deprecated) and createRuntime run in the runtime's namespaces.
        hooks::run_all(
            "prestart",
            hooks.prestart().as_deref().unwrap_or(&[]),
            &state_json,
        )?;
        hooks::run_all(
            "createRuntime",
            hooks.create_runtime().as_deref().unwrap_or(&[]),
            &state_json,
        )?;
        child.run_container_hooks()?;
        testpoint::pause_at("create:hooks");
        // Done: the container is created, not creating.
        st.creating = None;
        Ok(dir.save(st)?)
    })();
    if let Err(e) = placed {
        let e = kill_child(e);
        wait_gone(child_pid, st.pid_start);
        cgroups::remove(&st.cgroups);
        cgroups::remove_parents(&st.cgroup_parents);
        cgroups::remove_shared_parents(&rt.root);
        return Err(e);
    }
    rec.mark(ts::CREATE_DONE);
    Ok(())
}

/// The container's network mode and ports (SPEC §7): from its annotations
/// and the config, settled against the other live unikernels that joined
/// the same network namespace (a pod's).
fn network_choice(
    rt: &Runtime,
    opts: &CreateOpts,
    spec: &Spec,
    rootfs: &Path,
    netns: Option<&Path>,
) -> Result<crate::network::mode::Choice> {
    use crate::network::mode;
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    if !annotations.contains_key(mode::KEY_PORTS) {
        if let Some(p) = image_ports(rootfs)? {
            annotations.insert(mode::KEY_PORTS.into(), p);
        }
    }
    let me = mode::choose(&annotations, &env, rt.config.network.mode).map_err(Error::msg)?;
    let Some(ns) = netns else {
        return Ok(me);
    };
    let others = neighbours(rt, &opts.id, ns);
    let me = mode::settle(me, &others).map_err(|e| Error::msg(format!("network: {e}")))?;
    if me.mode == mode::Mode::Shared && me.ports.is_empty() {
        crate::log::warn(&format!(
            "network: shared mode with no ports: nothing is forwarded to {}; set {}",
            opts.id,
            mode::KEY_PORTS
        ));
    }
    Ok(me)
}

/// The other live urunc containers (unikernels: only they have state
/// under `--root`) that joined network namespace `ns`: the same path, or
/// the same file (dev/ino) under another name. Reads state files only.
fn neighbours(rt: &Runtime, id: &str, ns: &Path) -> Vec<crate::network::mode::Neighbour> {
    use std::os::unix::fs::MetadataExt;
    let id_of = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mine = id_of(ns);
    crate::state::list(&rt.root)
        .into_iter()
        .filter(|s| s.id != id && s.status() != crate::state::Status::Stopped)
        .filter(|s| {
            s.netns
                .as_deref()
                .is_some_and(|p| p == ns || (mine.is_some() && id_of(p) == mine))
        })
        .map(|s| crate::network::mode::Neighbour {
            id: s.id,
            choice: s.network,
        })
        .collect()
}

/// A container that is not a unikernel (delegated to runc) joining a pod
/// whose unikernel runs in tc mode would silently lose eth0's traffic to
/// the guest: refuse it, naming the unikernel and the fix (SPEC §7). Pod
/// sandboxes (pause) are exempt: they create the namespace. Only a spec
/// with a network namespace path is looked at, and only state files are
/// read; the check's own failures never stop the delegation.
fn refuse_beside_tc(rt: &Runtime, id: &str, b: &Bundle) -> Result<()> {
    use crate::metadata::{CRIO_CONTAINER_TYPE, CRI_CONTAINER_TYPE};
    use crate::network::mode::{Mode, KEY_MODE};
    let Some(ns) = b.netns.as_deref() else {
        return Ok(());
    };
    let sandbox = [CRI_CONTAINER_TYPE, CRIO_CONTAINER_TYPE]
        .iter()
        .any(|k| b.annotations.get(*k).is_some_and(|v| v == "sandbox"));
    if sandbox {
        return Ok(());
    }
    // state::list skips entries it cannot read; say when the whole root
    // cannot be read (no root at all: no unikernel, nothing to say).
    match std::fs::read_dir(&rt.root) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            crate::log::warn(&format!(
                "container {id}: cannot read {} to check the unikernels of network namespace {}: {e}; delegating",
                rt.root.display(),
                ns.display()
            ));
            return Ok(());
        }
    }
    let others = neighbours(rt, id, ns);
    match others.iter().find(|o| o.choice.mode == Mode::Tc) {
        None => Ok(()),
        Some(o) => Err(Error::msg(format!(
            "container {id}: network namespace {} belongs to unikernel container {}, \
             which runs in tc mode (the guest owns the pod IP and all of eth0's \
             traffic): this container would get no network; give the pod's \
             unikernels the annotation {KEY_MODE}=shared",
            ns.display(),
            o.id
        ))),
    }
}

/// The image's ports: `com.urunc.network.ports` in the rootfs's
/// `/urunc.json` (where an image builder records what the image serves —
/// the OCI image config's ExposedPorts never reach the runtime spec),
/// encoded like the metadata values (plain or base64).
fn image_ports(rootfs: &Path) -> Result<Option<String>> {
    let path = rootfs.join(crate::metadata::FILE_NAME);
    let Ok(Some(text)) = crate::metadata::read_file(rootfs) else {
        return Ok(None);
    };
    let map: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_default();
    match map.get(crate::network::mode::KEY_PORTS) {
        None => Ok(None),
        Some(serde_json::Value::String(v)) => Ok(Some(crate::metadata::decode_value(v))),
        Some(other) => Err(Error::msg(format!(
            "{}: key {}: value {other} is not a string",
            path.display(),
            crate::network::mode::KEY_PORTS
        ))),
    }
}

fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let tmp = p.with_extension("urunc-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("--pid-file {}", p.display()))?;
    std::fs::rename(&tmp, p).ctx(|| format!("--pid-file {}", p.display()))
}

/// Waits (briefly, up to 2 s) until a killed process is gone or a zombie.
/// The process is not our child: a pidfd, which becomes readable when it
/// exits, wakes us at once (one poll) instead of re-reading /proc every
/// 2 ms; the /proc loop remains where pidfds are not available.
pub(crate) fn wait_gone(pid: i32, start: u64) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us and is owned here.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        // Opened after the check would be a reused PID's: check it now.
        if proc_stat(pid).is_some_and(|(s, _)| s == start) {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 2000) };
        }
        return;
    }
    for _ in 0..1000 {
        match proc_stat(pid) {
            Some((s, st)) if s == start && st != 'Z' && st != 'X' => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => return,
        }
    }
}

//! `create`: validate, make the state directory, fork the waiting process
//! into the container's namespaces and cgroup, run the create hooks.

use super::Runtime;
use crate::cgroups;
use crate::error::{BundleError, Context, Error, Result};
use crate::hooks;
use crate::metadata::Metadata;
use crate::plan;
use crate::sandbox::{self, Launch};
use crate::state::{proc_stat, ProcRef, State, StateDir, SANDBOX_DIR};
use crate::testpoint;
use crate::timestamps::{ts, Recorder};
use oci_spec::runtime::Spec;
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
    /// Created; the waiting process's PID.
    Created(i32),
    /// Not a unikernel: the caller hands the command to the delegate.
    NotUnikernel,
}

fn load_spec(bundle: &Path) -> Result<(Spec, PathBuf)> {
    let spec = Spec::load(bundle.join("config.json")).map_err(|source| BundleError::Spec {
        bundle: bundle.to_path_buf(),
        source,
    })?;
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| BundleError::Invalid {
            bundle: bundle.to_path_buf(),
            problem: "config.json has no root.path".into(),
        })?;
    let rootfs = if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    };
    if !rootfs.is_dir() {
        return Err(BundleError::Invalid {
            bundle: bundle.to_path_buf(),
            problem: format!("rootfs {} is not a directory", rootfs.display()),
        }
        .into());
    }
    Ok((spec, rootfs))
}

pub fn create(rt: &Runtime, opts: &CreateOpts) -> Result<Outcome> {
    let rec = Recorder::new(&rt.config.timestamps, &opts.id);
    rec.mark(ts::CREATE_START);
    crate::state::validate_id(&opts.id)?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).ctx(|| format!("bundle {}", opts.bundle.display()))?;
    let (spec, rootfs) = load_spec(&bundle)?;
    let Some((md, _src)) = Metadata::discover(spec.annotations().as_ref(), &rootfs)? else {
        return Ok(Outcome::NotUnikernel);
    };
    let mut unikernel = plan::prepare(&spec, &rootfs, &md, &rt.config)?;
    // Plan once: errors in the user's input surface now.
    plan::validate(&unikernel)?;
    rec.mark(ts::CREATE_VALIDATED);

    let dir = StateDir::new(&rt.root, &opts.id)?;
    let mut st = initial_state(rt, opts, &bundle, &spec, &rootfs, &unikernel);
    // From here on, whatever kills this process, `delete` finds the record.
    dir.create(&st)?;
    testpoint::pause_at("create:state");
    let result = crate::storage::hand_over(&mut unikernel, &dir.path)
        .and_then(|()| create_in(rt, opts, &dir, &mut st, &spec, &unikernel, &rec));
    if result.is_err() {
        if let Err(e) = crate::storage::restore(&dir.path) {
            crate::log::warn(&e.to_string());
        }
        let _ = dir.remove();
    }
    result
}

/// The cgroup path of the spec, relative to the hierarchy's root.
fn cgroup_rel(rt: &Runtime, spec: &Spec) -> Option<PathBuf> {
    let cg = spec.linux().as_ref()?.cgroups_path().as_ref()?;
    Some(cgroups::relative_path(
        &cg.to_string_lossy(),
        rt.systemd_cgroup,
    ))
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
) -> State {
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
    let planned = cgroup_rel(rt, spec)
        .map(|rel| cgroups::planned(&rel))
        .unwrap_or_default();
    State {
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
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
        creating: ProcRef::current(),
    }
}

fn create_in(
    rt: &Runtime,
    opts: &CreateOpts,
    dir: &StateDir,
    st: &mut State,
    spec: &Spec,
    u: &plan::Unikernel,
    rec: &Recorder,
) -> Result<Outcome> {
    // No lock here: the exclusive rename already makes this create the
    // only one, and a lock fd would be inherited by the waiting process.
    std::fs::create_dir(dir.path.join(SANDBOX_DIR))
        .ctx(|| "creating the sandbox mountpoint".to_string())?;
    let linux = spec.linux().as_ref();
    let hooks = spec.hooks().clone().unwrap_or_default();
    let mut creating = st.oci_json();
    creating["status"] = "creating".into();
    let launch = Launch {
        id: &opts.id,
        spec,
        unikernel: u,
        config: &rt.config,
        state_dir: dir,
        console_socket: opts.console_socket.clone(),
        preserve_fds: opts.preserve_fds,
        state_json: creating.to_string(),
    };
    let mut child = sandbox::spawn(&launch)?;
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
    testpoint::pause_at("create:forked");
    let placed = (|| -> Result<()> {
        if let Some(rel) = cgroup_rel(rt, spec) {
            let res = linux.and_then(|l| l.resources().as_ref());
            let cpu = res.and_then(|r| r.cpu().as_ref());
            let limits = cgroups::Limits {
                memory_bytes: res
                    .and_then(|r| r.memory().as_ref())
                    .and_then(|m| m.limit())
                    .filter(|l| *l > 0)
                    .map(|_| (u.memory_mib + u.overhead_mib) << 20),
                cpu_quota: cpu.and_then(|c| c.quota()),
                cpu_period: cpu.and_then(|c| c.period()),
                cpu_shares: cpu.and_then(|c| c.shares()),
                pids: res.and_then(|r| r.pids().as_ref()).map(|p| p.limit()),
            };
            let cg = cgroups::place(&rel, child_pid, &limits)?;
            cgroups::share_parents(&rt.root, &cg.created_parents);
            st.cgroups = cg.dirs;
            st.cgroup_parents = cg.created_parents;
        }
        dir.save(st)?;
        testpoint::pause_at("create:placed");
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, child_pid)?;
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
    Ok(Outcome::Created(child_pid))
}

fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let tmp = p.with_extension("urunc-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("--pid-file {}", p.display()))?;
    std::fs::rename(&tmp, p).ctx(|| format!("--pid-file {}", p.display()))
}

/// Waits (briefly) until a killed process is gone or a zombie.
pub(crate) fn wait_gone(pid: i32, start: u64) {
    for _ in 0..1000 {
        match proc_stat(pid) {
            Some((s, st)) if s == start && st != 'Z' && st != 'X' => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => return,
        }
    }
}

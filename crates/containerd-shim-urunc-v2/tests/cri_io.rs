//! Issue 16 through CRI, as a kubelet meets it: ordinary (busybox,
//! delegated to runc) containers in a pod with the `urunc` handler.
//!
//! 1. A container that shares the pod's (or the host's) PID namespace and
//!    prints a burst of lines as it is stopped, while a background child
//!    of it still holds the output FIFOs: every line is in its CRI log,
//!    and containerd logs no `Failed to pipe stdout of container …` (it
//!    did when the shim reported the init's exit while other processes of
//!    the container still held the FIFOs: containerd closes them once it
//!    has handled the exit).
//! 2. ExecSync of a missing binary fails within seconds, and containerd
//!    logs no `Failed to delete exec process` (it did, after a minute,
//!    when the shim left the failed exec's Wait blocked).
//!
//! Same harness as `cri.rs`: a private containerd with CRI per case, on
//! Debian's containerd and on `$URUNC_TEST_CONTAINERD` (SKIP when unset).
//! containerd's own log is `containerd.log` in the case's directory; it
//! is read before the directory goes (`URUNC_SHIM_TEST_KEEP=1` keeps it).
//!
//! With the shim before issue 16's fixes (a778f99), on containerd 1.6:
//! the bursts kept 10043–17553 of 20000 lines with 2 `Failed to pipe`
//! lines each, and the ExecSync failed after 60.03 s.

#[path = "support/cri_env.rs"]
mod cri_env;
#[path = "support/cri.rs"]
mod harness;
#[path = "support/cri_steps.rs"]
mod steps;
mod support;

use std::time::{Duration, Instant};

use harness::{wait_for, Cri, Engine};
use k8s_cri::v1::{ContainerState, ExecSyncRequest, NamespaceMode};
use steps::*;

crate::engine_tests!(
    crate::need;
    pod_pid_burst_at_stop_is_all_logged,
    host_pid_burst_at_stop_is_all_logged,
    exec_of_missing_binary_fails_promptly,
);

/// Lines the container prints when it is TERMed.
const LINES: usize = 20000;

/// What these cases need: CRI, the workspace's urunc (no QEMU: only
/// busybox containers, delegated to runc).
fn need(test: &str, engine: Result<Option<Engine>, String>) -> Option<Engine> {
    let engine = crate::cri_env::engine_or_skip(test, engine)?;
    harness::need_cri(test)?;
    if !support::runtime_under_test().ends_with("urunc") {
        println!("SKIP: {test}: the workspace's urunc is not built (cargo build -p urunc)");
        return None;
    }
    if !harness::fixtures().join("pause").is_file() {
        println!("SKIP: {test}: fixture pause missing (run tests/fixtures/build.sh)");
        return None;
    }
    println!("{test}: containerd {}", engine.version);
    Some(engine)
}

/// containerd's log lines holding `needle`.
fn containerd_log_lines(c: &Cri, needle: &str) -> Vec<String> {
    std::fs::read_to_string(c.dir.join("containerd.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn pod_pid_burst_at_stop_is_all_logged(e: &Engine) {
    burst_at_stop(e, "iopod", NamespaceMode::Pod);
}

fn host_pid_burst_at_stop_is_all_logged(e: &Engine) {
    burst_at_stop(e, "iohost", NamespaceMode::Node);
}

/// (1) The pod and its container in PID namespace `pid` (kubelet's
/// shareProcessNamespace: Pod; hostPID: Node). The container's shell
/// starts a background sleep (which inherits stdout and stderr, the
/// FIFOs) and, on SIGTERM, prints 1..=LINES and exits 0.
fn burst_at_stop(e: &Engine, name: &str, pid: NamespaceMode) {
    let mut c = Cri::start(e, name);
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    let mut cfg = c.pod_config(name, &[]);
    let ns = |cfg: &mut Option<k8s_cri::v1::NamespaceOption>| {
        cfg.as_mut().unwrap().pid = pid as i32;
    };
    ns(&mut cfg
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options);
    let pod = run_urunc_pod(&mut c, &cfg);
    let mut cc = busybox(
        "burst",
        &format!(
            "trap '/bin/busybox seq 1 {LINES}; exit 0' TERM; \
             /bin/busybox sleep 1000 & echo started; wait; wait"
        ),
    );
    ns(&mut cc
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options);
    let id = c.run_container(&pod, &cfg, cc);
    assert!(c.wait_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10)
    ));
    assert!(
        wait_for(Duration::from_secs(10), || log_of(&c, &id)
            .contains("started")),
        "the container never started: {}",
        log_of(&c, &id)
    );
    let t = Instant::now();
    c.stop_container(&id, 10)
        .unwrap_or_else(|e| panic!("StopContainer: {e}\n{}", c.log_tail()));
    let took = t.elapsed();
    let (state, code) = c.state(&id);
    println!("{name}: StopContainer took {took:?}; state {state:?}, exit code {code}");
    assert_eq!(state, ContainerState::ContainerExited);
    assert_eq!(
        code, 0,
        "the shell's trap did not run (killed after the timeout?)"
    );
    let log_path = c.status(&id).status.map(|s| s.log_path).unwrap_or_default();
    c.stop_pod(&pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log_tail()));
    c.remove_pod(&pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log_tail()));

    // The CRI log: "<time> stdout F <line>" per line (CRI's format).
    let log =
        std::fs::read_to_string(&log_path).unwrap_or_else(|e| panic!("CRI log {log_path}: {e}"));
    let numbers: Vec<usize> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let want: Vec<usize> = (1..=LINES).collect();
    // containerd logs the pipe error when it closes the FIFOs (at the
    // exit and at the latest at StopPodSandbox), so after both.
    let pipe = containerd_log_lines(&c, "Failed to pipe");
    println!("{name}: containerd 'Failed to pipe' lines: {}", pipe.len());
    println!(
        "{name}: CRI log has {} of {LINES} lines (last: {:?})",
        numbers.len(),
        numbers.last()
    );
    assert!(
        numbers == want,
        "CRI log lost lines: {} of {LINES}, last {:?}",
        numbers.len(),
        numbers.last()
    );
    assert!(pipe.is_empty(), "containerd logged:\n{}", pipe.join("\n"));
}

/// (2) ExecSync of `/nonexistent` in a running busybox container: an
/// error within 10 s (runc's shim: well under a second), and no failed
/// cleanup of the exec in containerd's log.
fn exec_of_missing_binary_fails_promptly(e: &Engine) {
    let mut c = Cri::start(e, "ioexec");
    let bb = support::build_image(&c.dir);
    c.import(&bb, support::IMAGE);
    let cfg = c.pod_config("ioexec", &[]);
    let pod = run_urunc_pod(&mut c, &cfg);
    let id = c.run_container(
        &pod,
        &cfg,
        busybox("sleeper", "exec /bin/busybox sleep 1000"),
    );
    assert!(c.wait_state(
        &id,
        ContainerState::ContainerRunning,
        Duration::from_secs(10)
    ));
    let mut r = c.runtime.clone();
    let t = Instant::now();
    let res = c.call(r.exec_sync(ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["/nonexistent".into()],
        timeout: 90,
    }));
    let took = t.elapsed();
    let outcome = match &res {
        Ok(o) => format!("exit code {}", o.get_ref().exit_code),
        Err(s) => format!("error: {}", s.message()),
    };
    println!("ExecSync /nonexistent: {outcome} after {took:?}");
    match res {
        Err(s) => assert!(
            s.message().contains("nonexistent"),
            "the error does not name the program: {}",
            s.message()
        ),
        Ok(o) => assert_ne!(
            o.get_ref().exit_code,
            0,
            "ExecSync of /nonexistent succeeded"
        ),
    }
    assert!(took < Duration::from_secs(10), "ExecSync took {took:?}");
    // The container is unharmed and an exec that starts still works.
    let ok = c
        .call(r.exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["/bin/echo".into(), "still here".into()],
            timeout: 10,
        }))
        .unwrap_or_else(|e| panic!("ExecSync echo: {e}"))
        .into_inner();
    assert_eq!(support::text(&ok.stdout).trim(), "still here");
    c.stop_container(&id, 2)
        .unwrap_or_else(|e| panic!("StopContainer: {e}\n{}", c.log_tail()));
    c.stop_pod(&pod).unwrap();
    c.remove_pod(&pod).unwrap();
    let failed = containerd_log_lines(&c, "Failed to delete exec process");
    println!(
        "containerd 'Failed to delete exec process' lines: {}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "containerd logged:\n{}",
        failed.join("\n")
    );
}

//! End to end through Debian's containerd 1.6: `ctr run --runtime
//! io.containerd.urunc.v2` with this crate's shim, which drives the OCI
//! runtime named by `$URUNC_SHIM_TEST_RUNTIME` (default: the workspace's own
//! `urunc`, which hands the busybox containers to runc and runs the
//! unikernels itself; set it to `runc` for a baseline).
//!
//! `$URUNC_TEST_CONTAINERD` (a containerd binary with its ctr beside it,
//! e.g. a 2.x build) runs these cases on that containerd instead.

mod support;

use std::process::Stdio;

use support::{containerd_for, killed_output, need, text, Containerd, IMAGE, RUNTIME};

#[test]
fn echo_hello_prints_and_exits_zero() {
    let Some(c) = containerd_for("echo_hello_prints_and_exits_zero", "echo") else {
        return;
    };
    let out = c.run("hello1", &[], &["/bin/busybox", "echo", "hello"]);
    assert!(
        out.status.success(),
        "ctr run failed: {:?}\nstderr: {}\ncontainerd:\n{}",
        out.status,
        text(&out.stderr),
        c.log_tail()
    );
    assert_eq!(text(&out.stdout), "hello\n");
    assert!(
        c.shim_gone("hello1"),
        "shim for hello1 still running: {:?}",
        c.shim_pids("hello1")
    );
    assert!(
        !c.runtime_state("hello1").exists(),
        "runtime state left behind"
    );
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
    assert!(c.ctr(&["container", "info", "hello1"]).stdout.is_empty());
}

#[test]
fn exit_status_and_stderr_are_passed_on() {
    let Some(c) = containerd_for("exit_status_and_stderr_are_passed_on", "exit") else {
        return;
    };
    let out = c.run(
        "exit3",
        &[],
        &["/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "to-out\n");
    assert!(
        text(&out.stderr).contains("to-err"),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(c.shim_gone("exit3"));
}

#[test]
fn stdin_reaches_the_container() {
    let Some(c) = containerd_for("stdin_reaches_the_container", "stdin") else {
        return;
    };
    let out = c.run_with_stdin("cat1", &["/bin/cat"], b"line one\nline two\n");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "line one\nline two\n");
}

#[test]
fn long_running_task_ls_ps_pause_resume_kill() {
    let Some(c) = containerd_for("long_running_task_ls_ps_pause_resume_kill", "sleep") else {
        return;
    };
    let id = "sleep1";
    let child = c.spawn_run(id, &["/bin/sleep", "100"]);
    assert!(
        c.wait_status(id, "RUNNING"),
        "task never RUNNING: {:?}\n{}",
        c.task_status(id),
        c.log_tail()
    );

    // ps lists the container's process, whose PID task ls reports.
    let pid = c.task_pid(id);
    let ps = c.ctr(&["task", "ps", id]);
    assert!(ps.status.success(), "task ps: {}", text(&ps.stderr));
    assert!(
        text(&ps.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "task ps does not list {pid}:\n{}",
        text(&ps.stdout)
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        comm.trim() == "sleep" || comm.trim() == "busybox",
        "pid {pid} is {comm:?}"
    );

    // Exactly one shim serves the container.
    assert_eq!(c.shim_pids(id).len(), 1, "shims: {:?}", c.shim_pids(id));
    let bundle = c.bundle(id);
    assert!(bundle.join("init.pid").exists());
    // The shim drove the runtime under test (it records its choice).
    let chosen = std::fs::read_to_string(bundle.join("urunc-shim.json")).unwrap();
    let chosen: serde_json::Value = serde_json::from_str(&chosen).unwrap();
    assert_eq!(
        chosen["binary"].as_str(),
        Some(support::runtime_under_test().as_str())
    );
    assert!(
        c.runtime_state(id).exists(),
        "no runtime state at {}",
        c.runtime_state(id).display()
    );

    // Metrics from the container's cgroup (v1 here, v2 elsewhere).
    let m = c.ctr(&["task", "metrics", id]);
    assert!(m.status.success(), "task metrics: {}", text(&m.stderr));
    let mt = text(&m.stdout);
    assert!(mt.contains("memory."), "task metrics: {mt}");
    assert!(mt.contains("pids."), "task metrics: {mt}");

    let p = c.ctr(&["task", "pause", id]);
    if p.status.success() {
        assert_eq!(c.task_status(id).as_deref(), Some("PAUSED"));
        let r = c.ctr(&["task", "resume", id]);
        assert!(r.status.success(), "resume: {}", text(&r.stderr));
        assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
    } else {
        println!(
            "SKIP: pause/resume: the runtime cannot pause here: {}",
            text(&p.stderr)
        );
    }

    c.kill(id, "KILL");
    killed_output(child);

    assert!(
        c.shim_gone(id),
        "shim for {id} still running: {:?}",
        c.shim_pids(id)
    );
    assert!(!c.runtime_state(id).exists(), "runtime state left behind");
    assert!(!bundle.exists(), "bundle left behind: {}", bundle.display());
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

#[test]
fn runtime_error_reaches_the_user() {
    let Some(c) = containerd_for("runtime_error_reaches_the_user", "err") else {
        return;
    };
    let out = c.run("nope1", &[], &["/bin/does-not-exist"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("OCI runtime create failed"), "stderr: {err}");
    assert!(err.contains("/bin/does-not-exist"), "stderr: {err}");
    assert!(c.shim_gone("nope1"));
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

#[test]
fn terminal_mode_uses_a_pty() {
    if need("terminal_mode_uses_a_pty").is_none() {
        return;
    }
    let Some(script) = support::which("script") else {
        println!("SKIP: terminal_mode_uses_a_pty: script(1) not found (bsdutils)");
        return;
    };
    let c = Containerd::start("tty");
    // ctr -t needs a terminal of its own: script(1) gives it one.
    let cmd = format!(
        "{} --address {} --namespace {} run --rm -t --runtime {RUNTIME} {IMAGE} tty1 \
         /bin/sh -c 'tty; echo on-a-tty; exit 5'",
        c.ctr.display(),
        c.sock.display(),
        c.namespace
    );
    let out = std::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout: {o}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(o.contains("/dev/pts/"), "not on a pty: {o}");
    assert!(o.contains("on-a-tty"), "output: {o}");
    assert!(c.shim_gone("tty1"));
}

#[test]
fn detached_task_delete_cleans_up() {
    let Some(c) = containerd_for("detached_task_delete_cleans_up", "detach") else {
        return;
    };
    let id = "det1";
    // PID 1 of a PID namespace ignores SIGTERM unless it handles it.
    let script = "trap 'exit 7' TERM; while true; do sleep 1; done";
    c.run_detached(id, &[], &["/bin/sh", "-c", script]);
    assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
    // Deleting a running task is refused.
    let d = c.ctr(&["task", "delete", id]);
    assert!(!d.status.success(), "deleting a running task succeeded");
    // Until the shell has installed its trap, SIGTERM is ignored: repeat
    // it (bounded) until the task stops.
    let mut stopped = false;
    for _ in 0..60 {
        let k = c.ctr(&["task", "kill", "-s", "TERM", id]);
        // A kill that fails because the shell has just exited (from the
        // previous TERM) is not the end: its exit may still be on the way.
        let polls = if k.status.success() { 5 } else { 50 };
        for _ in 0..polls {
            if c.task_status(id).as_deref() == Some("STOPPED") {
                stopped = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if stopped || !k.status.success() {
            break;
        }
    }
    assert!(stopped, "status {:?}", c.task_status(id));
    // A second kill of a finished task is an error, not a crash.
    let k2 = c.ctr(&["task", "kill", "-s", "KILL", id]);
    assert!(!k2.status.success());
    let d = c.ctr(&["task", "delete", id]);
    assert!(d.status.success(), "delete: {}", text(&d.stderr));
    // ctr reports the exit status the shim returned from Delete.
    assert!(
        text(&d.stderr).contains("exit code 7"),
        "delete: {}",
        text(&d.stderr)
    );
    assert!(c.task_status(id).is_none());
    assert!(c.shim_gone(id), "shim for {id} still running");
    assert!(!c.runtime_state(id).exists());
    let cd = c.ctr(&["container", "delete", id]);
    assert!(
        cd.status.success(),
        "container delete: {}",
        text(&cd.stderr)
    );
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

#[test]
fn exec_runs_in_a_running_container() {
    let Some(c) = containerd_for("exec_runs_in_a_running_container", "exec") else {
        return;
    };
    let id = "exec1";
    c.run_detached(id, &[], &["/bin/sleep", "100"]);

    // A short exec: output and exit status come back.
    let e = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "/bin/sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    assert_eq!(e.status.code(), Some(4), "exec stderr: {}", text(&e.stderr));
    assert_eq!(text(&e.stdout), "in-exec\n");

    // A long exec killed through its exec id: 128 + SIGKILL.
    let child = c.spawn_ctr(&["task", "exec", "--exec-id", "e2", id, "/bin/sleep", "100"]);
    // Until e2 is started a kill of it fails; repeat (bounded).
    let mut killed = false;
    for _ in 0..100 {
        let k = c.ctr(&["task", "kill", "--exec-id", "e2", "-s", "KILL", id]);
        if k.status.success() {
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(killed, "could not kill exec e2");
    killed_output(child);

    // An unknown exec id is a clear error.
    let k = c.ctr(&["task", "kill", "--exec-id", "nope", id]);
    assert!(!k.status.success());
    assert!(
        text(&k.stderr).contains("nope"),
        "stderr: {}",
        text(&k.stderr)
    );

    // The container itself kept running.
    assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(support::base64(b""), "");
    assert_eq!(support::base64(b"f"), "Zg==");
    assert_eq!(support::base64(b"fo"), "Zm8=");
    assert_eq!(support::base64(b"foo"), "Zm9v");
    assert_eq!(support::base64(b"unikraft"), "dW5pa3JhZnQ=");
}

/// A unikernel (the project's multiboot test kernel, run by QEMU as a
/// Unikraft guest) through the shim and urunc. Runs only when the runtime
/// under test is urunc and the fixtures are built
/// (`tests/fixtures/build.sh`).
#[test]
fn unikernel_runs_through_urunc() {
    let test = "unikernel_runs_through_urunc";
    let Some(f) = need_unikernel(test, &["testkernel.elf"]) else {
        return;
    };
    let kernel = &f[0];
    let c = Containerd::start("uk");
    let archive = support::build_unikernel_image(
        &c.dir,
        "ushim-testkernel",
        kernel,
        &[
            ("unikernelType", "unikraft"),
            ("hypervisor", "qemu"),
            ("cmdline", "hello-from-shim"),
        ],
    );
    let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    // Bounded: a guest that never exits must fail the test, not hang it.
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(&c.ctr)
        .arg("--address")
        .arg(&c.sock)
        .args([
            "--namespace",
            &c.namespace,
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
        ])
        .args(["docker.io/library/ushim-testkernel:latest", "uk1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(124),
        "timed out; stdout: {o}\n{}",
        c.log_tail()
    );
    assert!(
        o.contains("URUNC-TESTKERNEL cmdline:"),
        "stdout: {o}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(o.contains("hello-from-shim"), "stdout: {o}");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(c.shim_gone("uk1"));
}

/// When a shim dies, containerd runs `containerd-shim-urunc-v2 delete` in
/// the bundle: the container is force-deleted through the runtime and the
/// rootfs unmounted.
#[test]
fn dead_shim_is_cleaned_up_by_the_delete_action() {
    let Some(c) = containerd_for("dead_shim_is_cleaned_up_by_the_delete_action", "dead") else {
        return;
    };
    let id = "dead1";
    c.run_detached(id, &[], &["/bin/sleep", "100"]);
    let shims = c.shim_pids(id);
    assert_eq!(shims.len(), 1, "shims: {shims:?}");
    let pid = c.task_pid(id);
    // SAFETY: kill(2) with a PID read from /proc just above.
    unsafe {
        libc::kill(shims[0], libc::SIGKILL);
    }
    // containerd notices the dead shim and cleans up (bounded wait).
    let mut gone = false;
    for _ in 0..100 {
        // The delete action unmounts last.
        if c.task_status(id).is_none()
            && !c.runtime_state(id).exists()
            && c.mounts_below().is_empty()
        {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        gone,
        "task {:?}, runtime state exists: {}, mounts {:?}\n{}",
        c.task_status(id),
        c.runtime_state(id).exists(),
        c.mounts_below(),
        c.log_tail()
    );
    // The container's process is gone (a zombie at most, as nobody reaps
    // for the dead shim when PID 1 does not).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = state
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .is_some_and(|st| st != "Z" && st != "X");
    assert!(!alive, "container process {pid} still alive: {state}");
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

/// Containers of one pod (same `io.kubernetes.cri.sandbox-id`) share one
/// shim, which stays until the last of them is deleted.
#[test]
fn pod_containers_share_one_shim() {
    let Some(c) = containerd_for("pod_containers_share_one_shim", "pod") else {
        return;
    };
    let ann = "io.kubernetes.cri.sandbox-id=pod1";
    for id in ["podc1", "podc2"] {
        c.run_detached(id, &["--annotation", ann], &["/bin/sleep", "100"]);
        assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
    }
    let first = c.shim_pids("podc1");
    assert_eq!(first.len(), 1, "shims for podc1: {first:?}");
    assert!(
        c.shim_gone("podc2"),
        "podc2 got its own shim: {:?}",
        c.shim_pids("podc2")
    );

    // Remove the first container: the shim stays for the second.
    c.kill("podc1", "KILL");
    assert!(c.wait_status("podc1", "STOPPED"));
    let d = c.ctr(&["task", "delete", "podc1"]);
    assert!(d.status.success(), "delete: {}", text(&d.stderr));
    assert_eq!(
        c.shim_pids("podc1"),
        first,
        "the shared shim went away early"
    );
    assert_eq!(c.task_status("podc2").as_deref(), Some("RUNNING"));
    let ps = c.ctr(&["task", "ps", "podc2"]);
    assert!(ps.status.success(), "task ps podc2: {}", text(&ps.stderr));

    c.kill("podc2", "KILL");
    assert!(c.wait_status("podc2", "STOPPED"));
    let d = c.ctr(&["task", "delete", "podc2"]);
    assert!(d.status.success(), "delete: {}", text(&d.stderr));
    assert!(
        c.shim_gone("podc1"),
        "shared shim still running after the last delete"
    );
}

/// A container killed by the kernel's OOM killer: exit 137 and a TaskOOM
/// event (CRI's `OOMKilled`).
#[test]
fn oom_kill_is_reported() {
    if need("oom_kill_is_reported").is_none() {
        return;
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() > 1 {
        println!("SKIP: oom_kill_is_reported: swap is on, a memory limit need not OOM-kill");
        return;
    }
    let c = Containerd::start("oom");
    let mut events = c
        .ctr_cmd(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The shell keeps 200 MB of output in memory; the limit is 16 MiB.
    let out = c.run(
        "oom1",
        &["--memory-limit", "16777216"],
        &[
            "/bin/sh",
            "-c",
            "a=$(yes | head -c 200000000); echo survived",
        ],
    );
    // SAFETY: kill(2) on the PID of our own unreaped child.
    unsafe {
        libc::kill(events.id() as i32, libc::SIGTERM);
    }
    let _ = events.wait();
    let mut ev = String::new();
    std::io::Read::read_to_string(&mut events.stdout.take().unwrap(), &mut ev).unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "stdout: {}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("survived"));
    let pos = |topic: &str| {
        ev.lines()
            .position(|l| l.contains(topic) && l.contains("\"oom1\""))
    };
    let oom = pos("/tasks/oom");
    assert!(oom.is_some(), "no /tasks/oom event for oom1:\n{ev}");
    // Reported before the exit it caused (CRI then records OOMKilled).
    let exit = pos("/tasks/exit");
    assert!(exit.is_some() && oom < exit, "order of events:\n{ev}");
}

/// `--log-uri file://PATH`: containerd hands the shim a file URI for both
/// output streams.
#[test]
fn log_uri_file_receives_output() {
    let Some(c) = containerd_for("log_uri_file_receives_output", "loguri") else {
        return;
    };
    let log = c.dir.join("container.log");
    let uri = format!("file://{}", log.display());
    let out = c.run(
        "log1",
        &["--log-uri", &uri],
        &["/bin/sh", "-c", "echo to-log; echo err-to-log >&2; exit 2"],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    let content = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(content.contains("to-log\n"), "log: {content:?}");
    assert!(content.contains("err-to-log\n"), "log: {content:?}");
}

#[test]
fn exec_with_a_terminal() {
    if need("exec_with_a_terminal").is_none() {
        return;
    }
    let Some(script) = support::which("script") else {
        println!("SKIP: exec_with_a_terminal: script(1) not found (bsdutils)");
        return;
    };
    let c = Containerd::start("exectty");
    let id = "et1";
    c.run_detached(id, &[], &["/bin/sleep", "100"]);
    let cmd = format!(
        "{} --address {} --namespace {} task exec -t --exec-id t1 {id} \
         /bin/sh -c 'tty; echo exec-on-tty; exit 6'",
        c.ctr.display(),
        c.sock.display(),
        c.namespace
    );
    let out = std::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stdout: {o}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(o.contains("/dev/pts/"), "not on a pty: {o}");
    assert!(o.contains("exec-on-tty"), "output: {o}");
}

/// urunc's own error for bad unikernel metadata reaches the ctr user
/// through the shim (urunc logs it as a JSON error line).
#[test]
fn urunc_metadata_error_reaches_the_user() {
    let test = "urunc_metadata_error_reaches_the_user";
    if need(test).is_none() {
        return;
    }
    let rt = support::runtime_under_test();
    if !rt.ends_with("urunc") {
        println!("SKIP: {test}: runtime under test is {rt}, not urunc");
        return;
    }
    let c = Containerd::start("ukerr");
    // Any file will do as the "kernel": the framework name is wrong.
    let kernel = c.dir.join("not-a-kernel");
    std::fs::write(&kernel, b"x").unwrap();
    let archive = support::build_unikernel_image(
        &c.dir,
        "ushim-badmeta",
        &kernel,
        &[
            ("unikernelType", "no-such-framework"),
            ("hypervisor", "qemu"),
        ],
    );
    let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "docker.io/library/ushim-badmeta:latest",
        "bad1",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("OCI runtime create failed"), "stderr: {err}");
    assert!(err.contains("no-such-framework"), "stderr: {err}");
    assert!(c.shim_gone("bad1"));
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

/// A long-running unikernel (the fixtures' Linux guest serving on a port)
/// through the shim and urunc: the container's process is QEMU, and
/// ls/ps/pause/resume/kill act on it.
#[test]
fn long_running_unikernel_lifecycle() {
    let test = "long_running_unikernel_lifecycle";
    let Some(f) = need_unikernel(test, &["vmlinux", "initramfs.cpio.gz"]) else {
        return;
    };
    let (kernel, initrd) = (&f[0], &f[1]);
    let c = Containerd::start("uklong");
    let archive = support::build_unikernel_image_with(
        &c.dir,
        "ushim-linuxguest",
        kernel,
        &[initrd],
        &[
            ("unikernelType", "linux"),
            ("hypervisor", "qemu"),
            ("initrd", "/unikernel/initramfs.cpio.gz"),
            ("cmdline", "serve"),
        ],
    );
    let id = "uklong1";
    let child = run_in_background(
        &c,
        &archive,
        "docker.io/library/ushim-linuxguest:latest",
        id,
    );
    let pid = c.task_pid(id);
    // The container's process is the monitor.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(
        exe.to_string_lossy().contains("qemu-system"),
        "pid {pid} runs {}",
        exe.display()
    );
    let ps = c.ctr(&["task", "ps", id]);
    assert!(ps.status.success(), "task ps: {}", text(&ps.stderr));
    assert!(
        text(&ps.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "task ps does not list the monitor {pid}:\n{}",
        text(&ps.stdout)
    );
    let p = c.ctr(&["task", "pause", id]);
    assert!(p.status.success(), "pause: {}", text(&p.stderr));
    assert_eq!(c.task_status(id).as_deref(), Some("PAUSED"));
    let r = c.ctr(&["task", "resume", id]);
    assert!(r.status.success(), "resume: {}", text(&r.stderr));
    assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));

    c.kill(id, "KILL");
    killed_output(child);
    assert!(c.shim_gone(id), "shim still running");
    assert!(!c.runtime_state(id).exists(), "runtime state left behind");
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

/// `ctr task kill` (SIGTERM) of a running unikernel: QEMU shuts the guest
/// down and exits 0, which is what `ctr run` returns; nothing is left.
#[test]
fn unikernel_sigterm_stops_the_guest() {
    let test = "unikernel_sigterm_stops_the_guest";
    let Some(f) = need_unikernel(test, &["testkernel.elf"]) else {
        return;
    };
    let c = Containerd::start("ukterm");
    let archive = support::build_unikernel_image(
        &c.dir,
        "ushim-hang",
        &f[0],
        &[
            ("unikernelType", "unikraft"),
            ("hypervisor", "qemu"),
            ("cmdline", "app hang"),
        ],
    );
    let id = "ukterm1";
    let mut child = run_in_background(&c, &archive, "docker.io/library/ushim-hang:latest", id);
    // Kill only once the guest is up: a monitor that has not installed its
    // SIGTERM handler yet cannot shut the guest down (urunc then sends
    // SIGKILL, see its kill.rs).
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut seen, mut buf) = (String::new(), [0u8; 4096]);
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("URUNC-TESTKERNEL hang") {
                let _ = tx.send(());
            }
        }
        seen
    });
    let up = rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok();
    let k = c.ctr(&["task", "kill", id]);
    assert!(k.status.success(), "kill: {}", text(&k.stderr));
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    assert!(up, "the guest never came up: {seen}");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(c.shim_gone(id), "shim still running");
    assert!(!c.runtime_state(id).exists(), "runtime state left behind");
    assert!(
        c.mounts_below().is_empty(),
        "mounts left: {:?}",
        c.mounts_below()
    );
}

/// Unikernel tests need urunc as the runtime under test, QEMU, and the
/// named fixtures (tests/fixtures/build); prints SKIP and returns None
/// otherwise, else the fixtures' paths.
fn need_unikernel(test: &str, fixtures: &[&str]) -> Option<Vec<std::path::PathBuf>> {
    need(test)?;
    let rt = support::runtime_under_test();
    if !rt.ends_with("urunc") {
        println!(
            "SKIP: {test}: runtime under test is {rt}, not urunc (set URUNC_SHIM_TEST_RUNTIME)"
        );
        return None;
    }
    if support::which("qemu-system-x86_64").is_none() {
        println!("SKIP: {test}: qemu-system-x86_64 not found");
        return None;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/build");
    let paths: Vec<_> = fixtures.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        println!(
            "SKIP: {test}: {} missing (run tests/fixtures/build.sh)",
            missing.display()
        );
        return None;
    }
    Some(paths)
}

/// Imports `archive`, starts `ctr run --rm IMAGE ID` in the background and
/// waits until the task is RUNNING.
fn run_in_background(
    c: &Containerd,
    archive: &std::path::Path,
    image: &str,
    id: &str,
) -> std::process::Child {
    let out = c.ctr(&["image", "import", archive.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    let child = c.spawn_ctr(&["run", "--rm", "--runtime", RUNTIME, image, id]);
    assert!(
        c.wait_status(id, "RUNNING"),
        "task never RUNNING: {:?}\n{}",
        c.task_status(id),
        c.log_tail()
    );
    child
}

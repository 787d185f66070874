//! Through Debian's containerd 1.6, as containerd's own clients drive the
//! shim: an exec that cannot start, and output written right before a kill.

mod support;

use std::time::Duration;

use support::{containerd_for, killed_output, output_within, text};

/// An exec whose program does not exist. containerd's CRI ExecSync, after
/// the failed Start, deletes the exec with `WithProcessKill` (Wait, kill,
/// wait for the exit, Delete) under a one-minute timeout; `ctr task delete
/// --force --exec-id` is the same call. The shim must answer all of it at
/// once for an exec that never ran.
#[test]
fn failed_exec_start_is_answered_and_cleaned_up_promptly() {
    let Some(c) = containerd_for(
        "failed_exec_start_is_answered_and_cleaned_up_promptly",
        "badexec",
    ) else {
        return;
    };
    let id = "badexec1";
    c.run_detached(id, &[], &["/bin/sleep", "1000"]);
    let limit = Duration::from_secs(10);

    // Attached exec: ctr starts its Wait first, Start fails, ctr deletes.
    let out = output_within(
        c.ctr_cmd(&["task", "exec", "--exec-id", "missing1", id, "/nonexistent"]),
        limit,
    )
    .expect("ctr task exec of a missing binary hung");
    assert!(!out.status.success(), "exec of a missing binary succeeded");
    assert!(
        text(&out.stderr).contains("/nonexistent"),
        "stderr: {}",
        text(&out.stderr)
    );

    // Detached: the failed exec stays until deleted, as CRI then does.
    let out = c.ctr(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "missing2",
        id,
        "/nonexistent",
    ]);
    assert!(!out.status.success(), "exec of a missing binary succeeded");
    assert!(
        text(&out.stderr).contains("/nonexistent"),
        "stderr: {}",
        text(&out.stderr)
    );
    let del = output_within(
        c.ctr_cmd(&["task", "delete", "--force", "--exec-id", "missing2", id]),
        limit,
    );
    let del = del.unwrap_or_else(|| {
        panic!(
            "ctr task delete --force of the failed exec hung; containerd:\n{}",
            c.log_tail()
        )
    });
    assert!(
        del.status.success(),
        "delete of the failed exec: {:?} {}",
        del.status,
        text(&del.stderr)
    );
    // It is gone.
    let again = c.ctr(&["task", "delete", "--exec-id", "missing2", id]);
    assert!(!again.status.success(), "the failed exec is still there");
    assert!(
        text(&again.stderr).contains("missing2"),
        "stderr: {}",
        text(&again.stderr)
    );

    // A non-executable file fails the same way.
    let out = c.ctr(&["task", "exec", "-d", "--exec-id", "noexec", id, "/etc"]);
    assert!(!out.status.success(), "exec of a directory succeeded");
    let del = output_within(
        c.ctr_cmd(&["task", "delete", "--force", "--exec-id", "noexec", id]),
        limit,
    )
    .expect("ctr task delete --force of the failed exec hung");
    assert!(del.status.success(), "delete: {}", text(&del.stderr));

    // Nothing left: the container runs alone, no exec files in the bundle.
    assert_eq!(c.task_status(id).as_deref(), Some("RUNNING"));
    let ps = c.ctr(&["task", "ps", id]);
    let procs = text(&ps.stdout)
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(procs, 1, "task ps: {}", text(&ps.stdout));
    let leftovers: Vec<String> = std::fs::read_dir(c.bundle(id))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(leftovers.is_empty(), "exec files left: {leftovers:?}");
    // A working exec still works afterwards.
    let ok = c.ctr(&["task", "exec", "--exec-id", "ok1", id, "/bin/echo", "fine"]);
    assert!(ok.status.success(), "exec: {}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "fine\n");
    let log = std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default();
    assert!(
        !log.contains("deadline exceeded"),
        "containerd timed out on the shim:\n{}",
        c.log_tail()
    );
}

/// A burst written right before a kill, while containerd's side (here
/// `ctr run`, whose own stdout nobody reads yet) has not read it all: the
/// FIFO still holds the tail of it when the container dies. ctr, like
/// CRI, closes its FIFOs as soon as it has handled the exit, so the shim
/// must not report the exit before the output was read.
#[test]
fn output_written_right_before_a_kill_is_all_delivered() {
    let Some(c) = containerd_for(
        "output_written_right_before_a_kill_is_all_delivered",
        "burst",
    ) else {
        return;
    };
    let id = "burst1";
    // 20000 lines are 108894 bytes: less than ctr's stdout pipe (64 KiB),
    // its copy buffer (32 KiB) and the FIFO (64 KiB) hold together, so the
    // burst completes although nobody reads; about 10 KiB stay in the FIFO.
    let script = "busybox seq 1 20000; busybox touch /tmp/burst-done; exec sleep 1000";
    let child = c.spawn_run(id, &["/bin/sh", "-c", script]);
    let marker = c.bundle(id).join("rootfs/tmp/burst-done");
    let mut done = false;
    for _ in 0..300 {
        if marker.exists() {
            done = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        done,
        "the burst never completed; containerd:\n{}",
        c.log_tail()
    );
    c.kill(id, "KILL");
    // Only now is ctr's output read.
    let out = killed_output(child);
    let got = text(&out.stdout);
    let lines: Vec<&str> = got.lines().collect();
    println!("burst: {} of 20000 lines delivered", lines.len());
    let want: Vec<String> = (1..=20000).map(|n| n.to_string()).collect();
    assert!(
        lines.len() == want.len() && lines.iter().zip(&want).all(|(a, b)| a == b),
        "{} of 20000 lines delivered, last {:?}",
        lines.len(),
        lines.last()
    );
}

/// Whether `pid` runs (not a zombie, which has closed its files).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// Host PID of the process whose command line ends with `last_arg`.
fn find_process(last_arg: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        (args.last() == Some(&last_arg.as_bytes())).then_some(pid)
    })
}

/// A container that shares another's PID namespace (a pod's, with
/// `shareProcessNamespace`) loses only its init to the kernel when killed;
/// its other processes would keep running, holding its output FIFOs, after
/// the exit was reported. Reported stopped, nothing of it may run.
#[test]
fn nothing_of_a_container_in_a_shared_pid_namespace_outlives_its_exit() {
    let Some(c) = containerd_for(
        "nothing_of_a_container_in_a_shared_pid_namespace_outlives_its_exit",
        "sharedpid",
    ) else {
        return;
    };
    c.run_detached("pidns-a", &[], &["/bin/sleep", "1000"]);
    let a_pid = c.task_pid("pidns-a");
    let ns = format!("pid:/proc/{a_pid}/ns/pid");
    // A duration no other process on the host sleeps for.
    let tag = (1_000_000 + std::process::id()).to_string();
    let script = format!("busybox sleep {tag} & exec sleep 1000");
    c.run_detached("pidns-b", &["--with-ns", &ns], &["/bin/sh", "-c", &script]);
    let mut child = None;
    for _ in 0..100 {
        child = find_process(&tag);
        if child.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let child = child.expect("the background process of pidns-b never appeared");
    c.kill("pidns-b", "KILL");
    assert!(
        c.wait_status("pidns-b", "STOPPED"),
        "pidns-b not stopped: {:?}",
        c.task_status("pidns-b")
    );
    let survived = alive(child);
    if survived {
        // Do not leave it behind.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        !survived,
        "pid {child} of pidns-b still runs after its exit was reported"
    );
    assert_eq!(c.task_status("pidns-a").as_deref(), Some("RUNNING"));
}

//! Through Debian's containerd 1.6, as containerd's own clients drive the
//! shim: an exec that cannot start.

mod support;

use std::time::Duration;

use support::{need, output_within, text, Containerd, IMAGE, RUNTIME};

/// `ctr run -d ... IMAGE ID ARGS...`, asserting it started.
fn run_detached(c: &Containerd, id: &str, args: &[&str]) {
    let mut a = vec!["run", "-d", "--runtime", RUNTIME, IMAGE, id];
    a.extend_from_slice(args);
    let out = c.ctr(&a);
    assert!(
        out.status.success(),
        "run -d {id}: {}\n{}",
        text(&out.stderr),
        c.log_tail()
    );
}

/// An exec whose program does not exist. containerd's CRI ExecSync, after
/// the failed Start, deletes the exec with `WithProcessKill` (Wait, kill,
/// wait for the exit, Delete) under a one-minute timeout; `ctr task delete
/// --force --exec-id` is the same call. The shim must answer all of it at
/// once for an exec that never ran.
#[test]
fn failed_exec_start_is_answered_and_cleaned_up_promptly() {
    if need("failed_exec_start_is_answered_and_cleaned_up_promptly").is_none() {
        return;
    }
    let c = Containerd::start("badexec");
    let id = "badexec1";
    run_detached(&c, id, &["/bin/sleep", "1000"]);
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

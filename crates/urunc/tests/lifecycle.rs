//! The container lifecycle through `urunc create/start/state/kill/delete`
//! on real QEMU with the tiny test kernel.

mod support;
use serde_json::json;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(60);

fn running(env: &Env, id: &str, extra: &[&str]) -> (Bundle, i32) {
    let b = tiny_bundle(&["app", "hang"]);
    let pid = env.create(&b.write(), id, extra);
    env.ok(&["start", id]);
    assert!(
        env.wait_out(id, "URUNC-TESTKERNEL hang", T),
        "guest did not boot: {}\n{}",
        env.out(id),
        env.err(id)
    );
    (b, pid)
}

#[test]
fn states_pid_exe_term_and_delete() {
    if !need_qemu("states_pid_exe_term_and_delete") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let b = tiny_bundle(&["app", "hang"]);
    let bundle = b.write();
    let pid = env.create(&bundle, "life1", &[]);
    let st = env.state("life1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], "life1");
    assert_eq!(
        st["bundle"].as_str().unwrap(),
        std::fs::canonicalize(&bundle).unwrap().to_str().unwrap()
    );
    // A second start-before-start attempt is refused; exec is refused.
    let o = env.urunc(&["exec", "life1", "sh"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unikernel"),
        "{}",
        text(&o)
    );
    env.ok(&["start", "life1"]);
    assert!(
        env.wait_out("life1", "URUNC-TESTKERNEL hang", T),
        "{}",
        env.out("life1")
    );
    assert_eq!(env.status("life1"), "running");
    // The container's process is the monitor itself.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().ends_with("qemu-system-x86_64"),
        "{exe:?}"
    );
    let o = env.urunc(&["start", "life1"]);
    assert!(!o.status.success(), "second start must fail");
    // ps lists the monitor.
    let o = env.ok(&["ps", "--format", "json", "life1"]);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    // delete without --force refuses a running container.
    let o = env.urunc(&["delete", "life1"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("running"),
        "{}",
        text(&o)
    );
    env.ok(&["kill", "life1", "TERM"]);
    let code = wait_exit(pid, T);
    // QEMU shuts the guest down on SIGTERM and exits 0.
    assert_eq!(code, Some(0));
    assert_eq!(env.status("life1"), "stopped");
    env.ok(&["delete", "life1"]);
    assert!(!env.state_dir("life1").exists());
    assert!(
        no_process_with(b.path().to_str().unwrap()),
        "a process still refers to the bundle"
    );
    let o = env.urunc(&["state", "life1"]);
    assert!(!o.status.success());
}

#[test]
fn kill_sigkill_gives_137_and_force_delete() {
    if !need_qemu("kill_sigkill_gives_137_and_force_delete") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let (_b, pid) = running(&env, "kill9", &[]);
    env.ok(&["kill", "kill9", "9"]);
    assert_eq!(wait_exit(pid, T), Some(137));
    env.ok(&["delete", "kill9"]);

    let (_b, pid) = running(&env, "force1", &[]);
    env.ok(&["delete", "--force", "force1"]);
    assert_eq!(wait_exit(pid, T), Some(137));
    assert!(!env.state_dir("force1").exists());
}

#[test]
fn delete_of_created_container_removes_waiting_process() {
    if !need_qemu("delete_of_created_container_removes_waiting_process") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let b = tiny_bundle(&["x"]);
    let pid = env.create(&b.write(), "c1", &[]);
    env.ok(&["delete", "c1"]);
    assert!(wait_exit(pid, T).is_some());
    assert!(!env.state_dir("c1").exists());
}

#[test]
fn pause_and_resume_freeze_the_monitor() {
    if !need_qemu("pause_and_resume_freeze_the_monitor") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let (_b, pid) = running(&env, "pz", &[]);
    env.ok(&["pause", "pz"]);
    assert_eq!(env.status("pz"), "paused");
    env.ok(&["resume", "pz"]);
    assert_eq!(env.status("pz"), "running");
    env.ok(&["delete", "--force", "pz"]);
    assert!(wait_exit(pid, T).is_some());
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    if !need_qemu("hooks_run_in_order_with_state_on_stdin") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    let log = env.dir.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"')\" >> {}", log.display())]});
    b.spec["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [hook("startContainer")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    let pid = env.create(&b.write(), "hk", &[]);
    env.ok(&["start", "hk"]);
    env.ok(&["kill", "hk", "KILL"]);
    assert_eq!(wait_exit(pid, T), Some(137));
    env.ok(&["delete", "hk"]);
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "createRuntime \"status\":\"creating\"",
            "createContainer \"status\":\"creating\"",
            "startContainer \"status\":\"creating\"",
            "poststart \"status\":\"running\"",
            "poststop \"status\":\"stopped\"",
        ]
    );
}

#[test]
fn hook_timeout_and_failure_fail_create_and_leave_nothing() {
    if !need_qemu("hook_timeout_and_failure_fail_create_and_leave_nothing") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    for (id, hook) in [
        (
            "hto",
            json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}),
        ),
        ("hfail", json!({"path": "/bin/false", "args": ["false"]})),
    ] {
        let mut b = tiny_bundle(&["x"]);
        b.spec["hooks"] = json!({"createRuntime": [hook]});
        let bundle = b.write();
        let o = env.urunc(&["create", "--bundle", &bundle, id]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{id}: {}", text(&o));
        assert!(err.contains("createRuntime hook"), "{id}: {err}");
        if id == "hto" {
            assert!(err.contains("timed out"), "{err}");
        }
        assert!(!env.state_dir(id).exists(), "{id}: state left behind");
        assert!(
            no_process_with(&bundle),
            "{id}: a waiting process was left behind"
        );
    }
}

#[test]
fn concurrent_create_of_one_id_exactly_one_wins() {
    if !need_qemu("concurrent_create_of_one_id_exactly_one_wins") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let b = tiny_bundle(&["x"]);
    let bundle = b.write();
    // stderr to files: the winner's container keeps its stdio open.
    let errs: Vec<_> = (0..4)
        .map(|i| env.dir.path().join(format!("same{i}.err")))
        .collect();
    let children: Vec<_> = errs
        .iter()
        .map(|e| {
            env.cmd()
                .args(["create", "--bundle", &bundle, "same"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(e).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<_> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| c.success()).count(),
        1,
        "exactly one create must succeed"
    );
    for (c, e) in codes.iter().zip(&errs) {
        if !c.success() {
            let err = std::fs::read_to_string(e).unwrap();
            assert!(err.contains("already exists"), "{err}");
        }
    }
    env.ok(&["delete", "same"]);
}

#[test]
fn console_socket_gets_a_pty_with_the_guest_console() {
    if !need_qemu("console_socket_gets_a_pty_with_the_guest_console") {
        return;
    }
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    b.spec["process"]["terminal"] = json!(true);
    let sock_path = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let pid = env.create(
        &b.write(),
        "tty1",
        &["--console-socket", sock_path.to_str().unwrap()],
    );
    let (conn, _) = listener.accept().unwrap();
    // Receive the pty master (SCM_RIGHTS).
    let mut buf = [0u8; 64];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    use std::os::fd::AsRawFd;
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            nix::sys::socket::ControlMessageOwned::ScmRights(f) => f.first().copied(),
            _ => None,
        })
        .expect("no fd received");
    // SAFETY: the fd was just received and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    env.ok(&["start", "tty1"]);
    let mut f = std::fs::File::from(master);
    let mut got = String::new();
    let deadline = std::time::Instant::now() + T;
    let mut chunk = [0u8; 4096];
    while !got.contains("URUNC-TESTKERNEL hang") && std::time::Instant::now() < deadline {
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
    assert!(got.contains("URUNC-TESTKERNEL cmdline: /run/urunc/boot/kernel app env.vars=[ PATH=/usr/bin:/bin ] -- hang"), "{got}");
    env.ok(&["delete", "--force", "tty1"]);
    assert!(wait_exit(pid, T).is_some());
}

#[test]
fn only_preserved_fds_reach_the_monitor() {
    if !need_qemu("only_preserved_fds_reach_the_monitor") {
        return;
    }
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    subreaper();
    let env = Env::new(TINY_CONFIG);
    for (id, preserve) in [("fd0", "0"), ("fd1", "1")] {
        let b = tiny_bundle(&["app", "hang"]);
        let bundle = b.write();
        let extra = std::fs::File::open("/dev/null").unwrap();
        let raw = extra.as_raw_fd();
        let pidfile = env.dir.path().join(format!("{id}.pid"));
        let mut cmd = env.cmd();
        cmd.args([
            "create",
            "--bundle",
            &bundle,
            "--preserve-fds",
            preserve,
            "--pid-file",
            pidfile.to_str().unwrap(),
            id,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(env.out_path(id)).unwrap())
        .stderr(std::process::Stdio::null());
        // SAFETY: dup2 in the child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself would keep close-on-exec.
                let r = if raw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        assert!(cmd.status().unwrap().success());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        env.ok(&["start", id]);
        assert!(env.wait_out(id, "URUNC-TESTKERNEL hang", T));
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let target = std::fs::read_link(format!("/proc/{pid}/fd/3")).ok();
        if preserve == "1" {
            assert_eq!(
                target.as_deref(),
                Some(std::path::Path::new("/dev/null")),
                "{fds:?}"
            );
        } else {
            // QEMU opens its own descriptors; none of them is our /dev/null at 3.
            assert_ne!(
                target.as_deref(),
                Some(std::path::Path::new("/dev/null")),
                "fd 3 leaked into the monitor: {fds:?}"
            );
        }
        env.ok(&["delete", "--force", id]);
        assert!(wait_exit(pid, T).is_some());
    }
}

#[test]
fn joins_namespaces_given_by_path() {
    if !need_qemu("joins_namespaces_given_by_path")
        || !need_bin("joins_namespaces_given_by_path", "unshare")
    {
        return;
    }
    subreaper();
    // A "pod" holding a PID, IPC and UTS namespace.
    let mut holder = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--ipc",
            "--uts",
            "--fork",
            "--kill-child",
            "sleep",
            "1000",
        ])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    let sleeper = loop {
        let kids = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            holder.id(),
            holder.id()
        ))
        .unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next() {
            break p.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "unshare did not fork");
        std::thread::sleep(Duration::from_millis(10));
    };
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    b.spec["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("/proc/{sleeper}/ns/pid")},
        {"type": "ipc", "path": format!("/proc/{sleeper}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{sleeper}/ns/uts")},
        {"type": "mount"},
        {"type": "network"},
    ]);
    let pid = env.create(&b.write(), "joiner", &[]);
    env.ok(&["start", "joiner"]);
    assert!(
        env.wait_out("joiner", "URUNC-TESTKERNEL hang", T),
        "{}",
        env.err("joiner")
    );
    for ns in ["pid", "ipc", "uts"] {
        let want = std::fs::read_link(format!("/proc/{sleeper}/ns/{ns}")).unwrap();
        let got = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(got, want, "{ns} namespace not joined");
    }
    // In the joined PID namespace the monitor is not its init (sleep is).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_ne!(nspid.split_whitespace().last(), Some("1"), "{nspid}");
    env.ok(&["delete", "--force", "joiner"]);
    assert_eq!(wait_exit(pid, T), Some(137));
    let _ = holder.kill();
    let _ = holder.wait();
}

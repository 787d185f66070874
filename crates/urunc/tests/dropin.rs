//! A drop-in for the Go urunc (issue 12): its config file as it is, a bad
//! config file that never stops ordinary containers, and runc receiving
//! config.json fields that urunc does not know, untouched.

mod support;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::*;

/// The Go urunc's `/etc/urunc/config.toml` (its documented keys), plus one
/// key that nobody knows.
const GO_CONFIG: &str = r#"[runtime]
libcontainer = false

[log]
level = "info"
syslog = false

[timestamps]
enabled = false
destination = "/var/log/urunc/timestamps.log"

[monitors.qemu]
default_memory_mb = 512
default_vcpus = 2
data_path = "/usr/share/qemu/"

[monitors.spt]
default_memory_mb = 48
default_vcpus = 1

[extra_binaries.virtiofsd]
path = "/usr/libexec/virtiofsd"
options = "--sandbox none"

[monitors.hvt]
no_such_key = 1
"#;

fn busybox_bundle(args: &[&str]) -> Option<Bundle> {
    let busybox = which("busybox")
        .or_else(|| Some("/bin/busybox".into()))
        .filter(|p| p.exists())?;
    let mut b = Bundle::new();
    b.add_file(&busybox, "/bin/busybox");
    for l in ["sh", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", b.rootfs().join("bin").join(l)).unwrap();
    }
    b.args(args);
    b.spec["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    b.write();
    Some(b)
}

fn ready(test: &str) -> bool {
    need_root(test)
        && need_bin(test, "runc")
        && (which("busybox").is_some() || Path::new("/bin/busybox").exists() || {
            println!("SKIP: {test}: busybox not found (install busybox-static)");
            false
        })
}

fn log_of(env: &Env) -> String {
    std::fs::read_to_string(&env.log).unwrap_or_default()
}

#[test]
fn go_urunc_config_file_is_accepted_and_unknown_keys_warn() {
    let t = "go_urunc_config_file_is_accepted_and_unknown_keys_warn";
    if !ready(t) {
        return;
    }
    let env = Env::new(GO_CONFIG);
    let b = busybox_bundle(&["/bin/sh", "-c", "echo delegated"]).unwrap();
    let o = env.urunc(&["run", "--bundle", &b.write(), "go-cfg"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "delegated\n");
    let o = env.ok(&["list", "--format", "json"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok());
    let log = log_of(&env);
    assert!(
        log.contains("line 26: unknown key `monitors.hvt.no_such_key` ignored")
            && log.contains("\"level\":\"warning\""),
        "{log}"
    );
    assert!(!log.contains("\"level\":\"error\""), "{log}");
}

#[test]
fn broken_config_file_still_delegates_ordinary_containers() {
    let t = "broken_config_file_still_delegates_ordinary_containers";
    if !ready(t) {
        return;
    }
    subreaper();
    let env = Env::new("[monitors.qemu]\ndefault_vcpus = \"two\"\n");
    let b = busybox_bundle(&["/bin/sh", "-c", "echo pause"]).unwrap();
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, "bad-cfg"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "pause\n");
    // create/state/delete of a runc container and list all work.
    env.create(&bundle, "bad-cfg2", &[]);
    assert_eq!(env.status("bad-cfg2"), "created");
    env.ok(&["list"]);
    env.ok(&["delete", "--force", "bad-cfg2"]);
    let log = log_of(&env);
    assert!(
        log.contains("line 2") && log.contains("using the built-in defaults"),
        "{log}"
    );
    // A unikernel is refused with the file's error, naming the line.
    let mut u = Bundle::new();
    std::fs::create_dir_all(u.rootfs().join("unikernel")).unwrap();
    std::fs::write(u.rootfs().join("unikernel/kernel"), b"k").unwrap();
    u.unikernel("unikraft", "qemu", "/unikernel/kernel");
    let err = env.create_fails(&u, "bad-cfg-uk");
    assert!(
        err.contains(env.config.to_str().unwrap()) && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn go_config_variable_is_honoured_and_ours_wins() {
    let t = "go_config_variable_is_honoured_and_ours_wins";
    if !need_root(t) {
        return;
    }
    let env = Env::new("");
    // Each config names a different fake delegate; `spec` goes to it.
    let mk = |name: &str| {
        let script = env.dir.path().join(name);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho {name} > {}/called\n",
                env.dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = env.dir.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, format!("delegate = {:?}\n", script.to_str().unwrap())).unwrap();
        cfg
    };
    let (go, ours) = (mk("go-delegate"), mk("our-delegate"));
    let called = || std::fs::read_to_string(env.dir.path().join("called")).unwrap_or_default();
    let run = |vars: &[(&str, &Path)]| {
        let mut c = std::process::Command::new(urunc_bin());
        c.env_remove("URUNC_CONFIG").env_remove("URUNC_CONFIG_FILE");
        for (k, v) in vars {
            c.env(k, v);
        }
        let o = c
            .args(["--root", env.root.to_str().unwrap(), "spec"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    run(&[("URUNC_CONFIG_FILE", &go)]);
    assert_eq!(called(), "go-delegate\n");
    run(&[("URUNC_CONFIG_FILE", &go), ("URUNC_CONFIG", &ours)]);
    assert_eq!(called(), "our-delegate\n");
}

/// runtime-tools' `process_capabilities_fail` case and a field from a newer
/// spec: urunc classifies the container without judging them, and runc gets
/// the bundle's config.json byte for byte.
#[test]
fn runc_receives_config_json_fields_urunc_does_not_know() {
    let t = "runc_receives_config_json_fields_urunc_does_not_know";
    if !ready(t) {
        return;
    }
    let env = Env::new("");
    let mut b = busybox_bundle(&["/bin/sh", "-c", "echo caps"]).unwrap();
    b.spec["process"]["capabilities"] = json!({
        "bounding": ["CAP_FOO", "CAP_KILL"],
        "effective": ["CAP_FOO"],
        "permitted": ["CAP_FOO"],
    });
    b.spec["someFieldFromTheFuture"] = json!({"nested": [1, "two", null]});
    let bundle = b.write();
    let sent = std::fs::read(b.path().join("config.json")).unwrap();
    // A delegate that keeps what it was given, then runs runc.
    let seen = env.dir.path().join("seen-config.json");
    let script = env.dir.path().join("recording-runc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncp {bundle}/config.json {}\nexec runc \"$@\"\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        &env.config,
        format!("delegate = {:?}\n", script.to_str().unwrap()),
    )
    .unwrap();
    let ours = env.urunc(&["run", "--bundle", &bundle, "caps-urunc"]);
    assert_eq!(
        std::fs::read(&seen).unwrap(),
        sent,
        "runc got a different config.json"
    );
    let theirs = std::process::Command::new("runc")
        .args([
            "--root",
            env.root.to_str().unwrap(),
            "run",
            "--bundle",
            &bundle,
            "caps-runc",
        ])
        .output()
        .unwrap();
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{}\n--- runc:\n{}",
        text(&ours),
        text(&theirs)
    );
    assert_eq!(ours.stdout, theirs.stdout);
    assert!(
        !String::from_utf8_lossy(&ours.stderr).contains("serde"),
        "{}",
        text(&ours)
    );

    // The same fields in a unikernel's config.json get the full parse: the
    // error names the field.
    let mut u = b;
    std::fs::create_dir_all(u.rootfs().join("unikernel")).unwrap();
    std::fs::write(u.rootfs().join("unikernel/kernel"), b"k").unwrap();
    u.unikernel("unikraft", "qemu", "/unikernel/kernel");
    let err = env.create_fails(&u, "caps-uk");
    assert!(
        err.contains("config.json: field process.capabilities.bounding[0]")
            && err.contains("CAP_FOO"),
        "{err}"
    );
}

/// Runs urunc as `nobody` (uid 65534) with `env`'s config and a state root
/// that nobody owns.
fn as_nobody(env: &Env, args: &[&str]) -> std::process::Output {
    as_nobody_to(
        env,
        args,
        std::process::Stdio::piped(),
        std::process::Stdio::piped(),
    )
}

/// The same with the given stdout and stderr (a created container keeps
/// them open, so `create` gets files, not pipes).
fn as_nobody_to(
    env: &Env,
    args: &[&str],
    out: std::process::Stdio,
    err: std::process::Stdio,
) -> std::process::Output {
    let state = env.dir.path().join("user-state");
    std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(urunc_bin())
        .args(["--root", state.to_str().unwrap()])
        .args(args)
        .env("URUNC_CONFIG", &env.config)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .output()
        .unwrap()
}

/// Rootless operation (the Go urunc's v0.8 feature), as an unprivileged
/// user with `urunc` directly on QEMU/TCG: create enters a user namespace
/// of its own (nobody = root inside), device nodes are bound, no cgroups;
/// run, and create/start/state/delete, work; `--rootless=false` is
/// refused with a clear message.
#[test]
fn rootless_unikernel_as_an_unprivileged_user() {
    let t = "rootless_unikernel_as_an_unprivileged_user";
    if !need_qemu(t) || !need_bin(t, "runuser") {
        return;
    }
    subreaper();
    let env = Env::new("[monitors.qemu]\naccel = \"tcg\"\nmachine = \"microvm\"\n");
    let b = tiny_bundle(&["hello", "rootless"]);
    let bundle = b.write();
    let state = env.dir.path().join("user-state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    for p in [env.dir.path(), b.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // run: the guest's console on stdout, its exit status ours.
    let o = as_nobody(&env, &["run", "--bundle", &bundle, "rl-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        // Rootless, no mount can be made for the kernel at create: QEMU
        // is given the descriptor create resolved (README "### Paths").
        out.contains("URUNC-TESTKERNEL cmdline: /proc/self/fd/")
            && out.contains(" hello ")
            && out.contains("-- rootless")
            && out.contains("URUNC-TESTKERNEL poweroff"),
        "{out}"
    );
    assert!(!state.join("rl-run").exists());

    // create / start / state / delete, the waiting process in its own user
    // namespace where nobody is root.
    let long = tiny_bundle(&["hello"]);
    let lb = long.write();
    std::fs::set_permissions(long.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pidfile = env.dir.path().join("rl.pid");
    std::fs::write(&pidfile, "").unwrap();
    std::os::unix::fs::chown(env.dir.path(), Some(65534), Some(65534)).unwrap();
    let log = env.dir.path().join("rl2.out");
    let f = || std::fs::File::create(&log).unwrap();
    let o = as_nobody_to(
        &env,
        &[
            "create",
            "--bundle",
            &lb,
            "--pid-file",
            pidfile.to_str().unwrap(),
            "rl2",
        ],
        f().into(),
        f().into(),
    );
    let created = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(o.status.success(), "{created}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"],
        "{uid_map}"
    );
    let o = as_nobody(&env, &["state", "rl2"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "created", "{}", text(&o));
    let o = as_nobody(&env, &["start", "rl2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        wait_exit(pid, std::time::Duration::from_secs(60)).is_some(),
        "the monitor did not finish"
    );
    let o = as_nobody(&env, &["delete", "rl2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!state.join("rl2").exists());

    // --rootless=false as an unprivileged user: a clear error, nothing left.
    let o = as_nobody(
        &env,
        &["--rootless=false", "create", "--bundle", &bundle, "rl3"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("need root, or rootless operation"), "{err}");
    assert!(!state.join("rl3").exists());
}

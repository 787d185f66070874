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

/// The Go urunc v0.8 runs rootless; this one does not yet. An unprivileged
/// user gets a clear error for a unikernel (not EPERM from an unshare),
/// and nothing is left behind.
#[test]
fn unikernel_as_an_unprivileged_user_is_refused_clearly() {
    let t = "unikernel_as_an_unprivileged_user_is_refused_clearly";
    if !need_root(t) || !need_bin(t, "runuser") {
        return;
    }
    let env = Env::new("");
    let mut u = Bundle::new();
    std::fs::create_dir_all(u.rootfs().join("unikernel")).unwrap();
    std::fs::write(u.rootfs().join("unikernel/kernel"), b"k").unwrap();
    u.unikernel("unikraft", "qemu", "/unikernel/kernel");
    let bundle = u.write();
    let state = env.dir.path().join("user-state");
    for p in [env.dir.path(), u.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(urunc_bin())
        .args([
            "--root",
            state.to_str().unwrap(),
            "create",
            "--bundle",
            &bundle,
            "rl1",
        ])
        .env("URUNC_CONFIG", &env.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("unikernel containers need root") && err.contains("rootless"),
        "{err}"
    );
    assert!(!state.join("rl1").exists());
}

//! Bad input: a clear error naming the input, a non-zero exit, and nothing
//! left behind (no state directory, no process).

mod support;
use support::*;

fn tiny(ty: &str, hv: &str, binary: &str) -> Bundle {
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("testkernel.elf"), "/unikernel/kernel")
        .unikernel(ty, hv, binary)
        .args(&["x"]);
    b
}

#[test]
fn metadata_errors_name_the_key() {
    if !need_qemu("metadata_errors_name_the_key") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let cases: Vec<(&str, Bundle, &[&str])> = vec![
        (
            "unknown-fw",
            tiny("unikraftt", "qemu", "/unikernel/kernel"),
            &[
                "com.urunc.unikernel.unikernelType",
                "\"unikraftt\" is not a known framework",
            ],
        ),
        (
            "unknown-mon",
            tiny("unikraft", "qemuu", "/unikernel/kernel"),
            &[
                "com.urunc.unikernel.hypervisor",
                "\"qemuu\" is not a known monitor",
            ],
        ),
        (
            "bad-pair",
            tiny("rumprun", "qemu", "/unikernel/kernel"),
            &[
                "com.urunc.unikernel.hypervisor",
                "rumprun cannot run on qemu",
            ],
        ),
        (
            "no-kernel",
            tiny("unikraft", "qemu", "/unikernel/nope"),
            &["com.urunc.unikernel.binary", "does not exist in the rootfs"],
        ),
        (
            "escape",
            tiny("unikraft", "qemu", "../../etc/passwd"),
            &["com.urunc.unikernel.binary", "escapes the rootfs"],
        ),
        (
            "no-type",
            {
                let mut b = Bundle::new();
                b.annotate("com.urunc.unikernel.hypervisor", "qemu");
                b
            },
            &["com.urunc.unikernel.unikernelType", "missing"],
        ),
    ];
    for (id, b, needles) in cases {
        let err = env.create_fails(&b, id);
        for n in needles {
            assert!(err.contains(n), "{id}: {n:?} not in: {err}");
        }
    }
}

#[test]
fn symlink_out_of_the_rootfs_is_refused() {
    if !need_qemu("symlink_out_of_the_rootfs_is_refused") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let b = tiny("unikraft", "qemu", "/unikernel/link");
    std::os::unix::fs::symlink(
        "../../../../../../../../usr/bin/qemu-system-x86_64",
        b.rootfs().join("unikernel/link"),
    )
    .unwrap();
    let err = env.create_fails(&b, "symlink-out");
    assert!(
        err.contains("com.urunc.unikernel.binary") && err.contains("escapes the rootfs"),
        "{err}"
    );
    // An absolute link resolves inside the rootfs, where /etc/passwd is absent.
    let b = tiny("unikraft", "qemu", "/unikernel/abs");
    std::os::unix::fs::symlink("/etc/passwd", b.rootfs().join("unikernel/abs")).unwrap();
    let err = env.create_fails(&b, "symlink-abs");
    assert!(err.contains("does not exist in the rootfs"), "{err}");
}

#[test]
fn malformed_base64_in_urunc_json_is_explained() {
    if !need_qemu("malformed_base64_in_urunc_json_is_explained") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("testkernel.elf"), "/unikernel/kernel");
    // "unikraft" with its padding/last characters cut off.
    std::fs::write(
        b.rootfs().join("urunc.json"),
        r#"{"com.urunc.unikernel.unikernelType":"dW5pa3JhZn","com.urunc.unikernel.hypervisor":"cWVtdQ==","com.urunc.unikernel.binary":"L3VuaWtlcm5lbC9rZXJuZWw="}"#,
    )
    .unwrap();
    let err = env.create_fails(&b, "b64");
    assert!(
        err.contains("com.urunc.unikernel.unikernelType") && err.contains("looks like base64"),
        "{err}"
    );
    std::fs::write(b.rootfs().join("urunc.json"), "{not json").unwrap();
    let err = env.create_fails(&b, "badjson");
    assert!(err.contains("urunc.json"), "{err}");
}

#[test]
fn base64_hint_only_when_the_value_was_read_as_text() {
    if !need_qemu("base64_hint_only_when_the_value_was_read_as_text") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let mut b = Bundle::new();
    b.add_file(&fixtures().join("testkernel.elf"), "/unikernel/kernel");
    // Valid base64 of "/unikernel/missing": decoded, so no hint.
    b.unikernel("unikraft", "qemu", "L3VuaWtlcm5lbC9taXNzaW5n");
    let err = env.create_fails(&b, "b64ok");
    assert!(
        err.contains(r#""/unikernel/missing" does not exist in the rootfs"#)
            && !err.contains("base64"),
        "{err}"
    );
    // The same with its last character cut off: read as text, and the
    // hint says what it nearly decodes to.
    b.unikernel("unikraft", "qemu", "L3VuaWtlcm5lbC9taXNzaW5");
    let err = env.create_fails(&b, "b64cut");
    assert!(
        err.contains(r#"looks like base64 of "/unikernel/missin""#),
        "{err}"
    );
    // A plain path gets none.
    b.unikernel("unikraft", "qemu", "/unikernel/missing");
    let err = env.create_fails(&b, "b64plain");
    assert!(
        err.contains("does not exist in the rootfs") && !err.contains("base64"),
        "{err}"
    );
}

#[test]
fn broken_bundle_and_config_and_missing_monitor() {
    if !need_qemu("broken_bundle_and_config_and_missing_monitor") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    // config.json that does not parse.
    let b = tiny("unikraft", "qemu", "/unikernel/kernel");
    let bundle = b.write();
    std::fs::write(b.path().join("config.json"), "{\"ociVersion\": ").unwrap();
    let o = env.urunc(&["create", "--bundle", &bundle, "badspec"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("config.json"),
        "{}",
        text(&o)
    );
    assert!(!env.state_dir("badspec").exists());
    // A missing bundle.
    let o = env.urunc(&["create", "--bundle", "/nonexistent/bundle", "nob"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("/nonexistent/bundle"),
        "{}",
        text(&o)
    );
    // Broken config file: named with its line (an unknown key would only
    // be a warning; a value of the wrong type is an error).
    let env2 = Env::new("[monitors.qemu]\naccel = \"kvm\"\ndefault_vcpus = \"two\"\n");
    let b = tiny("unikraft", "qemu", "/unikernel/kernel");
    let o = env2.urunc(&["create", "--bundle", &b.write(), "badcfg"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("config.toml") && err.contains("line 3"),
        "{err}"
    );
    // Missing QEMU: not in $PATH, and a configured path that is not there.
    let b = tiny("unikraft", "qemu", "/unikernel/kernel");
    let bundle = b.write();
    let o = env
        .cmd()
        .env("PATH", "/nonexistent")
        .args(["create", "--bundle", &bundle, "noqemu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("qemu-system-x86_64 not found in $PATH"),
        "{err}"
    );
    assert!(!env.state_dir("noqemu").exists());
    let env3 = Env::new("[monitors.qemu]\npath = \"/opt/none/qemu\"\n");
    let o = env3.urunc(&["create", "--bundle", &bundle, "noqemu2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/opt/none/qemu"),
        "{err}"
    );
}

#[test]
fn memory_below_guest_minimum_and_bad_ids() {
    if !need_qemu("memory_below_guest_minimum_and_bad_ids") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny("mewz", "qemu", "/unikernel/kernel");
    b.memory_mib(256);
    let err = env.create_fails(&b, "mewz-small");
    assert!(err.contains("256 MiB") && err.contains("512 MiB"), "{err}");
    let b = tiny("unikraft", "qemu", "/unikernel/kernel");
    let o = env.urunc(&["create", "--bundle", &b.write(), "../escape"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("container id"),
        "{}",
        text(&o)
    );
    // Commands on a container that does not exist go to the delegate, which
    // reports it.
    let o = env.urunc(&["state", "nosuch"]);
    assert!(!o.status.success());
}

/// Advisory regression (the Go urunc's 2026 host-file path traversal
/// through annotations), through the CLI: for every monitor, every
/// metadata key that names a file (`binary`, `initrd`, `block`), in plain
/// text and base64, `..` and symlinks out of the rootfs are refused at
/// create, naming the key, with nothing left behind. No monitor is needed:
/// paths are resolved before anything monitor-specific.
#[test]
fn advisory_path_traversal_through_annotations_every_monitor() {
    use base64::Engine;
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let env = Env::new("");
    let pairs = [
        ("qemu", "unikraft"),
        ("firecracker", "linux"),
        ("clh", "linux"),
        ("hvt", "rumprun"),
        ("spt", "mirage"),
    ];
    let keys = [
        "com.urunc.unikernel.binary",
        "com.urunc.unikernel.initrd",
        "com.urunc.unikernel.block",
    ];
    let mut n = 0;
    for (mon, fw) in pairs {
        for key in keys {
            for (value, b64) in [
                ("../../../../etc/shadow", false),
                ("/up/shadow", false),
                ("../../../../etc/shadow", true),
            ] {
                let mut b = Bundle::new();
                std::fs::create_dir_all(b.rootfs().join("unikernel")).unwrap();
                std::fs::write(b.rootfs().join("unikernel/kernel"), b"k").unwrap();
                std::os::unix::fs::symlink("../../../../../../../../etc", b.rootfs().join("up"))
                    .unwrap();
                b.unikernel(fw, mon, "/unikernel/kernel");
                b.annotate(key, &if b64 { enc(value) } else { value.to_string() });
                n += 1;
                let err = env.create_fails(&b, &format!("trav{n}"));
                assert!(
                    err.contains(key) && err.contains("escapes the rootfs"),
                    "{mon} {key}={value} (base64: {b64}): {err}"
                );
            }
        }
    }
}

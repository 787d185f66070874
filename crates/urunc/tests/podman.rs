//! podman runs a packed unikernel image with `--runtime` pointing at urunc
//! (conmon drives urunc's runc-compatible CLI).

mod support;
use support::*;

fn urunc_pack() -> std::path::PathBuf {
    let bin = urunc_bin().with_file_name("urunc-pack");
    if !bin.exists() {
        let st = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "urunc-pack"])
            .current_dir(repo_root())
            .status()
            .unwrap();
        assert!(st.success(), "building urunc-pack");
    }
    bin
}

#[test]
fn podman_runs_a_packed_unikernel_through_urunc() {
    let t = "podman_runs_a_packed_unikernel_through_urunc";
    if !need_qemu(t) || !need_bin(t, "podman") || !need_bin(t, "conmon") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let d = env.dir.path();
    let tar = d.join("tiny.tar");
    let o = std::process::Command::new(urunc_pack())
        .arg("--kernel")
        .arg(fixtures().join("testkernel.elf"))
        .args([
            "--unikernel-type",
            "unikraft",
            "--hypervisor",
            "qemu",
            "--ref",
            "localhost/urunc-podman-test:latest",
            "-o",
        ])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let conf = d.join("containers.conf");
    // This host lacks CAP_SYS_RESOURCE: podman's default ulimits cannot be set.
    std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n").unwrap();
    let podman = |args: &[&str]| {
        std::process::Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .env("URUNC_CONFIG", &env.config)
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = podman(&["load", "-i", tar.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let urunc = urunc_bin();
    let o = podman(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--runtime",
        urunc.to_str().unwrap(),
        "localhost/urunc-podman-test:latest",
        "hello",
        "podman",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let line = marker_lines(&out, "URUNC-TESTKERNEL cmdline:");
    assert_eq!(line.len(), 1, "{}", text(&o));
    assert!(
        line[0].starts_with("URUNC-TESTKERNEL cmdline: /run/urunc/boot/kernel hello env.vars=[")
            && line[0].ends_with("] -- podman"),
        "{line:?}"
    );
    assert!(line[0].contains("container=podman"), "{line:?}");
    let o = podman(&["ps", "-a", "--format", "{{.ID}}"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).trim().is_empty(),
        "containers left: {}",
        text(&o)
    );
    let _ = podman(&["system", "reset", "--force"]);
    // Podman's storage under the temp dir uses mounts on some drivers.
    let _ = std::process::Command::new("umount")
        .arg("-R")
        .arg(d.join("storage"))
        .output();
}

//! The archive as real engines see it: skopeo, podman, containerd (`ctr`).
//! Each test prints `SKIP: <test>: <reason>` and returns when its tool is
//! missing.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::archive::{pack_ok, Image};
use support::containerd::{which, Containerd, ContainerdOptions};

/// The OCI name of the host architecture, so that engines that filter by
/// platform (ctr import) take the image.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Packs a small image; returns (tempdir, archive path, manifest digest).
fn packed(reference: &str) -> (tempfile::TempDir, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    let kernel = t.path().join("hello_mirage.hvt");
    fs::write(&kernel, b"\x7fELF not really a kernel").unwrap();
    let files = t.path().join("files");
    fs::create_dir_all(files.join("etc")).unwrap();
    fs::write(files.join("etc/app.conf"), b"port=80\n").unwrap();
    let out = t.path().join("img.tar");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let digest = pack_ok(&[
        "--kernel",
        &p(&kernel),
        "--unikernel-type",
        "mirage",
        "--hypervisor",
        "hvt",
        "--cmdline",
        "--hello=world",
        "--files",
        &p(&files),
        "--annotation",
        "org.example.owner=tests",
        "--ref",
        reference,
        "--arch",
        host_arch(),
        "-o",
        &p(&out),
    ]);
    (t, out, digest)
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_plain_labels(labels: &Value) {
    assert_eq!(
        labels["com.urunc.unikernel.unikernelType"], "mirage",
        "{labels}"
    );
    assert_eq!(labels["com.urunc.unikernel.hypervisor"], "hvt");
    assert_eq!(
        labels["com.urunc.unikernel.binary"],
        "/unikernel/hello_mirage.hvt"
    );
    assert_eq!(labels["com.urunc.unikernel.cmdline"], "--hello=world");
    assert_eq!(labels["org.example.owner"], "tests");
}

#[test]
fn skopeo_reads_the_archive() {
    if which("skopeo").is_none() {
        println!("SKIP: skopeo_reads_the_archive: skopeo not found on PATH");
        return;
    }
    let (t, out, digest) = packed("localhost/pack-test/skopeo:v2");
    // skopeo extracts oci-archives under TMPDIR; keep that in our temp dir.
    let tmp = t.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let skopeo = |args: &[&str]| {
        Command::new("skopeo")
            .env("TMPDIR", &tmp)
            .args(args)
            .output()
            .expect("running skopeo")
    };
    let src = format!("oci-archive:{}", out.display());
    let o = skopeo(&["inspect", &src]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Architecture"], host_arch());
    assert_eq!(v["Os"], "linux");
    assert_plain_labels(&v["Labels"]);

    // Selecting the image by its ref.name (the tag) works too.
    let o = skopeo(&["inspect", "--raw", &format!("{src}:v2")]);
    assert!(o.status.success(), "{}", text(&o));
    let img = Image::read(&out);
    assert_eq!(o.stdout, img.manifest_raw, "raw manifest = the blob");

    let o = skopeo(&["inspect", "--config", "--raw", &src]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cfg, img.config);
}

/// Removes, after the test, the global podman state dirs that the test
/// created (podman 4.3 writes a blob-info cache and a network run dir
/// outside `--root`/`--runroot`); dirs that existed before are left alone.
struct GlobalDirs(Vec<PathBuf>);

impl GlobalDirs {
    fn absent_now(paths: &[&str]) -> GlobalDirs {
        GlobalDirs(
            paths
                .iter()
                .map(PathBuf::from)
                .filter(|p| !p.exists())
                .collect(),
        )
    }
}

impl Drop for GlobalDirs {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

#[test]
fn podman_loads_the_archive() {
    if which("podman").is_none() {
        println!("SKIP: podman_loads_the_archive: podman not found on PATH");
        return;
    }
    let (t, out, digest) = packed("pack-test/podman");
    let _cleanup = GlobalDirs::absent_now(&["/var/lib/containers", "/run/containers"]);
    let d = t.path().join("podman");
    fs::create_dir(&d).unwrap();
    let conf = d.join("containers.conf");
    // The host lacks CAP_SYS_RESOURCE: podman's default ulimits fail there.
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n",
    )
    .unwrap();
    let tmp = d.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let podman = |args: &[&str]| {
        Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .env("TMPDIR", &tmp)
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("libpod"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args)
            .output()
            .expect("running podman")
    };
    let o = podman(&["load", "-i", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let name = "docker.io/pack-test/podman:latest";
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(name),
        "{}",
        text(&o)
    );
    let o = podman(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]);
    assert!(o.status.success(), "{}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains(&format!("{name} {digest}")),
        "{}",
        text(&o)
    );
    let o = podman(&["image", "inspect", name]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_plain_labels(&v[0]["Labels"]);
    assert_plain_labels(&v[0]["Annotations"]);
    assert_eq!(v[0]["Digest"], digest.as_str());
    let o = podman(&["rmi", "-a", "-f"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn ctr_imports_the_archive() {
    let Some(ctrd) =
        Containerd::start_or_skip("ctr_imports_the_archive", ContainerdOptions::default())
    else {
        return;
    };
    let (_t, out, digest) = packed("registry.example.org:5000/urunc/pack-test:ctr");
    let o = ctrd.ctr(&["image", "import", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", ctrd.describe(&o));
    let name = "registry.example.org:5000/urunc/pack-test:ctr";
    let o = ctrd.ctr(&["image", "ls"]);
    assert!(o.status.success(), "{}", ctrd.describe(&o));
    let ls = String::from_utf8_lossy(&o.stdout).to_string();
    let line = ls
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{ls}"));
    assert!(line.contains(&digest), "{line}");
    assert!(line.contains(&format!("linux/{}", host_arch())), "{line}");

    // Unpacked into the overlayfs snapshotter: one layer, so the snapshot
    // key (chain id) is the diff id; the rootfs holds urunc.json.
    let img = Image::read(&out);
    let diff_id = img.config["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let o = ctrd.ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"]);
    assert!(o.status.success(), "{}", ctrd.describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&diff_id),
        "{}",
        ctrd.describe(&o)
    );
    let snaps = ctrd
        .root
        .join("io.containerd.snapshotter.v1.overlayfs/snapshots");
    let found: Vec<Vec<u8>> = fs::read_dir(&snaps)
        .unwrap()
        .filter_map(|e| fs::read(e.unwrap().path().join("fs/urunc.json")).ok())
        .collect();
    assert_eq!(found.len(), 1, "one unpacked snapshot with urunc.json");
    assert_eq!(found[0], img.layer_entry("urunc.json").data);
    ctrd.stop();
}

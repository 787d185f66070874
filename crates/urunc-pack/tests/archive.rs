//! The archive `urunc-pack` writes: structure, metadata, determinism and
//! input validation, read back with our own parser.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::json;
use support::archive::{pack_ok, run_pack, sha256, Image};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn fake_kernel(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&p, data).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn golden_structure_and_metadata() {
    let t = tempfile::tempdir().unwrap();
    let kernel = fake_kernel(t.path(), "app_qemu-x86_64");
    let initrd = t.path().join("rootfs.cpio");
    fs::write(&initrd, b"initrd bytes").unwrap();
    let out = t.path().join("img.tar");
    let digest = pack_ok(&[
        "--kernel",
        s(&kernel),
        "--unikernel-type",
        "unikraft",
        "--hypervisor",
        "qemu",
        "--cmdline",
        "/app --port=80 -v",
        "--initrd",
        s(&initrd),
        "--unikernel-version",
        "0.15.0",
        "--mount-rootfs",
        "--annotation",
        "org.example.team=infra",
        "--ref",
        "urunc/app:v1",
        "-o",
        s(&out),
    ]);
    let img = Image::read(&out);

    // Outer archive: exact entry list, every blob named by its digest.
    let names: Vec<&str> = img.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names[0], "blobs/");
    assert_eq!(names[1], "blobs/sha256/");
    assert_eq!(&names[names.len() - 2..], ["index.json", "oci-layout"]);
    assert_eq!(names.len(), 7, "{names:?}");
    for e in &img.entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.name);
        if let Some(hex) = e.name.strip_prefix("blobs/sha256/") {
            if !hex.is_empty() {
                assert_eq!(sha256(&e.data), format!("sha256:{hex}"), "blob {}", e.name);
            }
        }
    }
    assert_eq!(
        img.files["oci-layout"],
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
    );

    // Index: one manifest, named for containerd/podman and by tag for OCI.
    assert_eq!(img.index["schemaVersion"], 2);
    assert_eq!(
        img.index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = img.index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let d = &manifests[0];
    assert_eq!(d["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(d["digest"], digest.as_str(), "stdout digest = index digest");
    assert_eq!(d["size"], img.manifest_raw.len());
    assert_eq!(sha256(&img.manifest_raw), digest);
    assert_eq!(
        d["annotations"],
        json!({
            "io.containerd.image.name": "docker.io/urunc/app:v1",
            "org.opencontainers.image.ref.name": "v1"
        })
    );
    assert_eq!(
        d["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );

    // Manifest.
    let m = &img.manifest;
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(layers[0]["size"], img.layer_gz.len());
    assert_eq!(layers[0]["digest"], sha256(&img.layer_gz).as_str());
    let plain = json!({
        "com.urunc.unikernel.unikernelType": "unikraft",
        "com.urunc.unikernel.hypervisor": "qemu",
        "com.urunc.unikernel.binary": "/unikernel/app_qemu-x86_64",
        "com.urunc.unikernel.cmdline": "/app --port=80 -v",
        "com.urunc.unikernel.initrd": "/unikernel/rootfs.cpio",
        "com.urunc.unikernel.unikernelVersion": "0.15.0",
        "com.urunc.unikernel.mountRootfs": "true",
        "org.example.team": "infra"
    });
    assert_eq!(m["annotations"], plain, "manifest annotations are plain");

    // Config.
    let c = &img.config;
    assert_eq!(c["architecture"], "amd64");
    assert_eq!(c["os"], "linux");
    assert_eq!(c["created"], "1970-01-01T00:00:00Z");
    assert_eq!(c["config"]["Labels"], plain, "labels are plain");
    assert_eq!(c["rootfs"]["type"], "layers");
    assert_eq!(c["rootfs"]["diff_ids"], json!([sha256(&img.layer_tar)]));

    // gzip header: no mtime, no file name.
    assert_eq!(&img.layer_gz[..4], &[0x1f, 0x8b, 0x08, 0x00]);
    assert_eq!(&img.layer_gz[4..8], &[0, 0, 0, 0]);

    // Layer: sorted, owners/times zeroed, modes fixed, contents intact.
    assert_eq!(
        img.layer_names(),
        [
            "unikernel/",
            "unikernel/app_qemu-x86_64",
            "unikernel/rootfs.cpio",
            "urunc.json"
        ]
    );
    for e in &img.layer {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.name);
        let want = if e.kind.is_dir() { 0o755 } else { 0o644 };
        assert_eq!(e.mode, want, "{}", e.name);
    }
    assert_eq!(
        img.layer_entry("unikernel/app_qemu-x86_64").data,
        fs::read(&kernel).unwrap()
    );
    assert_eq!(
        img.layer_entry("unikernel/rootfs.cpio").data,
        b"initrd bytes"
    );

    // urunc.json: same keys, base64 (standard, padded) values.
    let uj = img.urunc_json();
    let expected: BTreeMap<String, String> = plain
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("com.urunc.unikernel."))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        uj.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in &uj {
        let decoded = String::from_utf8(B64.decode(v).unwrap()).unwrap();
        assert_eq!(&decoded, &expected[k], "{k}");
    }
    assert_eq!(uj["com.urunc.unikernel.hypervisor"], "cWVtdQ==");
}

#[test]
fn default_name_files_dir_block_and_flags() {
    let t = tempfile::tempdir().unwrap();
    let kernel = fake_kernel(t.path(), "Hello.HVT");
    let block = t.path().join("data.img");
    fs::write(&block, vec![0u8; 4096]).unwrap();
    let files = t.path().join("files");
    fs::create_dir_all(files.join("etc/deep/er")).unwrap();
    fs::write(files.join("etc/deep/er/x.conf"), b"x").unwrap();
    let script = files.join("run.sh");
    fs::write(&script, b"#!/bin/sh\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::os::unix::fs::symlink("etc/deep/er/x.conf", files.join("link")).unwrap();
    let long = "d".repeat(120);
    fs::create_dir(files.join(&long)).unwrap();
    fs::write(files.join(&long).join("f"), b"long").unwrap();
    let out = t.path().join("o.tar");
    pack_ok(&[
        "--kernel",
        s(&kernel),
        "--unikernel-type",
        "rumprun",
        "--hypervisor",
        "hvt",
        "--block",
        s(&block),
        "--blk-mnt-point",
        "/data",
        "--use-dm-block",
        "--files",
        s(&files),
        "--port",
        "8080",
        "--port",
        "53/udp",
        "-o",
        s(&out),
    ]);
    let img = Image::read(&out);
    // --port: the image config's ExposedPorts and urunc's shared-mode ports.
    assert_eq!(
        img.config["config"]["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(
        img.index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "localhost/hello-hvt:latest"
    );
    assert_eq!(
        img.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let names = img.layer_names();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(names, sorted, "layer entries sorted by path");
    for want in [
        "etc/",
        "etc/deep/",
        "etc/deep/er/",
        "etc/deep/er/x.conf",
        "link",
        "run.sh",
        "unikernel/",
        "unikernel/Hello.HVT",
        "unikernel/data.img",
        "urunc.json",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert_eq!(img.layer_entry("run.sh").mode, 0o755, "exec bit kept");
    assert_eq!(img.layer_entry("etc/deep/er/x.conf").mode, 0o644);
    let link = img.layer_entry("link");
    assert!(link.kind.is_symlink());
    assert_eq!(link.link.as_deref(), Some("etc/deep/er/x.conf"));
    assert_eq!(img.layer_entry(&format!("{long}/f")).data, b"long");
    let uj = img.urunc_json();
    let dec = |k: &str| String::from_utf8(B64.decode(&uj[k]).unwrap()).unwrap();
    assert_eq!(dec("com.urunc.unikernel.block"), "/unikernel/data.img");
    assert_eq!(dec("com.urunc.unikernel.blkMntPoint"), "/data");
    assert_eq!(dec("com.urunc.unikernel.useDMBlock"), "true");
    assert_eq!(dec("com.urunc.unikernel.binary"), "/unikernel/Hello.HVT");
    assert!(
        !uj.contains_key("com.urunc.unikernel.cmdline"),
        "unset keys absent"
    );
    assert!(!uj.contains_key("com.urunc.unikernel.mountRootfs"));
    assert_eq!(dec("com.urunc.network.ports"), "8080/tcp,53/udp");
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn same_inputs_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let kernel = fake_kernel(t.path(), "k.fc");
    // Two --files trees with the same content, created in opposite orders.
    let mk = |name: &str, order: &[&str]| {
        let d = t.path().join(name);
        fs::create_dir(&d).unwrap();
        for f in order {
            fs::write(d.join(f), f.as_bytes()).unwrap();
        }
        d
    };
    let fa = mk("fa", &["a", "b", "c", "zz", "m"]);
    let fb = mk("fb", &["m", "zz", "c", "b", "a"]);
    let args = |files: &Path, out: &Path| -> Vec<String> {
        [
            "--kernel",
            s(&kernel),
            "--unikernel-type",
            "linux",
            "--hypervisor",
            "firecracker",
            "--cmdline",
            "/bin/sh",
            "--files",
            s(files),
            "--ref",
            "localhost/k:1",
            "-o",
            s(out),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let out1 = t.path().join("one.tar");
    let a1 = args(&fa, &out1);
    let d1 = pack_ok(&a1.iter().map(String::as_str).collect::<Vec<_>>());

    let later = SystemTime::now() + Duration::from_secs(3600 * 24 * 400);
    set_mtime(&kernel, later);
    for f in ["a", "b", "c", "zz", "m"] {
        set_mtime(&fb.join(f), later);
    }
    let out2 = t.path().join("two.tar");
    let a2 = args(&fb, &out2);
    let d2 = pack_ok(&a2.iter().map(String::as_str).collect::<Vec<_>>());

    assert_eq!(d1, d2, "manifest digest");
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");
    assert!(
        fs::read(&out1).unwrap() == fs::read(&out2).unwrap(),
        "archives differ"
    );

    // A change of content changes the digest (the test can fail).
    fs::write(fb.join("m"), b"changed").unwrap();
    let out3 = t.path().join("three.tar");
    let a3 = args(&fb, &out3);
    let d3 = pack_ok(&a3.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(d1, d3);
}

/// Runs a failing pack; checks the exit status, that stderr has every
/// needle, and that nothing was left in `dir` besides `keep`.
fn expect_failure(dir: &Path, args: &[&str], needles: &[&str], keep: &[&str]) {
    let out = run_pack(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let mut left: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut keep: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    keep.sort();
    assert_eq!(left, keep, "{args:?} left files behind");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let kernel = fake_kernel(d, "kern");
    fs::write(d.join("init.cpio"), b"x").unwrap();
    fs::create_dir(d.join("files")).unwrap();
    fs::write(d.join("files/urunc.json"), b"{}").unwrap();
    fs::create_dir(d.join("files2")).unwrap();
    fs::create_dir(d.join("files2/unikernel")).unwrap();
    fs::write(d.join("files2/unikernel/kern"), b"dup").unwrap();
    let (files1, files2) = (d.join("files"), d.join("files2"));
    let keep = ["kern", "init.cpio", "files", "files2"];
    let out = d.join("out.tar");
    let (k, o) = (s(&kernel), s(&out));
    let missing = d.join("nope");
    let base = |ty: &'static str, hv: &'static str| {
        vec![
            "--kernel",
            k,
            "--unikernel-type",
            ty,
            "--hypervisor",
            hv,
            "-o",
            o,
        ]
    };

    let mut a = base("unikraft", "qemu");
    a[1] = s(&missing);
    expect_failure(d, &a, &["--kernel", "nope", "no such file"], &keep);

    let mut a = base("unikraft", "qemu");
    a[1] = s(d);
    expect_failure(d, &a, &["--kernel", "not a regular file"], &keep);

    expect_failure(
        d,
        &base("osv", "qemu"),
        &["--unikernel-type", "unknown framework \"osv\"", "unikraft"],
        &keep,
    );
    expect_failure(
        d,
        &base("unikraft", "kvm"),
        &["--hypervisor", "unknown monitor \"kvm\""],
        &keep,
    );
    expect_failure(
        d,
        &base("rumprun", "qemu"),
        &["--hypervisor", "rumprun cannot run on qemu", "hvt, spt"],
        &keep,
    );
    expect_failure(
        d,
        &base("mewz", "firecracker"),
        &["mewz cannot run on firecracker"],
        &keep,
    );
    expect_failure(
        d,
        &base("unikraft", "hvt"),
        &["unikraft cannot run on hvt"],
        &keep,
    );

    let mut a = base("unikraft", "qemu");
    a.extend(["--ref", "Bad/Name"]);
    expect_failure(d, &a, &["--ref", "invalid name component"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--annotation", "novalue"]);
    expect_failure(d, &a, &["--annotation", "expected KEY=VALUE"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--annotation", "com.urunc.unikernel.binary=/x"]);
    expect_failure(d, &a, &["--annotation", "set by the packer"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--port", "80/sctp"]);
    expect_failure(d, &a, &["--port", "sctp"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--port", "80", "--port", "80/tcp"]);
    expect_failure(d, &a, &["--port", "80/tcp", "twice"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--cmdline", ""]);
    expect_failure(d, &a, &["--cmdline", "empty value"], &keep);

    let initrd_same_name = d.join("files2/unikernel/kern");
    let mut a = base("unikraft", "qemu");
    a.extend(["--initrd", s(&initrd_same_name)]);
    expect_failure(d, &a, &["--initrd", "/unikernel/kern", "--kernel"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--files", s(&files1)]);
    expect_failure(d, &a, &["--files", "urunc.json"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--files", s(&files2)]);
    expect_failure(d, &a, &["--files", "/unikernel/kern"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--files", k]);
    expect_failure(d, &a, &["--files", "not a directory"], &keep);

    let mut a = base("unikraft", "qemu");
    a.extend(["--block", s(&missing)]);
    expect_failure(d, &a, &["--block", "no such file"], &keep);

    let mut a = base("unikraft", "qemu");
    a[7] = s(d);
    expect_failure(d, &a, &["--output", "is a directory"], &keep);

    let no_dir = d.join("no/such/dir/out.tar");
    let mut a = base("unikraft", "qemu");
    a[7] = s(&no_dir);
    expect_failure(d, &a, &["--output"], &keep);

    // clap-level: a missing required flag.
    expect_failure(d, &["--kernel", k, "-o", o], &["--unikernel-type"], &keep);
}

#[test]
fn existing_output_is_replaced_whole() {
    let t = tempfile::tempdir().unwrap();
    let kernel = fake_kernel(t.path(), "k");
    let out = t.path().join("o.tar");
    fs::write(&out, b"old content").unwrap();
    // A failing run leaves the old file untouched.
    let bad = run_pack(&[
        "--kernel",
        s(&kernel),
        "--unikernel-type",
        "mewz",
        "--hypervisor",
        "hvt",
        "-o",
        s(&out),
    ]);
    assert!(!bad.status.success());
    assert_eq!(fs::read(&out).unwrap(), b"old content");
    pack_ok(&[
        "--kernel",
        s(&kernel),
        "--unikernel-type",
        "mewz",
        "--hypervisor",
        "qemu",
        "-o",
        s(&out),
    ]);
    let img = Image::read(&out);
    assert_eq!(
        img.manifest["annotations"]["com.urunc.unikernel.unikernelType"],
        "mewz"
    );
    let names: Vec<String> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temp files left: {names:?}");
}

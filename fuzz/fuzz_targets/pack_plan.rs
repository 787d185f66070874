//! The packer's inputs (`--unikernel-type`, `--hypervisor`, `--cmdline`,
//! `--unikernel-version`, `--blk-mount-point`, `--ref`, `--arch`,
//! `--annotation K=V`...): arbitrary strings, separated by NUL bytes, through
//! the planning step that checks them (with a real kernel file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use urunc_pack::{plan, PackOptions};

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("kernel"), b"\x7fELF").expect("kernel");
        d
    });
    let mut f = text.split('\0');
    let mut next = || f.next().map(str::to_string);
    let opt = |s: Option<String>| s.filter(|s| s != "-");
    let o = PackOptions {
        kernel: dir.path().join("kernel"),
        unikernel_type: next().unwrap_or_default(),
        hypervisor: next().unwrap_or_default(),
        cmdline: opt(next()),
        unikernel_version: opt(next()),
        blk_mnt_point: opt(next()),
        reference: opt(next()),
        architecture: opt(next()),
        use_dm_block: next().is_some_and(|s| s == "1"),
        mount_rootfs: next().is_some_and(|s| s == "1"),
        annotations: std::iter::from_fn(next).collect(),
        output: dir.path().join("out.tar"),
        ..Default::default()
    };
    let _ = plan(&o);
});

//! `/urunc.json` in an image's rootfs: arbitrary file contents through the
//! reader the runtime uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use urunc_core::metadata::Metadata;

static ROOTFS: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = ROOTFS.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    std::fs::write(dir.path().join("urunc.json"), data).expect("writing urunc.json");
    if let Ok(Some(m)) = Metadata::from_rootfs(dir.path()) {
        let _ = m.is_unikernel();
    }
});

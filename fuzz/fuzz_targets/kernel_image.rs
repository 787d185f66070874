//! The kernel-image reader (bzImage, ELF facts, PVH note) that Firecracker
//! and Cloud Hypervisor use: arbitrary bytes as the kernel file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use urunc_core::monitor::kernel_image::{check_x86_64_elf, identify, KernelImage};

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let path = dir.path().join("kernel");
    std::fs::write(&path, data).expect("writing the kernel file");
    let file = std::fs::File::open(&path).expect("opening the kernel file");
    if let Ok(KernelImage::Elf(facts)) = identify(&file) {
        let _ = check_x86_64_elf(&facts, "fuzz", "an ELF kernel");
    }
});

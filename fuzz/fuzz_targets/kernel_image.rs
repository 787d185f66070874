//! The kernel-image reader (bzImage, ELF facts, PVH note) that Firecracker
//! and Cloud Hypervisor use: arbitrary bytes as the kernel file, read from
//! memory through the same function `identify` runs on the opened file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urunc_core::monitor::kernel_image::{check_x86_64_elf, identify_from, KernelImage};

fuzz_target!(|data: &[u8]| {
    if let Ok(KernelImage::Elf(facts)) = identify_from(data) {
        let _ = check_x86_64_elf(&facts, "fuzz", "an ELF kernel");
    }
});

//! The Solo5 manifest reader: arbitrary bytes as the unikernel ELF file
//! (headers, program headers, notes, the manifest note).
#![no_main]

use libfuzzer_sys::fuzz_target;
use urunc_core::monitor::solo5_manifest;

fuzz_target!(|data: &[u8]| {
    let _ = solo5_manifest::parse(data);
});

//! `/urunc.json` in an image's rootfs: arbitrary file contents through the
//! decoder the runtime uses once it has read the file
//! (`Metadata::from_rootfs` reads it, O_NOFOLLOW, then calls
//! `Metadata::from_file_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use urunc_core::metadata::Metadata;

fuzz_target!(|data: &[u8]| {
    // from_rootfs reads the file with read_to_string: not UTF-8 is an
    // error there before any decoding.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Metadata::from_file_text(text, PathBuf::from("/urunc.json")) {
        let _ = m.is_unikernel();
    }
});

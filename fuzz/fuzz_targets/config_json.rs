//! config.json classification: arbitrary text as the bundle's config.json,
//! read as `create` reads it (`Bundle::read` after the file is read: the
//! classification view, `root.path`, the network namespace), classified
//! from its annotations (`Metadata::discover`), then parsed in full as the
//! OCI spec (`Bundle::spec`, done for unikernels).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use urunc_core::bundle::Bundle;
use urunc_core::metadata::Metadata;

fuzz_target!(|data: &[u8]| {
    // Bundle::read reads the file with read_to_string.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(b) = Bundle::from_text(
        PathBuf::from("/nonexistent-urunc-fuzz-bundle"),
        text.to_string(),
    ) else {
        return;
    };
    let _ = b.require_rootfs();
    // Only the annotations classify here: a root.path that names a host
    // directory would read that host's /urunc.json (the urunc_json target
    // fuzzes that decoder).
    let _ = Metadata::discover(Some(&b.annotations), None);
    let _ = b.spec();
});

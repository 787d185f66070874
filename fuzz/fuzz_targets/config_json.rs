//! config.json classification: arbitrary bytes as the bundle's config.json,
//! decoded as the OCI spec and classified (unikernel or delegated) from its
//! annotations, as `create` does before anything exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use urunc_core::metadata::Metadata;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<oci_spec::runtime::Spec>(data) else {
        return;
    };
    // No rootfs: only the annotations classify.
    let _ = Metadata::discover(
        spec.annotations().as_ref(),
        Path::new("/nonexistent-urunc-fuzz-rootfs"),
    );
});

//! The packer's `--ref`: arbitrary text through the image reference parser.
//! A reference it accepts prints in normalised form, which parses back to
//! the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urunc_pack::{sanitize_component, ImageRef};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sanitize_component(text);
    if let Ok(r) = ImageRef::parse(text) {
        let again = ImageRef::parse(&r.to_string());
        assert_eq!(again.as_ref(), Ok(&r), "{text:?} normalised to {r}");
    }
});

//! Annotations (`com.urunc.unikernel.*` in the OCI spec): arbitrary keys and
//! values, one `key=value` per line, through the value rule and the
//! metadata decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urunc_core::metadata::{base64_hint, decode_value, Metadata};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, &str)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            // Most lines should hit the prefix, or nothing is decoded.
            let k = if k.contains('.') {
                k.to_string()
            } else {
                format!("com.urunc.unikernel.{k}")
            };
            (k, v)
        })
        .collect();
    for (_, v) in &pairs {
        let _ = decode_value(v);
        let _ = base64_hint(v);
    }
    if let Ok(m) = Metadata::from_map(pairs.iter().map(|(k, v)| (k.as_str(), *v))) {
        let _ = m.is_unikernel();
    }
});

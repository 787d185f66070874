//! `/etc/urunc/config.toml`: arbitrary text through the config parser
//! (ours and the Go urunc's keys, unknown-key warnings, line numbers).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use urunc_core::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("/fuzz/config.toml")) {
        for m in ["qemu", "firecracker", "hvt", "spt", "clh"] {
            let _ = c.monitor(m);
        }
    }
});

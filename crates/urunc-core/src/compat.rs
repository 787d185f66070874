//! The one place that knows which framework runs on which monitor.

/// `(framework, monitors it runs on)`, as in SPEC §6.
pub const TABLE: &[(&str, &[&str])] = &[
    ("unikraft", &["qemu", "firecracker", "clh"]),
    ("mirage", &["qemu", "hvt", "spt"]),
    ("rumprun", &["hvt", "spt"]),
    ("mewz", &["qemu"]),
    ("linux", &["qemu", "firecracker", "clh"]),
];

/// The monitors `framework` can run on (empty if unknown).
pub fn monitors_for(framework: &str) -> &'static [&'static str] {
    TABLE
        .iter()
        .find(|(f, _)| *f == framework)
        .map(|(_, m)| *m)
        .unwrap_or(&[])
}

pub fn supported(framework: &str, monitor: &str) -> bool {
    monitors_for(framework).contains(&monitor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_registries() {
        for (f, ms) in super::TABLE {
            assert!(
                crate::guest::lookup(f).is_some(),
                "framework {f} has no Guest"
            );
            for m in *ms {
                assert!(crate::monitor::KNOWN.contains(m), "monitor {m} unknown");
            }
        }
        assert!(super::supported("rumprun", "spt"));
        assert!(!super::supported("rumprun", "qemu"));
    }
}

//! A model of what Firecracker v1.7.0 does to `boot_args` (linux-loader
//! 0.10), shared by tests/golden_unikraft.rs and the fuzz target
//! fuzz/fuzz_targets/unikraft_firecracker.rs (which also checks it against
//! the linux-loader crate itself).

/// What Firecracker v1.7.0 hands the guest for `boot_args`, by the rules
/// of linux-loader 0.10 `src/cmdline/mod.rs`: `Cmdline::try_from` splits
/// at the first " -- " with an even number of `"` before it and trims both
/// parts; `insert_str` (used for `virtio_mmio.device=`, builder.rs /
/// device_manager/mmio.rs) appends to the first part; `as_cstring` joins
/// them with " -- ", leaving out an empty second part.
pub fn firecracker_delivers(boot_args: &str, added: &[&str]) -> String {
    const SEP: &str = " -- ";
    let split = boot_args
        .match_indices(SEP)
        .find(|(i, _)| boot_args[..*i].matches('"').count().is_multiple_of(2))
        .map(|(i, _)| i);
    let (boot, init) = match split {
        Some(i) => (&boot_args[..i], &boot_args[i + SEP.len()..]),
        None => (boot_args, ""),
    };
    let mut boot = boot.trim().to_string();
    for a in added {
        if !boot.is_empty() {
            boot.push(' ');
        }
        boot.push_str(a);
    }
    let init = init.trim();
    if init.is_empty() {
        boot
    } else {
        format!("{boot}{SEP}{init}")
    }
}

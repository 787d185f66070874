//! Round trip, Unikraft on Firecracker: as unikraft_cmdline, with what
//! Firecracker v1.7.0 does to `boot_args` in between: linux-loader 0.10
//! splits them at the first ` -- ` outside double quotes, appends its
//! `virtio_mmio.device=` words to the first part and drops an empty second
//! part (the model in crates/urunc-core/tests/linux_loader/mod.rs, checked
//! here against the linux-loader crate itself). The guest must still get
//! exactly the argv, env and parameters meant, the devices included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linux_loader::cmdline::Cmdline;

#[path = "unikraft_common.rs"]
mod common;

#[path = "../../crates/urunc-core/tests/linux_loader/mod.rs"]
mod model;

fuzz_target!(|input: common::Input| {
    // One to three devices (a NIC, disks), as Firecracker numbers them.
    let devices: Vec<String> = (0..1 + usize::from(input.pick % 3))
        .map(|i| format!("4K@0x{:x}:{}", 0xd000_0000u32 + 0x1000 * i as u32, 5 + i))
        .collect();
    let Some(r) = input.render("firecracker", &devices) else {
        return;
    };
    let words = match r.words {
        Ok(w) => w,
        Err(e) => {
            assert!(r.may_refuse, "refused for no documented reason: {e}");
            return;
        }
    };
    let boot_args = words.join(" ");
    // monitor/firecracker.rs refuses the rest (printable ASCII only).
    if boot_args.chars().any(|c| !matches!(c, ' '..='~')) {
        return;
    }
    let added: Vec<String> = devices
        .iter()
        .map(|d| format!("virtio_mmio.device={d}"))
        .collect();
    let added: Vec<&str> = added.iter().map(String::as_str).collect();
    let delivered = model::firecracker_delivers(&boot_args, &added);
    let mut real = Cmdline::try_from(&boot_args, 1 << 20).expect("linux-loader try_from");
    for a in &added {
        real.insert_str(a).expect("linux-loader insert_str");
    }
    let real = real.as_cstring().expect("linux-loader as_cstring");
    assert_eq!(
        real.to_str().expect("ASCII"),
        delivered,
        "the linux-loader model differs from linux-loader for {boot_args:?}"
    );
    let Some((got, out)) = common::unikraft_reads(&delivered) else {
        return;
    };
    assert_eq!(
        got, r.expected,
        "urunc wrote {boot_args:?}; Firecracker delivered {delivered:?}; Unikraft read:\n{out}"
    );
});

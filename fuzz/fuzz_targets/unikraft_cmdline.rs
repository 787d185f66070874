//! Round trip, Unikraft on QEMU and Cloud Hypervisor: arbitrary
//! `process.args`, `process.env`, network, root (initrd or a 9p share),
//! volumes and `unikernelVersion` through urunc's Unikraft guest
//! (guest/unikraft.rs), the words joined as the monitor is given them
//! (QEMU `-append`, whose multiboot loader puts the kernel's path in front;
//! Cloud Hypervisor `--cmdline`), then read back by Unikraft 0.17's rules
//! (tests/fixtures/ukparse/ukparse.c). urunc either refuses the input with
//! an error or the guest gets exactly the argv, env and parameters meant.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "unikraft_common.rs"]
mod common;

fuzz_target!(|input: common::Input| {
    let monitor = if input.pick % 2 == 0 { "qemu" } else { "clh" };
    let Some(r) = input.render(monitor, &[]) else {
        return;
    };
    let words = match r.words {
        Ok(w) => w,
        Err(e) => {
            assert!(r.may_refuse, "refused for no documented reason: {e}");
            return;
        }
    };
    let line = words.join(" ");
    let cmdline = if monitor == "qemu" {
        format!("{} {line}", common::KERNEL)
    } else {
        line.clone()
    };
    let Some((got, out)) = common::unikraft_reads(&cmdline) else {
        return;
    };
    assert_eq!(
        got, r.expected,
        "{monitor}: urunc wrote {line:?}; Unikraft read:\n{out}"
    );
});

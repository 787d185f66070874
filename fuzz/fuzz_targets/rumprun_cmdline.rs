//! Round trip, Rumprun: arbitrary `process.args`, network and disk mount
//! point through urunc's Rumprun guest (guest/rumprun.rs: one JSON word,
//! which solo5-hvt/spt hand over as the command line), then read back by
//! Rumprun's rules (rumprun_config, jsmn without escape decoding,
//! rumprun_parseargs: tests/fixtures/rumpparse/rumpparse.c, linked by
//! fuzz/build.rs). urunc either refuses the input with an error or Rumprun
//! starts with exactly the argv, network and mount point meant.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_char, c_int, CString};
use std::net::Ipv4Addr;
use urunc_core::guest::{self, prefix_to_mask, GuestArgs, GuestBlock, GuestNet};

extern "C" {
    fn rumpparse_hosted_run(
        cmdline: *const c_char,
        text: *mut *const c_char,
        len: *mut usize,
    ) -> c_int;
}

/// rumpparse.c's line buffer; Solo5's tenders take at most 8192 bytes too
/// (HVT_CMDLINE_SIZE).
const LINE_MAX: usize = 8191;

#[derive(Arbitrary, Debug)]
struct Net {
    ip: [u8; 4],
    prefix: u8,
    gateway: Option<[u8; 4]>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    app: Vec<String>,
    net: Option<Net>,
    /// A disk, with its `blkMntPoint` if given.
    block: Option<Option<String>>,
    monitor_spt: bool,
}

fn rumprun_reads(line: &str) -> Option<(c_int, String)> {
    let c = CString::new(line).ok()?;
    let mut text: *const c_char = std::ptr::null();
    let mut len = 0usize;
    // SAFETY: a NUL-terminated line (copied by rumpparse.c) and two out
    // pointers; the fuzz target is one thread.
    let rc = unsafe { rumpparse_hosted_run(c.as_ptr(), &mut text, &mut len) };
    // SAFETY: len bytes of rumpparse.c's console buffer.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    Some((rc, String::from_utf8_lossy(bytes).into_owned()))
}

fuzz_target!(|input: Input| {
    // An empty command line leaves Rumprun nothing to run ("no bins"),
    // and plan.rs always has a program.
    if input.app.is_empty() {
        return;
    }
    let net = input.net.as_ref().map(|n| GuestNet {
        ip: Ipv4Addr::from(n.ip),
        prefix: n.prefix % 33,
        gateway: n.gateway.map(Ipv4Addr::from),
        dns: None,
    });
    let block = input.block.as_ref().map(|m| GuestBlock {
        mount_point: m.clone(),
        readonly: false,
    });
    let args = GuestArgs {
        app: &input.app,
        env: &[],
        net: net.as_ref(),
        initrd: false,
        block: block.as_ref(),
        shares: &[],
        version: None,
        monitor: if input.monitor_spt { "spt" } else { "hvt" },
    };
    let Ok(words) = guest::lookup("rumprun").expect("rumprun").words(&args) else {
        return;
    };
    assert_eq!(words.len(), 1, "one JSON word: {words:?}");
    let line = &words[0];
    if line.len() > LINE_MAX || line.contains('\0') {
        return;
    }
    let Some((rc, out)) = rumprun_reads(line) else {
        return;
    };
    let mut expected: Vec<String> = input
        .app
        .iter()
        .enumerate()
        .map(|(i, a)| format!("argv[{i}]: {a}"))
        .collect();
    if let Some(n) = &net {
        // The netmask rule of guest/rumprun.rs: the prefix when the
        // gateway is inside it (or there is none), else 1.
        let mask = match n.gateway {
            Some(g)
                if u32::from(g) & u32::from(prefix_to_mask(n.prefix))
                    != u32::from(n.ip) & u32::from(prefix_to_mask(n.prefix)) =>
            {
                1
            }
            _ => n.prefix,
        };
        let gw = n.gateway.map(|g| g.to_string()).unwrap_or("-".into());
        expected.push(format!(
            "net: if=ukvmif0 cloner=True type=inet method=static addr={} mask={mask} gw={gw}",
            n.ip
        ));
    }
    if let Some(b) = &block {
        let mp = b.mount_point.as_deref().unwrap_or("/data");
        expected.push(format!(
            "blk: source=etfs path=/dev/ld0a fstype=blk mountpoint={}",
            mp
        ));
    }
    expected.push("ok".into());
    let mut got: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("URUNC-RUMP "))
        .filter(|l| !l.starts_with("cmdline: "))
        .map(str::to_string)
        .collect();
    // handle_net and handle_blk print in the JSON's key order.
    got.sort();
    expected.sort();
    assert!(
        rc == 0 && got == expected,
        "urunc wrote {line:?}; Rumprun (exit {rc}) read:\n{out}\nexpected {expected:#?}"
    );
});

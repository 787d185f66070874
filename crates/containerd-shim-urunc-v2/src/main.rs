//! containerd shim v2 for urunc (`io.containerd.urunc.v2`).
//!
//! containerd starts this binary once per container (or per pod); it drives
//! the OCI runtime CLI (`urunc`, overridable with `$URUNC_SHIM_RUNTIME` or
//! the runc-style shim option `BinaryName`), reaps the container's process
//! as a child subreaper and reports its exit to containerd.

mod bundle;
mod events;
mod exit;
mod io;
mod mount;
mod oom;
mod process;
mod rpc;
mod runtime;
mod serve;
mod service;
mod shim;
mod stats;
mod tasks;

/// A stable, short hash of a string (for socket names).
pub(crate) fn short_hash(s: &str) -> u64 {
    // FNV-1a: deterministic across runs, unlike std's RandomState.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn main() {
    // One malloc arena: a shim has a handful of mostly idle threads, and
    // per-thread arenas would each cost private memory.
    // SAFETY: mallopt only adjusts allocator tunables; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // Serving (no action; the crate serves any other too): our own loop with fewer threads (serve.rs).
    // `start`, `delete`, `-v` and bad arguments: the crate's entry point.
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Ok(flags) = containerd_shim::parse(&args) {
        if !matches!(flags.action.as_str(), "start" | "delete")
            && !flags.version
            && !flags.info
            && !flags.namespace.is_empty()
        {
            if let Err(e) = serve::serve(&flags) {
                eprintln!("io.containerd.urunc.v2: {e}");
                std::process::exit(1);
            }
            return;
        }
    }
    let config = containerd_shim::Config {
        default_log_level: "warn".to_string(),
        ..Default::default()
    };
    containerd_shim::run::<shim::Shim>("io.containerd.urunc.v2", Some(config));
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_hash_is_stable_and_distinguishes() {
        assert_eq!(super::short_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(super::short_hash("a"), super::short_hash("b"));
        assert_eq!(super::short_hash("abc"), super::short_hash("abc"));
    }
}

//! Test-only pause points for the fault-injection tests
//! (`crates/urunc/tests/faults.rs`).
//!
//! With `URUNC_TEST_PAUSE_AT=<step>` in its environment, a urunc process
//! that reaches the named step writes `urunc: test pause at <step> (pid N)`
//! to stderr and then sleeps forever, so that a test can look at `state`
//! and `list` and SIGKILL it there — or, when `URUNC_TEST_RESUME` names a
//! path, carries on once that path exists. It sleeps rather than stopping itself
//! because the waiting process may be the init of its PID namespace, which
//! cannot stop itself with SIGSTOP. Nothing else reads the variable; it is
//! not an interface for users. The steps are the `pause_at` calls in
//! `lifecycle/` and `sandbox/`.

use std::io::Write;

const VAR: &str = "URUNC_TEST_PAUSE_AT";

/// Pauses here (forever) when `URUNC_TEST_PAUSE_AT` names `step`.
pub fn pause_at(step: &str) {
    if std::env::var_os(VAR).is_none_or(|v| v != step) {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "urunc: test pause at {step} (pid {})",
        std::process::id()
    );
    let resume = std::env::var_os("URUNC_TEST_RESUME").map(std::path::PathBuf::from);
    loop {
        match &resume {
            Some(p) if p.exists() => return,
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            None => std::thread::sleep(std::time::Duration::from_secs(3600)),
        }
    }
}

//! `kill`: deliver a signal to the monitor (or, with `--all`, to every
//! process in the container's cgroup).

use super::Runtime;
use crate::error::{Error, Result};
use crate::state::Status;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::str::FromStr;

/// `TERM`, `SIGTERM`, `15` → SIGTERM.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::msg(format!("signal {s:?}: not a signal name or number"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

pub fn kill(rt: &Runtime, id: &str, signal: Signal, all: bool) -> Result<()> {
    let (_, st) = rt.load(id)?;
    let status = st.status();
    if status == Status::Stopped {
        return Err(Error::msg(format!("container {id} is not running")));
    }
    if status == Status::Creating {
        return Err(Error::msg(format!(
            "container {id} is still being created: nothing to signal yet (delete --force removes it)"
        )));
    }
    let mut pids = if all {
        crate::cgroups::pids(&st.cgroups)
    } else {
        vec![]
    };
    if !pids.contains(&st.pid) {
        pids.push(st.pid);
    }
    for p in pids {
        let signal = effective_signal(p, signal);
        nix::sys::signal::kill(Pid::from_raw(p), signal)
            .map_err(|e| Error::sys(format!("container {id}: sending {signal} to pid {p}"), e))?;
    }
    // A paused monitor only acts on the signal once thawed.
    if status == Status::Paused && matches!(signal, Signal::SIGKILL | Signal::SIGTERM) {
        let _ = crate::cgroups::freeze(&st.cgroups, false);
    }
    Ok(())
}

/// The kernel silently drops a signal sent to the init of a PID namespace
/// that does not catch it. A monitor without a SIGTERM handler (Firecracker,
/// the Solo5 tenders) would then ignore `kill` altogether, so a request to
/// terminate becomes SIGKILL for such a monitor.
fn effective_signal(pid: i32, signal: Signal) -> Signal {
    if !matches!(
        signal,
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT | Signal::SIGHUP
    ) {
        return signal;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return signal;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let ns_init = field("NSpid:").is_some_and(|v| {
        let ids: Vec<&str> = v.split_whitespace().collect();
        ids.len() > 1 && ids.last() == Some(&"1")
    });
    let caught = field("SigCgt:")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .is_some_and(|mask| mask & (1u64 << (signal as i32 - 1)) != 0);
    if ns_init && !caught {
        crate::log::debug(&format!(
            "pid {pid} does not handle {signal} as its PID namespace's init: sending SIGKILL"
        ));
        Signal::SIGKILL
    } else {
        signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("usr1").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}

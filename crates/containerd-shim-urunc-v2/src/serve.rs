//! The shim's serving process (containerd starts it through `start`): the
//! task service on its TTRPC socket, container exits reaped.
//!
//! containerd-shim 0.11's `run` does the same with a fixed thread budget:
//! ttrpc's default of 3 to 5 idle workers per connection, a signal thread,
//! a thread blocked on the exit flag, and the crate's own event publisher
//! connection (two more threads) which this shim does not use (events.rs).
//! Each thread costs a shim 8-12 KiB of private memory (stack and TLS
//! pages), and a node runs one shim per pod. Here the main thread serves
//! signals and the exit flag from one poll(2), and ttrpc keeps 1 to 3 idle
//! workers. At least one must stay idle: `Wait` holds a worker until the
//! container exits, and ttrpc adds workers only when the idle count falls
//! below its minimum, so with 0 a `Kill` behind a `Wait` would never run.
//! The steps otherwise follow the crate's `bootstrap` (synchronous/mod.rs):
//! subreaper, logger on the `log` FIFO, listener on `-socket` (an address
//! in use by a live shim: answer with it and exit), stdout released once
//! serving, the socket removed on exit.

use std::{
    os::{
        fd::{AsFd, IntoRawFd},
        unix::{fs::FileTypeExt, net::UnixListener},
    },
    path::Path,
    sync::Arc,
    time::Duration,
};

use containerd_shim::{
    self as shim, logger, monitor::monitor_notify_by_pid, protos::shim::shim_ttrpc::create_task,
    protos::ttrpc::Server, util::write_address, Flags,
};
use log::{error, warn};
use nix::{
    errno::Errno,
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::{
        signal::{SigSet, Signal},
        signalfd::{SfdFlags, SignalFd},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use crate::{exit::Exit, service::Service};

/// Idle ttrpc workers per connection: at least, at start, at most.
const WORKERS: (usize, usize, usize) = (1, 2, 3);

fn other(what: &str, e: impl std::fmt::Display) -> shim::Error {
    shim::Error::Other(format!("{what}: {e}"))
}

/// `unix:///run/containerd/s/…` → the socket's path.
fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

fn bind(address: &str) -> std::io::Result<UnixListener> {
    let path = Path::new(socket_path(address));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    UnixListener::bind(path)
}

fn remove_socket(address: &str) {
    let path = Path::new(socket_path(address));
    if path.metadata().is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            warn!("remove {}: {e}", path.display());
        }
    }
}

/// A shim already answers on `address` (containerd raced two `start`s).
fn answers(address: &str) -> bool {
    (0..5).any(|i| {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::os::unix::net::UnixStream::connect(socket_path(address)).is_ok()
    })
}

/// Reap every child that exited and tell the crate's exit monitor (the
/// runtime's command waits and the task exit watcher subscribe to it).
fn reap() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => notify(pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => notify(pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                warn!("waitpid: {e}");
                break;
            }
        }
    }
}

fn notify(pid: Pid, code: i32) {
    if let Err(e) = monitor_notify_by_pid(pid.as_raw(), code) {
        error!("exit of {pid}: {e}");
    }
}

/// Serve until the task service asks to exit.
pub fn serve(flags: &Flags) -> Result<(), shim::Error> {
    if flags.socket.is_empty() {
        return Err(shim::Error::InvalidArgument(
            "shim socket (-socket) cannot be empty".into(),
        ));
    }
    // Signals go to a signalfd: blocked here, before any thread exists, so
    // every thread inherits the mask. Child processes do not: std's
    // Command clears the mask in the child before exec.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| other("block signals", e))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| other("signalfd", e))?;
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(other(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            std::io::Error::last_os_error(),
        ));
    }
    // See Shim::new: a write to a FIFO whose reader is gone must fail, not
    // kill or spin.
    // SAFETY: setting a disposition to SIG_IGN has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    logger::init(flags.debug, "warn", &flags.namespace, &flags.id)?;

    let exit = Arc::new(Exit::pollable().map_err(|e| other("eventfd", e))?);
    let Some(exit_fd) = exit.fd() else {
        return Err(other("eventfd", "none"));
    };
    let listener = match bind(&flags.socket) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if answers(&flags.socket) {
                write_address(&flags.socket)?;
                release_stdout();
                return Ok(());
            }
            remove_socket(&flags.socket);
            bind(&flags.socket).map_err(|e| other(&flags.socket, e))?
        }
        Err(e) => return Err(other(&flags.socket, e)),
    };
    let service = Service::new(flags.namespace.clone(), Arc::clone(&exit));
    let (min, default, max) = WORKERS;
    let mut server = Server::new()
        .add_listener(listener.into_raw_fd())?
        .set_thread_count_min(min)
        .set_thread_count_default(default)
        .set_thread_count_max(max)
        .register_service(create_task(Arc::new(service)));
    server.start()?;
    release_stdout();

    let mut fds = [
        PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        PollFd::new(exit_fd, PollFlags::POLLIN),
    ];
    while !exit.is_set() {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(other("poll", e)),
        }
        while let Ok(Some(si)) = signals.read_signal() {
            if si.ssi_signo == Signal::SIGCHLD as u32 {
                reap();
            }
            // SIGTERM/SIGINT: as the crate, logged only; containerd ends a
            // shim through Shutdown.
        }
    }
    server.shutdown();
    remove_socket(&flags.socket);
    Ok(())
}

/// `start` reads our stdout until it closes (shim::spawn): point it at
/// stderr, as the crate does, once the socket answers.
fn release_stdout() {
    // SAFETY: dup2 of two standard descriptors this process owns.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
}

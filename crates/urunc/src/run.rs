//! `run`: create + start, then (unless detached) wait for the monitor as
//! its subreaper, forward signals to it, and delete afterwards.

use crate::entry::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use urunc_core::lifecycle::{self, CreateOpts, Outcome, Runtime};
use urunc_core::Error;

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

pub fn run(
    rt: &Runtime,
    r: &liboci_cli::Run,
    delegate: impl FnOnce() -> ExitCode,
) -> Result<ExitCode, Error> {
    if !r.detach {
        // SAFETY: prctl with constant arguments; makes orphaned descendants
        // (the monitor) our children so that we can wait for them.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let opts = CreateOpts {
        id: r.container_id.clone(),
        bundle: r.bundle.clone(),
        pid_file: r.pid_file.clone(),
        console_socket: r.console_socket.clone(),
        preserve_fds: r.preserve_fds.max(0) as u32,
    };
    let mut st = match lifecycle::create(rt, &opts)? {
        Outcome::Created(st) => st,
        Outcome::NotUnikernel => return Ok(delegate()),
    };
    let pid = st.pid;
    // start and delete from the state in hand (see start_created).
    if let Err(e) = lifecycle::start_created(rt, &mut st) {
        let _ = lifecycle::delete(rt, &r.container_id, true);
        return Err(e);
    }
    if r.detach {
        return Ok(ExitCode::SUCCESS);
    }
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installs an async-signal-safe handler (one atomic store),
        // without SA_RESTART so that waitpid returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = remember as *const () as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let code = loop {
        let mut status = 0;
        // SAFETY: waitpid on our (adopted) child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
        }
        let sig = PENDING.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let _ = lifecycle::kill(
                rt,
                &opts.id,
                nix::sys::signal::Signal::try_from(sig)
                    .unwrap_or(nix::sys::signal::Signal::SIGTERM),
                false,
            );
        } else if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(Error::sys(
                format!("waiting for container {}", opts.id),
                std::io::Error::last_os_error(),
            ));
        }
    };
    if !r.keep {
        lifecycle::delete_known(rt, *st, true)?;
    }
    Ok(ExitCode::from(code as u8))
}

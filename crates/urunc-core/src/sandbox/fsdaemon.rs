//! virtiofsd for virtio-fs shares (see [`crate::shares::FsDaemon`]).
//!
//! The waiting process starts each daemon right before it execs the
//! monitor, still as root and already inside the sandbox root (so the
//! daemon sees the same paths as the monitor). It binds the listening
//! socket itself and hands it over as descriptor 3: the socket exists
//! before the monitor connects, with no wait or retry. The daemon is a
//! child of the waiting process and so, after the exec, of the monitor: it
//! lives in the container's namespaces and cgroup, the container's process
//! is still the monitor, and the daemon gets SIGKILL when the monitor
//! exits (`PR_SET_PDEATHSIG`; in a PID namespace the kernel kills it
//! anyway). virtiofsd confines itself (its own namespaces and seccomp
//! filter) and exits when the monitor disconnects.

use crate::error::{Context, Error, Result};
use crate::shares::FsDaemon;
use nix::unistd::{fork, ForkResult};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

/// Starts one daemon; the socket is owned by `owner` (the monitor's user).
pub fn spawn(d: &FsDaemon, (uid, gid): (u32, u32)) -> Result<()> {
    let argv: Vec<CString> = d
        .argv
        .iter()
        .map(|a| {
            CString::new(a.as_str())
                .map_err(|_| Error::msg(format!("virtiofsd argument {a:?} contains a NUL byte")))
        })
        .collect::<Result<_>>()?;
    let Some(prog) = argv.first() else {
        return Err(Error::msg("empty virtiofsd command line"));
    };
    let _ = std::fs::remove_file(&d.socket);
    let listener = UnixListener::bind(&d.socket)
        .ctx(|| format!("virtiofsd: binding {}", d.socket.display()))?;
    std::os::unix::fs::chown(&d.socket, Some(uid), Some(gid))
        .ctx(|| format!("virtiofsd: chown {uid}:{gid} {}", d.socket.display()))?;
    let parent = nix::unistd::getpid();
    // SAFETY: the waiting process is single-threaded; the child only
    // prepares descriptors and execs.
    match unsafe { fork() }.ctx(|| "virtiofsd: fork".to_string())? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            // SAFETY: prctl and fcntl/dup2/close_range on our own
            // descriptors with valid arguments; _exit never returns.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent.as_raw() {
                    libc::_exit(1);
                }
                let fd = listener.as_raw_fd();
                if fd != 3 && libc::dup2(fd, 3) < 0 {
                    libc::_exit(1);
                }
                libc::fcntl(3, libc::F_SETFD, 0);
                libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
            }
            let env = [CString::new("PATH=/usr/sbin:/usr/bin:/sbin:/bin").unwrap_or_default()];
            let e = nix::unistd::execve(prog, &argv, &env).unwrap_err();
            crate::log::error(&format!("executing virtiofsd {}: {e}", d.argv[0]));
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(127) }
        }
    }
}

//! `process.terminal`: a pty whose master goes to `--console-socket`
//! (SCM_RIGHTS) and whose slave becomes the monitor's stdio.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Opens a pty, sends its master to the console socket, returns the slave.
pub fn setup(console_socket: &Path) -> Result<OwnedFd> {
    let pty = nix::pty::openpty(None, None).ctx(|| "opening a pty for the console".to_string())?;
    let stream = connect(console_socket)?;
    let fds = [pty.master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).ctx(|| {
        format!(
            "--console-socket {}: sending the pty master",
            console_socket.display()
        )
    })?;
    Ok(pty.slave)
}

/// Connects to a unix socket, also when its path is longer than
/// `sun_path` allows (through /proc/self/fd of its directory).
pub fn connect(path: &Path) -> Result<UnixStream> {
    match UnixStream::connect(path) {
        Ok(s) => Ok(s),
        Err(e) if path.as_os_str().len() >= 100 => {
            let (dir, name) = (
                path.parent().unwrap_or(Path::new("/")),
                path.file_name().unwrap_or_default(),
            );
            let d = std::fs::File::open(dir)
                .map_err(|_| Error::sys(format!("connecting to {}", path.display()), e))?;
            let short = Path::new("/proc/self/fd")
                .join(d.as_raw_fd().to_string())
                .join(name);
            UnixStream::connect(&short).ctx(|| format!("connecting to {}", path.display()))
        }
        Err(e) => Err(Error::sys(format!("connecting to {}", path.display()), e)),
    }
}

/// Binds a unix socket listener, also for long paths.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::net::UnixListener;
    if path.as_os_str().len() < 100 {
        return UnixListener::bind(path).ctx(|| format!("binding {}", path.display()));
    }
    let (dir, name) = (
        path.parent().unwrap_or(Path::new("/")),
        path.file_name().unwrap_or_default(),
    );
    let d = std::fs::File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    let short = Path::new("/proc/self/fd")
        .join(d.as_raw_fd().to_string())
        .join(name);
    UnixListener::bind(&short).ctx(|| format!("binding {}", path.display()))
}

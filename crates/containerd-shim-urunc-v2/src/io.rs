//! The container's stdio: containerd's FIFOs (or `file://` URIs) handed to
//! the runtime's `create`, or, with a terminal, a console socket that
//! receives the pty master and threads copying between it and the FIFOs.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, IoSliceMut, Read, Write},
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::{
            fs::{FileTypeExt, OpenOptionsExt},
            net::UnixListener,
        },
    },
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use nix::{
    fcntl::OFlag,
    sys::socket::{recvmsg, ControlMessageOwned, MsgFlags},
};

use crate::runtime::ChildStdio;

/// Where a stdin copy thread writes (the container's stdin pipe, or the
/// pty master), and the write end of its stop pipe: dropping it ends the
/// thread.
pub struct StdinPipe {
    dst: File,
    _stop: File,
}

/// A stdin copy's destination; `None` once closed (`close_writer`),
/// which also stops the copy.
pub type StdinWriter = Arc<Mutex<Option<StdinPipe>>>;

/// Where a stdio path from containerd points.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// No stream: `/dev/null`.
    Null,
    /// A FIFO or file path.
    Path(&'a str),
}

/// Interpret a stdio string from containerd: empty, a path, or `file://PATH`.
pub fn parse_target(s: &str) -> Result<Target<'_>, String> {
    if s.is_empty() {
        return Ok(Target::Null);
    }
    if let Some(p) = s.strip_prefix("file://") {
        return Ok(Target::Path(p));
    }
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "stdio URI {s}: scheme {scheme}:// is not supported (only FIFO paths and file://)"
        ));
    }
    Ok(Target::Path(s))
}

fn dev_null(write: bool) -> Result<File, String> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))
}

/// Open an output stream. FIFOs are opened read-write so that the open does
/// not block when containerd's reader is not there yet; the shim drops its
/// copy once the runtime has the descriptor, so the reader still sees EOF
/// when the container closes it.
pub fn open_output(s: &str) -> Result<File, String> {
    match parse_target(s)? {
        Target::Null => dev_null(true),
        Target::Path(p) => OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
            .map_err(|e| format!("open stdio {p}: {e}")),
    }
}

fn pipe() -> Result<(File, File), String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    Ok((File::from(r), File::from(w)))
}

/// Stdio for a container without a terminal. Returns the runtime's stdio and,
/// when there is a stdin, the writer the copy thread feeds (for `CloseIO`).
pub fn setup_pipes(
    stdin: &str,
    stdout: &str,
    stderr: &str,
) -> Result<(ChildStdio, Option<StdinWriter>), String> {
    let out = open_output(stdout)?;
    let err = if stderr == stdout && !stderr.is_empty() {
        out.try_clone()
            .map_err(|e| format!("dup stdio {stdout}: {e}"))?
    } else {
        open_output(stderr)?
    };
    let (child_in, writer) = match parse_target(stdin)? {
        Target::Null => (dev_null(false)?, None),
        Target::Path(p) => {
            let (r, w) = pipe()?;
            (r, Some(spawn_stdin_copy(p, w)?))
        }
    };
    Ok((
        ChildStdio {
            stdin: Some(child_in),
            stdout: Some(out),
            stderr: Some(err),
        },
        writer,
    ))
}

/// Copy containerd's stdin FIFO `fifo` into `dst` until EOF or until the
/// returned writer is closed, then close `dst` (the container then sees
/// EOF on a pipe).
///
/// The FIFO is opened at once, without waiting for a writer: a blocking
/// open waits for the *next* writer when containerd's has come and gone
/// before it (ctr with an empty stdin closes its end at once), forever,
/// and a shim serving a pod lost a thread with every such container. Its
/// `poll` reports no hang-up until a writer has been there since the open
/// (Linux `fifo_open`: `f_pipe` is set to the writer count only when there
/// was none), so EOF means what the blocking open's EOF meant.
fn spawn_stdin_copy(fifo: &str, dst: File) -> Result<StdinWriter, String> {
    let src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map_err(|e| format!("open stdin {fifo}: {e}"))?;
    let (stop, stop_w) = pipe()?;
    let writer: StdinWriter = Arc::new(Mutex::new(Some(StdinPipe { dst, _stop: stop_w })));
    let w = Arc::clone(&writer);
    thread::spawn(move || {
        copy_stdin(src, stop, &w);
        close_writer(&w);
    });
    Ok(writer)
}

/// The copy loop of `spawn_stdin_copy`: returns at EOF, at a read or write
/// error, or when `stop`'s writer is gone.
fn copy_stdin(mut src: File, stop: File, writer: &StdinWriter) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(src.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        if !fds[0].any().unwrap_or(true) {
            continue;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => return,
        };
        let Ok(mut guard) = writer.lock() else { return };
        let written = guard
            .as_mut()
            .is_some_and(|p| p.dst.write_all(&buf[..n]).is_ok());
        if !written {
            return;
        }
    }
}

/// Close a stdin writer (idempotent).
pub fn close_writer(writer: &StdinWriter) {
    if let Ok(mut g) = writer.lock() {
        g.take();
    }
}

/// A unix socket on which the runtime sends the pty master (`--console-socket`).
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new(dir: &Path, id: &str) -> Result<ConsoleSocket, String> {
        // Socket paths are limited to 108 bytes: keep the name short.
        let path = dir.join(format!(
            "urunc-console-{}-{:x}.sock",
            std::process::id(),
            crate::short_hash(id)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("console socket {}: {e}", path.display()))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// Take the pty master the runtime sent. Called after `create`
    /// succeeded, so the runtime has already connected and sent it; a
    /// runtime that did not is an error, not a hang.
    pub fn receive_master(&self) -> Result<File, String> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| format!("console socket {}: {e}", self.path.display()))?;
        let (stream, _) = self.listener.accept().map_err(|e| {
            format!(
                "the runtime did not connect to the console socket {}: {e}",
                self.path.display()
            )
        })?;
        stream
            .set_nonblocking(false)
            .map_err(|e| format!("console socket {}: {e}", self.path.display()))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receive pty master on {}: {e}", self.path.display()))?;
        let cmsgs = msg
            .cmsgs()
            .map_err(|e| format!("receive pty master on {}: {e}", self.path.display()))?;
        let mut master = None;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS just installed `fd` in this process;
                    // nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if master.is_none() {
                        master = Some(File::from(owned));
                    }
                }
            }
        }
        master.ok_or_else(|| {
            format!(
                "the runtime sent no file descriptor on the console socket {}",
                self.path.display()
            )
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Start copying between the pty master and containerd's FIFOs. The
/// returned receiver yields once the output side has drained (the pty
/// reports EIO after the last slave holder exited); the writer, when there
/// is a stdin, stops its copy (`CloseIO`, the exit).
pub fn spawn_console_copy(
    master: &File,
    stdin: &str,
    stdout: &str,
) -> Result<(mpsc::Receiver<()>, Option<StdinWriter>), String> {
    let (done_tx, done_rx) = mpsc::channel();
    let mut out = open_output(stdout)?;
    let mut m_read = master
        .try_clone()
        .map_err(|e| format!("dup pty master: {e}"))?;
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match m_read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // Our end of the FIFO goes first: the reader's EOF needs it gone.
        drop(out);
        let _ = done_tx.send(());
    });
    let stdin = match parse_target(stdin)? {
        Target::Path(p) => {
            let m_write = master
                .try_clone()
                .map_err(|e| format!("dup pty master: {e}"))?;
            Some(spawn_stdin_copy(p, m_write)?)
        }
        Target::Null => None,
    };
    Ok((done_rx, stdin))
}

/// Bytes waiting in the FIFO at `path` for its reader; `None` when `path`
/// is not a FIFO or nobody reads it.
fn fifo_pending(path: &str) -> Option<usize> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.file_type().is_fifo() {
        return None;
    }
    // A non-blocking write-only open never blocks: it fails with ENXIO when
    // the FIFO has no reader. It reads nothing, so it takes no data from
    // the reader, and only the process's own writers decide its EOF.
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one c_int through the pointer, which points to
    // a live local; the fd is open for the duration of the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    (rc == 0).then_some(usize::try_from(n).unwrap_or(0))
}

/// How far `wait_output_read` waits for containerd's reader of a FIFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Until it has taken the bytes in the FIFO: enough where containerd
    /// waits for the copy itself before it closes (execs: CRI's ExecSync
    /// and `ctr exec` wait for their attach to end).
    Read,
    /// Until it has seen EOF and closed its end. For an init whose
    /// processes are all gone: on its TaskExit containerd closes the
    /// FIFOs *before* it waits for its copy (v1.6 `task.go`, `Delete`:
    /// `t.io.Close()` then `Wait()`), and CRI's copy (`pkg/cri/io/
    /// container_io.go`, `Pipe`) is slow to come back for its EOF after a
    /// burst: it hands each chunk to the log writer first. A close that
    /// comes in between is its "Failed to pipe stdout … file already
    /// closed". Both CRI's and `ctr`'s copies close the FIFO on EOF.
    Closed,
}

/// Wait until the reader of each output FIFO (containerd) has taken what a
/// process wrote there (`Drain::Read`) or has closed it (`Drain::Closed`),
/// or until `deadline`. containerd closes its end of a container's FIFOs
/// as soon as it has handled the exit: whatever is still in them then is
/// lost. FIFOs without a reader and plain files (`file://` log URIs) are
/// not waited for.
pub fn wait_output_read(outputs: &[&str], drain: Drain, deadline: Instant) {
    let mut seen: Vec<&str> = Vec::new();
    for s in outputs {
        let Ok(Target::Path(p)) = parse_target(s) else {
            continue;
        };
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        while fifo_pending(p).is_some_and(|n| n > 0 || drain == Drain::Closed)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Set the pty window size.
pub fn resize(master: &File, width: u32, height: u32) -> Result<(), String> {
    let ws = libc::winsize {
        ws_row: height.min(u16::MAX as u32) as u16,
        ws_col: width.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which lives
    // for the duration of the call; the fd is a valid open file.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(format!(
            "resize pty to {width}x{height}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("").unwrap(), Target::Null);
        assert_eq!(
            parse_target("/run/x/stdout").unwrap(),
            Target::Path("/run/x/stdout")
        );
        assert_eq!(
            parse_target("file:///var/log/c.log").unwrap(),
            Target::Path("/var/log/c.log")
        );
        let e = parse_target("binary:///usr/bin/logger?x=1").unwrap_err();
        assert!(
            e.contains("binary://") && e.contains("not supported"),
            "{e}"
        );
    }

    #[test]
    fn fifo_output_opens_without_reader_and_reader_sees_eof() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Must not block although nobody reads yet.
        let mut w = open_output(fifo.to_str().unwrap()).unwrap();
        let mut r = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        w.write_all(b"hello\n").unwrap();
        drop(w);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello\n");
    }

    #[test]
    fn stdin_copy_delivers_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (stdio, writer) = setup_pipes(fifo.to_str().unwrap(), "", "").unwrap();
        assert!(writer.is_some());
        let mut w = OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"input").unwrap();
        drop(w);
        let mut s = String::new();
        stdio.stdin.unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "input");
    }

    /// Descriptors of this process open on `path`.
    fn fds_on(path: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
            .count()
    }

    #[test]
    fn stdin_copy_ends_when_closed_though_its_writer_came_and_went() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("in");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // What ctr with an empty stdin does before the shim opens it.
        let r = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        drop(OpenOptions::new().write(true).open(&fifo).unwrap());
        drop(r);
        let (stdio, writer) = setup_pipes(fifo.to_str().unwrap(), "", "").unwrap();
        assert_eq!(fds_on(&fifo), 1, "the copy does not hold the FIFO");
        close_writer(&writer.unwrap());
        // The copy thread lets go of the FIFO (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        while fds_on(&fifo) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            fds_on(&fifo),
            0,
            "the stdin copy thread still holds the FIFO"
        );
        let mut s = String::new();
        stdio.stdin.unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "", "the container's stdin is at EOF");
    }

    /// A non-blocking reader of the FIFO at `path`, then `data` written
    /// by an output end that is gone again: what containerd's copy meets.
    fn reader_with_pending(path: &str, data: &[u8]) -> File {
        let r = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        open_output(path).unwrap().write_all(data).unwrap();
        r
    }

    #[test]
    fn output_wait_lasts_until_the_reader_took_everything() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.to_str().unwrap().to_string();
        // No reader: nothing to wait for.
        assert_eq!(fifo_pending(&path), None);
        let far = Instant::now() + Duration::from_secs(30);
        let start = Instant::now();
        wait_output_read(&[&path], Drain::Read, far);
        assert!(start.elapsed() < Duration::from_secs(5));

        let mut r = reader_with_pending(&path, &[b'x'; 1000]);
        assert_eq!(fifo_pending(&path), Some(1000));
        // A reader that takes its time: the wait ends once it has read all.
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got.len()
        });
        let start = Instant::now();
        wait_output_read(&[&path, &path], Drain::Read, far);
        assert!(start.elapsed() >= Duration::from_millis(250));
        // All 1000 bytes reached the reader: counting took none.
        assert_eq!(reader.join().unwrap(), 1000);
    }

    /// CRI's copy after a burst: it has taken every byte from the FIFO,
    /// but comes back for its EOF (and closes) only once the log writer
    /// has the last chunk. `Read` ends at the first, `Closed` at the
    /// second: a TaskExit in between has containerd close the FIFO under
    /// the copy ("Failed to pipe stdout").
    #[test]
    fn closed_drain_lasts_until_the_reader_saw_eof_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.to_str().unwrap().to_string();
        let far = Instant::now() + Duration::from_secs(30);
        for drain in [Drain::Read, Drain::Closed] {
            let mut r = reader_with_pending(&path, &[b'x'; 1000]);
            let (took_tx, took_rx) = mpsc::channel();
            let reader = thread::spawn(move || {
                let mut got = [0u8; 1000];
                r.read_exact(&mut got).unwrap();
                took_tx.send(()).unwrap();
                thread::sleep(Duration::from_millis(300));
                drop(r);
            });
            took_rx.recv().unwrap();
            let start = Instant::now();
            wait_output_read(&[&path], drain, far);
            let waited = start.elapsed();
            reader.join().unwrap();
            match drain {
                Drain::Read => assert!(waited < Duration::from_millis(250), "{waited:?}"),
                Drain::Closed => assert!(waited >= Duration::from_millis(250), "{waited:?}"),
            }
        }
    }

    #[test]
    fn output_wait_is_bounded_and_skips_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.to_str().unwrap().to_string();
        let _r = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut w = open_output(&path).unwrap();
        w.write_all(b"never read").unwrap();
        let start = Instant::now();
        wait_output_read(
            &[&path],
            Drain::Closed,
            Instant::now() + Duration::from_millis(200),
        );
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(5));
        let file = dir.path().join("log");
        std::fs::write(&file, b"data").unwrap();
        let uri = format!("file://{}", file.display());
        assert_eq!(fifo_pending(file.to_str().unwrap()), None);
        let start = Instant::now();
        wait_output_read(
            &[&uri, ""],
            Drain::Closed,
            Instant::now() + Duration::from_secs(30),
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_output_dir_is_named() {
        let e = open_output("/nonexistent-dir/stdout").unwrap_err();
        assert!(e.contains("/nonexistent-dir/stdout"), "{e}");
    }
}

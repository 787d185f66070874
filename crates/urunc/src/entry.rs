//! Process start-up without std's `main` wrapper.
//!
//! Engines start urunc once per lifecycle command (three to four times per
//! container), so what runs before urunc's own code is paid on every one.
//! std's wrapper (`lang_start`) makes ~16 system calls before `main`: it
//! checks that stdio is open, ignores SIGPIPE, and installs a stack
//! overflow handler — which reads `/proc/self/maps` (through glibc's
//! `pthread_getattr_np`, to find the main thread's guard page), allocates
//! and registers an alternate signal stack and installs SIGSEGV/SIGBUS
//! handlers, undone again at exit. urunc needs the first two (done here,
//! in 2 system calls); the third only turns a stack overflow's SIGSEGV into
//! a message, and urunc has no deep recursion. Everything else std offers
//! works without the wrapper: with glibc, std reads argv and the
//! environment from the C library's `.init_array` call, and
//! [`std::process::exit`] flushes stdout as returning from `main` does.

/// A process exit status (std's `ExitCode` cannot be read back as a number,
/// which [`std::process::exit`] needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCode(pub u8);

impl ExitCode {
    pub const SUCCESS: ExitCode = ExitCode(0);
    pub const FAILURE: ExitCode = ExitCode(1);
}

impl From<u8> for ExitCode {
    fn from(c: u8) -> ExitCode {
        ExitCode(c)
    }
}

/// What std's start-up did that urunc relies on.
#[cfg_attr(test, allow(dead_code))]
pub fn prepare() {
    // Descriptors 0-2 open (on /dev/null if the caller closed them), as std
    // ensures: otherwise the first file urunc opens — a state file — would
    // become its stdout or stderr, and a message would land in it.
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on three valid pollfd structs with a zero timeout.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for p in &fds {
        // poll failed (EINTR, ENOMEM): ask each descriptor instead.
        let closed = if polled < 0 {
            // SAFETY: F_GETFD only queries the descriptor's flags.
            let flags = unsafe { libc::fcntl(p.fd, libc::F_GETFD) };
            flags < 0
        } else {
            p.revents & libc::POLLNVAL != 0
        };
        if closed {
            // The lowest free descriptor, which is this one (0, 1, 2 in order).
            // SAFETY: open with a NUL-terminated path; the descriptor is
            // kept for the life of the process.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } < 0 {
                std::process::abort();
            }
        }
    }
    // A write to a closed pipe or socket fails with EPIPE instead of
    // killing urunc (std's default, which the monitor inherits as before).
    // SAFETY: setting a signal disposition to SIG_IGN has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

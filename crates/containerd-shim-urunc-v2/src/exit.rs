//! The shim's "time to exit" flag, set by the task service's `Shutdown`.
//! The serving loop (serve.rs) polls its eventfd beside the signalfd, so
//! no thread sits blocked on it there; `wait` serves the crate's entry
//! point (shim.rs).

use std::{
    os::fd::{AsFd, BorrowedFd},
    sync::{Condvar, Mutex},
};

use nix::sys::eventfd::{EfdFlags, EventFd};

#[derive(Default)]
pub struct Exit {
    set: Mutex<bool>,
    cv: Condvar,
    fd: Option<EventFd>,
}

impl Exit {
    /// A flag that can also be polled (`fd`).
    pub fn pollable() -> std::io::Result<Exit> {
        Ok(Exit {
            fd: Some(EventFd::from_flags(
                EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
            )?),
            ..Default::default()
        })
    }

    /// Ask the shim to exit (idempotent).
    pub fn signal(&self) {
        *self.set.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
        if let Some(fd) = &self.fd {
            // Only fails once the counter is near 2^64: still readable.
            let _ = fd.write(1);
        }
    }

    pub fn is_set(&self) -> bool {
        *self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Readable once `signal` was called (a `pollable` flag only).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Block until `signal` was called.
    pub fn wait(&self) {
        let mut set = self.set.lock().unwrap_or_else(|p| p.into_inner());
        while !*set {
            set = self.cv.wait(set).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::sync::Arc;

    #[test]
    fn signal_wakes_wait_and_poll() {
        let exit = Arc::new(Exit::pollable().unwrap());
        assert!(!exit.is_set());
        let mut fds = [PollFd::new(exit.fd().unwrap(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 0);
        let e = Arc::clone(&exit);
        let t = std::thread::spawn(move || e.signal());
        exit.wait();
        t.join().unwrap();
        assert!(exit.is_set());
        let mut fds = [PollFd::new(exit.fd().unwrap(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 1);
        // Idempotent: a second signal neither blocks nor unsets.
        exit.signal();
        exit.wait();
    }
}

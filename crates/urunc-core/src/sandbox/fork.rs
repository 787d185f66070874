//! The fork of the waiting process, born in its cgroup where the kernel
//! allows it.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`) takes the
//! kernel's `cgroup_threadgroup_rwsem` for writing; unless the hierarchy is
//! mounted with `favordynmods` (`CONFIG_CGROUP_FAVOR_DYNMODS`), the first
//! such write after a quiet moment waits for an RCU grace period
//! (kernel/cgroup/cgroup.c, `cgroup_attach_lock`; kernel/rcu/sync.c,
//! `rcu_sync_enter`). Measured on this project's machine (Linux 6.18): 8 ms
//! for the first write, 40–60 µs for the next ones, and 11.7 ms of a
//! containerd `create`. `clone3(2)` with `CLONE_INTO_CGROUP` (Linux 5.7,
//! cgroup v2 only) creates the child in the cgroup instead, taking that
//! lock only for reading, as every fork does (`cgroup_can_fork`).

use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsRawFd, BorrowedFd};

// linux/include/uapi/linux/sched.h (Linux 5.7): the flag, and the argument
// structure up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks; with `cgroup` (an open cgroup v2 directory) the child is born in
/// it. Returns whether it was: `false` when the kernel cannot (no
/// `clone3`, Linux < 5.3: `ENOSYS`; no `CLONE_INTO_CGROUP`, < 5.7:
/// `E2BIG` or `EINVAL`) or refuses this cgroup (not a leaf domain, no
/// permission), after which the caller moves the child by `cgroup.procs`
/// and reports that write's error, naming the file.
///
/// # Safety
/// As `fork(2)`: the caller is single-threaded, so the child may run any
/// code. The child of `clone3` has not had glibc's `fork()` bookkeeping
/// (atfork handlers, the thread's cached TID, lock resets), which matters
/// only for locks held or threads running at the fork: a single-threaded
/// caller has none. `raise(3)` and `abort(3)` ask the kernel for the TID
/// (glibc 2.34+, nptl/pthread_kill.c), `getpid(2)` is not cached
/// (glibc 2.25+), and a `fork()` or `posix_spawn()` in the child is glibc's
/// own again.
pub unsafe fn fork_into(cgroup: Option<BorrowedFd>) -> nix::Result<(ForkResult, bool)> {
    if let Some(fd) = cgroup {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: clone3 reads `args` (valid, its size given) and, with no
        // CLONE_VM and no stack, duplicates the process as fork does; the
        // caller's contract covers the child.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match r {
            0 => return Ok((ForkResult::Child, true)),
            pid if pid > 0 => {
                return Ok((
                    ForkResult::Parent {
                        child: Pid::from_raw(pid as i32),
                    },
                    true,
                ))
            }
            _ => {}
        }
    }
    // SAFETY: the caller's contract.
    unsafe { fork() }.map(|f| (f, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// On the host's cgroup v2 hierarchy (the unified one, or the hybrid
    /// layout's `/sys/fs/cgroup/unified`): the child's `/proc/self/cgroup`
    /// names the cgroup before anything moved it.
    #[test]
    fn child_is_born_in_the_cgroup() {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|r| std::path::Path::new(r).join("cgroup.controllers").exists());
        let Some(root) = root.filter(|_| nix::unistd::Uid::effective().is_root()) else {
            println!("SKIP: child_is_born_in_the_cgroup: needs root and a cgroup v2 hierarchy");
            return;
        };
        let name = format!("urunc-fork-test-{}", std::process::id());
        let dir = std::path::Path::new(root).join(&name);
        std::fs::create_dir(&dir).unwrap();
        let fd = std::fs::File::open(&dir).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the harness has other threads, so the child uses only
        // async-signal-safe calls (open, read, write, _exit) and no
        // allocation before it exits.
        let forked = unsafe { fork_into(Some(fd.as_fd())) }.unwrap();
        match forked {
            (ForkResult::Child, _) => {
                let mut buf = [0u8; 4096];
                // SAFETY: a NUL-terminated path, a buffer of its stated
                // length, a descriptor of ours; _exit runs no destructors.
                unsafe {
                    let f = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
                    let n = libc::read(f, buf.as_mut_ptr().cast(), buf.len());
                    if n > 0 {
                        libc::write(w.as_raw_fd(), buf.as_ptr().cast(), n as usize);
                    }
                    libc::_exit(0);
                }
            }
            (ForkResult::Parent { child }, born_in) => {
                drop(w);
                let _ = nix::sys::wait::waitpid(child, None);
                let mut got = String::new();
                use std::io::Read;
                std::fs::File::from(r).read_to_string(&mut got).unwrap();
                let _ = std::fs::remove_dir(&dir);
                assert!(born_in, "clone3(CLONE_INTO_CGROUP) was refused");
                let v2 = got.lines().find(|l| l.starts_with("0::"));
                assert_eq!(v2, Some(format!("0::/{name}").as_str()), "{got}");
            }
        }
    }
}

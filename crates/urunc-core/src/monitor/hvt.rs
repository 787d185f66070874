//! Solo5-hvt (`solo5-hvt`): the KVM tender. When seccomp is on, urunc
//! confines it with an allowlist filter applied right before the exec
//! (solo5-hvt has none of its own, unlike solo5-spt).

use super::solo5;
use super::solo5_manifest::Manifest;
use super::solo5_manifest::Target;
use super::{Monitor, MonitorCommand, MonitorRequest};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;

pub struct Hvt;

impl Monitor for Hvt {
    fn name(&self) -> &'static str {
        "hvt"
    }

    fn default_binary(&self) -> &'static str {
        "solo5-hvt"
    }

    fn default_overhead_mib(&self) -> u64 {
        16
    }

    /// The tenders open a disk read-write only (solo5 v0.9.0
    /// `tenders/common/block_attach.c`: `open(path, O_RDWR)`).
    fn read_only_disks(&self) -> bool {
        false
    }

    fn inspect(&self, kernel: &std::fs::File) -> Result<Option<Manifest>, String> {
        solo5::inspect(kernel, Target::Hvt).map(Some)
    }

    fn command(&self, req: &MonitorRequest) -> Result<MonitorCommand, String> {
        solo5::command(req, true)
    }

    fn seccomp_filter(&self) -> Result<Option<BpfProgram>, String> {
        filter().map(Some)
    }
}

/// Everything solo5-hvt calls, from the `execve` that starts it (dynamic
/// loader and libc start-up included) to its exit, measured with
/// `strace -f` over the hello, block, network (answering pings) and
/// exception test unikernels and checked against the tender's sources:
/// KVM ioctls, getifaddrs() for the tap, the
/// guest's block (pread/pwrite) and network (read/write on the tap) I/O,
/// the epoll/timerfd wait behind `solo5_yield`, and the abort path.
const ALLOWED: &[i64] = &[
    // exec and loader
    libc::SYS_execve,
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prlimit64,
    libc::SYS_getrandom,
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_personality,
    libc::SYS_futex,
    // I/O: console, block, tap, KVM
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_ioctl,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    // getifaddrs() when attaching a tap: a route netlink dump (socket
    // itself is only allowed for AF_NETLINK, see `filter`)
    libc::SYS_bind,
    libc::SYS_getsockname,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    // solo5_yield and the clock
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    // signals, abort and exit
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

fn target_arch() -> Result<seccompiler::TargetArch, String> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e:?}"))
}

/// System calls only x86-64 has (aarch64 has the `*at`/`pwait` forms).
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[i64] = &[
    libc::SYS_arch_prctl,
    libc::SYS_access,
    libc::SYS_open,
    libc::SYS_epoll_wait,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_X86_64: &[i64] = &[];

/// The hvt allowlist as BPF; any other system call kills the monitor.
pub fn filter() -> Result<BpfProgram, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp filter for solo5-hvt: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_X86_64)
        .map(|&s| (s, vec![]))
        .collect();
    // socket() only for getifaddrs()'s route netlink socket.
    let netlink_only = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_NETLINK as u64,
    )
    .map_err(err)?])
    .map_err(err)?;
    rules.insert(libc::SYS_socket, vec![netlink_only]);
    let f = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        target_arch()?,
    )
    .map_err(err)?;
    f.try_into().map_err(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_compiles() {
        let p = super::filter().unwrap();
        assert!(p.len() > super::ALLOWED.len());
    }
}

//! The process table: each container's init and exec processes, their
//! state and stdio, and exits that arrived before their process was known.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs::File,
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
};

use containerd_shim::{
    api::Status as TaskStatus,
    protos::{
        protobuf::well_known_types::timestamp::Timestamp,
        ttrpc::{self, Code},
    },
};

use crate::{
    io::{self, ConsoleSocket, StdinWriter},
    rpc::{err, now},
    runtime::{ChildStdio, Runtime},
};

/// Exits of PIDs not (yet) known as a container's: kept this many.
const EARLY_EXITS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
    /// An exec whose start failed: it never ran. As with containerd's runc
    /// shim (v1.6 `pkg/process`: a failed exec start leaves the process
    /// "created" and releases its waiters), it reports "created", `Wait`
    /// answers at once with exit status 0, a kill is refused with
    /// FAILED_PRECONDITION and `Delete` removes it; no exit event is sent.
    /// containerd (CRI ExecSync, `ctr task delete --force`) waits, kills and
    /// deletes such an exec: a `Wait` that never answers costs it its
    /// one-minute cleanup timeout.
    StartFailed,
}

/// A process of a container: its init, or one added by `Exec`.
pub struct Proc {
    /// 0 until the process exists (an exec before its start).
    pub pid: i32,
    pub status: Status,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub stdin_writer: Option<StdinWriter>,
    pub console: Option<File>,
    pub io_done: Option<mpsc::Receiver<()>>,
    /// OCI process JSON of an exec process.
    pub spec: Vec<u8>,
}

impl Proc {
    pub fn new(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Proc {
        Proc {
            pid: 0,
            status: Status::Created,
            exit_status: 0,
            exited_at: None,
            stdin: stdin.to_string(),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            terminal,
            stdin_writer: None,
            console: None,
            io_done: None,
            spec: Vec::new(),
        }
    }

    pub fn set_io(&mut self, io: ProcIo) {
        self.stdin_writer = io.stdin_writer;
        self.console = io.console;
        self.io_done = io.io_done;
    }

    pub fn close_io(&mut self) {
        if let Some(w) = self.stdin_writer.take() {
            io::close_writer(&w);
        }
        self.console.take();
    }

    pub fn task_status(&self) -> TaskStatus {
        match self.status {
            Status::Created | Status::StartFailed => TaskStatus::CREATED,
            Status::Running => TaskStatus::RUNNING,
            Status::Paused => TaskStatus::PAUSED,
            Status::Stopped => TaskStatus::STOPPED,
        }
    }
}

pub struct Container {
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub rootfs_mounted: bool,
    /// No PID namespace of its own: see `kill_all_on_exit`.
    pub kill_all_on_exit: bool,
    pub oom: Option<Arc<crate::oom::OomWatch>>,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
}

impl Container {
    pub fn proc_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc, ttrpc::Error> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs.get_mut(exec_id).ok_or_else(|| {
            err(
                Code::NOT_FOUND,
                format!("exec process {exec_id} of container {id} not found"),
            )
        })
    }
}

/// What the shim keeps of a process's stdio after the runtime started it.
#[derive(Default)]
pub struct ProcIo {
    pub stdin_writer: Option<StdinWriter>,
    pub console: Option<File>,
    pub io_done: Option<mpsc::Receiver<()>>,
}

/// Set up stdio for a process and run the runtime command `launch` with it
/// (`create` or `exec`): FIFOs passed as the runtime's stdio, or, with a
/// terminal, a console socket whose pty master the shim then copies.
pub fn with_stdio(
    id: &str,
    terminal: bool,
    stdin: &str,
    stdout: &str,
    stderr: &str,
    launch: impl FnOnce(ChildStdio, Option<&Path>) -> Result<(), String>,
) -> Result<ProcIo, String> {
    if terminal {
        let sock = ConsoleSocket::new(&std::env::temp_dir(), id)?;
        let null_out = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok()
        };
        let stdio = ChildStdio {
            stdin: File::open("/dev/null").ok(),
            stdout: null_out(),
            stderr: null_out(),
        };
        launch(stdio, Some(&sock.path))?;
        let master = sock.receive_master()?;
        let (io_done, stdin_writer) = io::spawn_console_copy(&master, stdin, stdout)?;
        Ok(ProcIo {
            stdin_writer,
            console: Some(master),
            io_done: Some(io_done),
        })
    } else {
        let (stdio, writer) = io::setup_pipes(stdin, stdout, stderr)?;
        if let Err(e) = launch(stdio, None) {
            if let Some(w) = &writer {
                io::close_writer(w);
            }
            return Err(e);
        }
        Ok(ProcIo {
            stdin_writer: writer,
            ..Default::default()
        })
    }
}

pub fn read_pid_file(path: &Path) -> Result<i32, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        Ok(p) => Err(format!("pid file {} holds {p}", path.display())),
        Err(e) => Err(format!("pid file {} holds {s:?}: {e}", path.display())),
    }
}

#[derive(Default)]
pub struct State {
    pub containers: HashMap<String, Container>,
    /// (sequence number, pid, exit code, time) of exits of unknown PIDs.
    pub early_exits: VecDeque<(u64, i32, i32, Timestamp)>,
    /// Sequence number of the next early exit.
    pub exit_seq: u64,
    /// Containers whose `Delete` is under way (`Tasks::begin_delete`).
    pub deleting: HashSet<String>,
}

impl State {
    /// Take the recorded exit of `pid` if it exited before it was known.
    /// Only exits recorded at or after sequence `since` count: an older
    /// exit of the same PID was another process (PIDs get reused).
    pub fn take_early_exit(&mut self, pid: i32, since: u64) -> Option<(i32, Timestamp)> {
        let i = self
            .early_exits
            .iter()
            .position(|(seq, p, _, _)| *p == pid && *seq >= since)?;
        self.early_exits.remove(i).map(|(_, _, c, t)| (c, t))
    }

    pub fn record_early_exit(&mut self, pid: i32, code: i32) {
        if self.early_exits.len() >= EARLY_EXITS {
            self.early_exits.pop_front();
        }
        let seq = self.exit_seq;
        self.exit_seq += 1;
        self.early_exits.push_back((seq, pid, code, now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_exits_match_only_recent_records() {
        let mut st = State::default();
        st.record_early_exit(100, 1);
        let since = st.exit_seq;
        // PID 100 exited before `since`: another process, not ours.
        assert!(st.take_early_exit(100, since).is_none());
        st.record_early_exit(100, 7);
        assert_eq!(st.take_early_exit(100, since).map(|(c, _)| c), Some(7));
        assert!(st.take_early_exit(100, since).is_none());
        for pid in 0..(EARLY_EXITS as i32 + 5) {
            st.record_early_exit(1000 + pid, 0);
        }
        assert_eq!(st.early_exits.len(), EARLY_EXITS);
        assert!(st.take_early_exit(1000, 0).is_none(), "oldest not evicted");
        assert!(st
            .take_early_exit(1000 + EARLY_EXITS as i32 + 4, 0)
            .is_some());
    }
}

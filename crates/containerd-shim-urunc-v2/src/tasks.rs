//! The shim's tasks: the process table behind one lock, the lifecycle of
//! creating and starting processes, and the handling of their exits.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use containerd_shim::{
    api,
    monitor::{monitor_subscribe, ExitEvent, Subject, Topic},
    protos::{
        events::task::{TaskCreate, TaskExecStarted, TaskExit, TaskIO, TaskStart},
        protobuf::{well_known_types::timestamp::Timestamp, Message, MessageField},
        topics,
        ttrpc::{self, Code},
    },
};
use log::{info, warn};

use crate::{
    bundle::{decode_options, kill_all_on_exit, runtime_binary, runtime_root, RUNTIME_STATE_FILE},
    events::Publisher,
    exit::Exit,
    io::{self, Drain},
    mount,
    process::{read_pid_file, with_stdio, Container, Proc, State, Status},
    rpc::{err, now},
    runtime::Runtime,
};

/// How long an exit waits, at most, before it is reported: for the
/// container's other processes to be gone and for containerd to have read
/// the process's output.
const IO_DRAIN: Duration = Duration::from_secs(2);

/// Whether `pid` is a process that still runs (a zombie has closed its
/// files).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // State follows the parenthesised command name.
            let state = s.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(!matches!(state, 'Z' | 'X' | 'x'))
        })
        .unwrap_or(false)
}

/// Kill what is left of a container whose init exited (`kill --all`) and
/// wait, until `deadline`, until none of it runs.
fn kill_leftovers(rt: &Runtime, id: &str, deadline: Instant) {
    if let Err(e) = rt.kill(id, libc::SIGKILL as u32, true) {
        info!("kill the rest of {id} after its init exited: {e}");
    }
    while Instant::now() < deadline {
        match rt.ps(id) {
            Ok(pids) if pids.iter().any(|p| alive(*p)) => {
                thread::sleep(Duration::from_millis(10));
            }
            _ => break,
        }
    }
}

/// A claimed deletion (`Tasks::begin_delete`), released when dropped.
pub struct Deleting<'a> {
    tasks: &'a Tasks,
    id: String,
}

impl Drop for Deleting<'_> {
    fn drop(&mut self) {
        self.tasks.lock().deleting.remove(&self.id);
        self.tasks.changed.notify_all();
    }
}

/// The shim's tasks; shared by the request handlers and the exit watcher.
pub struct Tasks {
    pub namespace: String,
    pub exit: Arc<Exit>,
    pub state: Mutex<State>,
    pub changed: Condvar,
    /// Held while a process is being started (until its PID is recorded
    /// and TaskStart/TaskExecStarted is queued), and by the exit watcher
    /// before it handles an exit: a short-lived process's exit is then
    /// never reported before its start.
    pub lifecycle: Mutex<()>,
    pub events: Publisher,
}

impl Tasks {
    /// The tasks of a shim serving containerd namespace `namespace`, with
    /// their event publisher and exit watcher running.
    pub fn new(namespace: String, exit: Arc<Exit>) -> Arc<Tasks> {
        let tasks = Arc::new(Tasks {
            events: Publisher::start(namespace.clone()),
            namespace,
            exit,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            lifecycle: Mutex::new(()),
        });
        match monitor_subscribe(Topic::Pid) {
            Ok(sub) => {
                let weak = Arc::downgrade(&tasks);
                thread::spawn(move || {
                    while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
                        let Some(tasks) = weak.upgrade() else { break };
                        if let Subject::Pid(pid) = subject {
                            tasks.process_exit(pid, exit_code);
                        }
                    }
                });
            }
            Err(e) => warn!("cannot watch container exits: {e}"),
        }
        tasks
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No container, and no delete still to answer: the shim may exit.
    pub fn idle(&self) -> bool {
        let st = self.lock();
        st.containers.is_empty() && st.deleting.is_empty()
    }

    pub fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish<M: Message>(&self, topic: &'static str, type_url: &'static str, msg: &M) {
        self.events.publish(topic, type_url, msg);
    }

    pub fn publish_exit(&self, id: &str, exec_id: &str, pid: i32, code: i32, ts: Timestamp) {
        self.publish(
            topics::TASK_EXIT_EVENT_TOPIC,
            "containerd.events.TaskExit",
            &TaskExit {
                container_id: id.to_string(),
                id: if exec_id.is_empty() { id } else { exec_id }.to_string(),
                pid: pid as u32,
                exit_status: code as u32,
                exited_at: MessageField::some(ts),
                ..Default::default()
            },
        );
    }

    /// Report the exit of `pid`. As containerd's runc shim does, the rest
    /// of a container without its own PID namespace is killed first. Then,
    /// unlike it (its own copy threads hold the FIFOs; here the container's
    /// processes write to them directly), the report waits, bounded, until
    /// containerd has read the process's output: containerd closes the
    /// FIFOs once it has handled the exit.
    pub fn process_exit(&self, pid: i32, code: i32) {
        let _order = self.lifecycle();
        let (id, exec_id, io_done, outputs, leftovers) = {
            let mut st = self.lock();
            let mut found = None;
            for (id, c) in st.containers.iter_mut() {
                let live = |p: &Proc| p.pid == pid && p.status != Status::Stopped;
                let rt = c.kill_all_on_exit.then(|| c.runtime.clone());
                if live(&c.init) {
                    let p = &mut c.init;
                    let outputs = [p.stdout.clone(), p.stderr.clone()];
                    found = Some((id.clone(), String::new(), p.io_done.take(), outputs, rt));
                    break;
                }
                if let Some((eid, p)) = c.execs.iter_mut().find(|(_, p)| live(p)) {
                    let outputs = [p.stdout.clone(), p.stderr.clone()];
                    found = Some((id.clone(), eid.clone(), p.io_done.take(), outputs, None));
                    break;
                }
            }
            match found {
                Some(f) => f,
                None => {
                    st.record_early_exit(pid, code);
                    return;
                }
            }
        };
        let deadline = Instant::now() + IO_DRAIN;
        if let Some(rt) = leftovers {
            kill_leftovers(&rt, &id, deadline);
        }
        if let Some(rx) = io_done {
            let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        // An init's processes are all gone by now (the kernel's, for a PID
        // namespace of its own; `kill_leftovers` otherwise): its FIFOs
        // reach EOF, and containerd gets to close them itself.
        let drain = if exec_id.is_empty() {
            Drain::Closed
        } else {
            Drain::Read
        };
        io::wait_output_read(&[&outputs[0], &outputs[1]], drain, deadline);
        // An OOM kill is reported before the exit it caused.
        if exec_id.is_empty() {
            let oom = self.lock().containers.get(&id).and_then(|c| c.oom.clone());
            if let Some(w) = oom {
                let _ = w.check();
            }
        }
        let ts = now();
        {
            let mut st = self.lock();
            if let Some(p) = st
                .containers
                .get_mut(&id)
                .and_then(|c| c.proc_mut(&id, &exec_id).ok())
            {
                p.status = Status::Stopped;
                p.exit_status = code as u32;
                p.exited_at = Some(ts.clone());
                if let Some(w) = p.stdin_writer.take() {
                    io::close_writer(&w);
                }
            }
        }
        self.changed.notify_all();
        self.publish_exit(&id, &exec_id, pid, code, ts);
    }

    pub fn get<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T, ttrpc::Error>,
    ) -> Result<T, ttrpc::Error> {
        let mut st = self.lock();
        match st.containers.get_mut(id) {
            Some(c) => f(c),
            None => Err(err(Code::NOT_FOUND, format!("container {id} not found"))),
        }
    }

    pub fn get_proc<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut Proc) -> Result<T, ttrpc::Error>,
    ) -> Result<T, ttrpc::Error> {
        self.get(id, |c| f(c.proc_mut(id, exec_id)?))
    }

    /// Claim the deletion of container `id`: deletes of one container run
    /// one at a time, and a later one finds it gone (NOT_FOUND) once the
    /// first has returned; `shutdown` does not end the shim while one is
    /// under way. containerd 1.6 sends one task's deletes over one shim
    /// connection, closes it when the first of them returns (and asks for
    /// a `Shutdown`): before, racing deletes all ran the runtime's delete,
    /// a loser could return first, and the winner's answer was lost
    /// ("ttrpc: closed"). Of 20 races of 4 `ctr task delete`s, 14 had no
    /// delete succeed; 6 with this.
    pub fn begin_delete(&self, id: &str) -> Result<Deleting<'_>, ttrpc::Error> {
        let mut st = self.lock();
        while st.deleting.contains(id) {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if !st.containers.contains_key(id) {
            return Err(err(Code::NOT_FOUND, format!("container {id} not found")));
        }
        st.deleting.insert(id.to_string());
        Ok(Deleting {
            tasks: self,
            id: id.to_string(),
        })
    }

    pub fn runtime_of(&self, id: &str) -> Result<Runtime, ttrpc::Error> {
        self.get(id, |c| Ok(c.runtime.clone()))
    }

    pub fn create(&self, req: api::CreateTaskRequest) -> Result<u32, String> {
        let id = req.id.as_str();
        if id.is_empty() {
            return Err("create: empty container id".to_string());
        }
        if !req.checkpoint.is_empty() {
            return Err(format!(
                "create {id}: restoring from a checkpoint is not supported"
            ));
        }
        // Exits recorded from now on may be this container's init.
        let since = {
            let st = self.lock();
            if st.containers.contains_key(id) {
                return Err(format!("create {id}: container already exists"));
            }
            st.exit_seq
        };
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.join("config.json").is_file() {
            return Err(format!(
                "create {id}: bundle {} has no config.json",
                bundle.display()
            ));
        }
        let opts = decode_options(req.options.as_ref())?;
        let binary = runtime_binary(&opts.binary_name);
        let root = runtime_root(&opts.root, &self.namespace);
        let rt = Runtime::new(&binary, root.clone(), &bundle);
        let state = serde_json::json!({"binary": binary, "root": root});
        std::fs::write(bundle.join(RUNTIME_STATE_FILE), state.to_string()).map_err(|e| {
            format!(
                "create {id}: write {}: {e}",
                bundle.join(RUNTIME_STATE_FILE).display()
            )
        })?;

        // Rootfs.
        let rootfs = bundle.join("rootfs");
        let mut mounted = false;
        if !req.rootfs.is_empty() {
            std::fs::create_dir_all(&rootfs)
                .map_err(|e| format!("create {id}: mkdir {}: {e}", rootfs.display()))?;
            for m in &req.rootfs {
                if let Err(e) = mount::mount_one(&m.type_, &m.source, &m.options, &rootfs) {
                    let _ = mount::unmount_all(&rootfs);
                    return Err(format!("create {id}: {e}"));
                }
                mounted = true;
            }
        }
        let undo = |msg: String| {
            let _ = rt.delete(id, true);
            if mounted {
                if let Err(e) = mount::unmount_all(&rootfs) {
                    warn!("{e}");
                }
            }
            msg
        };

        // Stdio and the runtime's create.
        let pid_file = bundle.join("init.pid");
        let pio = with_stdio(
            id,
            req.terminal,
            &req.stdin,
            &req.stdout,
            &req.stderr,
            |stdio, sock| rt.create(id, &bundle, &pid_file, sock, stdio),
        )
        .map_err(undo)?;
        let pid = read_pid_file(&pid_file).map_err(|e| undo(format!("create {id}: {e}")))?;

        let mut init = Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        init.pid = pid;
        init.set_io(pio);
        let early = {
            let mut st = self.lock();
            let early = st.take_early_exit(pid, since);
            if let Some((code, ts)) = &early {
                init.status = Status::Stopped;
                init.exit_status = *code as u32;
                init.exited_at = Some(ts.clone());
            }
            st.containers.insert(
                id.to_string(),
                Container {
                    bundle: bundle.clone(),
                    runtime: rt.clone(),
                    rootfs_mounted: mounted,
                    kill_all_on_exit: kill_all_on_exit(&bundle),
                    oom: None,
                    init,
                    execs: HashMap::new(),
                },
            );
            early
        };
        self.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            "containerd.events.TaskCreate",
            &TaskCreate {
                container_id: id.to_string(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        if let Some((code, ts)) = early {
            io::wait_output_read(
                &[&req.stdout, &req.stderr],
                Drain::Closed,
                Instant::now() + IO_DRAIN,
            );
            self.changed.notify_all();
            self.publish_exit(id, "", pid, code, ts);
        }
        Ok(pid as u32)
    }

    /// Start the init process (`exec_id` empty) or an exec process.
    pub fn start(&self, id: &str, exec_id: &str) -> Result<u32, ttrpc::Error> {
        let _order = self.lifecycle();
        if exec_id.is_empty() {
            let (rt, pid, status) =
                self.get(id, |c| Ok((c.runtime.clone(), c.init.pid, c.init.status)))?;
            if status != Status::Created {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("container {id} cannot be started: it is {status:?}"),
                ));
            }
            rt.start(id).map_err(|e| err(Code::UNKNOWN, e))?;
            self.get(id, |c| {
                if c.init.status == Status::Created {
                    c.init.status = Status::Running;
                }
                Ok(())
            })?;
            self.publish(
                topics::TASK_START_EVENT_TOPIC,
                "containerd.events.TaskStart",
                &TaskStart {
                    container_id: id.to_string(),
                    pid: pid as u32,
                    ..Default::default()
                },
            );
            return Ok(pid as u32);
        }

        let (rt, bundle, init_status, p) = self.get(id, |c| {
            let init_status = c.init.status;
            let p = c.proc_mut(id, exec_id)?;
            if p.status != Status::Created {
                return Err(err(
                    Code::FAILED_PRECONDITION,
                    format!(
                        "exec {exec_id} in {id} cannot be started: it is {:?}",
                        p.status
                    ),
                ));
            }
            let spec = (
                p.spec.clone(),
                p.stdin.clone(),
                p.stdout.clone(),
                p.stderr.clone(),
                p.terminal,
            );
            Ok((c.runtime.clone(), c.bundle.clone(), init_status, spec))
        })?;
        if init_status != Status::Running {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("cannot exec in container {id}: it is {init_status:?}"),
            ));
        }
        let (spec, stdin, stdout, stderr, terminal) = p;
        let tag = format!("{:x}", crate::short_hash(exec_id));
        let spec_file = bundle.join(format!("exec-{tag}.json"));
        let pid_file = bundle.join(format!("exec-{tag}.pid"));
        std::fs::write(&spec_file, &spec)
            .map_err(|e| err(Code::UNKNOWN, format!("write {}: {e}", spec_file.display())))?;
        let _ = std::fs::remove_file(&pid_file);
        let since = self.lock().exit_seq;
        let launched = with_stdio(id, terminal, &stdin, &stdout, &stderr, |stdio, sock| {
            rt.exec(id, &spec_file, &pid_file, sock, stdio)
        })
        .and_then(|pio| read_pid_file(&pid_file).map(|pid| (pid, pio)));
        let _ = std::fs::remove_file(&spec_file);
        let _ = std::fs::remove_file(&pid_file);
        let (pid, pio) = match launched {
            Ok(l) => l,
            Err(e) => {
                // Waiters (containerd calls Wait before Start) are released.
                let _ = self.get_proc(id, exec_id, |p| {
                    p.status = Status::StartFailed;
                    Ok(())
                });
                self.changed.notify_all();
                return Err(err(Code::UNKNOWN, format!("exec {exec_id} in {id}: {e}")));
            }
        };
        let early = self.lock().take_early_exit(pid, since);
        if early.is_some() {
            // Exited already: as in `process_exit`, its waiters (containerd
            // waits before it starts an exec) learn it once its output was
            // read. The exit watcher waits for `lifecycle` meanwhile.
            io::wait_output_read(&[&stdout, &stderr], Drain::Read, Instant::now() + IO_DRAIN);
        }
        self.get_proc(id, exec_id, |p| {
            p.pid = pid;
            p.set_io(pio);
            match &early {
                Some((code, ts)) => {
                    p.status = Status::Stopped;
                    p.exit_status = *code as u32;
                    p.exited_at = Some(ts.clone());
                }
                None => p.status = Status::Running,
            }
            Ok(())
        })?;
        self.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            "containerd.events.TaskExecStarted",
            &TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        if let Some((code, ts)) = early {
            self.changed.notify_all();
            self.publish_exit(id, exec_id, pid, code, ts);
        }
        Ok(pid as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_tells_running_from_gone() {
        assert!(!alive(u32::MAX), "a PID that cannot exist runs");
        assert!(alive(std::process::id()));
    }
}

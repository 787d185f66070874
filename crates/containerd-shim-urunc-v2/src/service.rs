//! The shim (start/delete actions) and the task service (task API v2).

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use containerd_shim::{
    self as shim,
    api::{self, Status as TaskStatus},
    monitor::{monitor_subscribe, ExitEvent, Subject, Topic},
    protos::{
        events::task::{
            TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM,
            TaskPaused, TaskResumed, TaskStart,
        },
        protobuf::{
            well_known_types::{any::Any, timestamp::Timestamp},
            Message, MessageField,
        },
        shim::{event::Envelope, events::ForwardRequest, oci::Options},
        topics,
        ttrpc::{self, context::Context, Code},
        types::task::ProcessInfo,
        EventsClient,
    },
    publisher::RemotePublisher,
    util::timestamp,
    DeleteResponse, ExitSignal, Flags, StartOpts, TtrpcContext, TtrpcResult,
};
use log::{info, warn};

use crate::{
    io::{self, ConsoleSocket, StdinWriter},
    mount,
    runtime::{self, ChildStdio, Runtime},
};

/// File in the bundle remembering which runtime and root a container uses,
/// for the `delete` action after a shim died.
const RUNTIME_STATE_FILE: &str = "urunc-shim.json";
/// Exits of PIDs not (yet) known as a container's: kept this many.
const EARLY_EXITS: usize = 64;
/// How long shutdown waits for queued events to reach containerd.
const EVENTS_FLUSH: Duration = Duration::from_secs(2);
/// How long an exit waits, at most, before it is reported: for the
/// container's other processes to be gone and for containerd to have read
/// the process's output.
const IO_DRAIN: Duration = Duration::from_secs(2);

fn err(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

fn now() -> Timestamp {
    timestamp().unwrap_or_default()
}

/// The runtime binary to use: shim options, else `$URUNC_SHIM_RUNTIME`,
/// else `urunc`.
pub fn runtime_binary(option: &str) -> String {
    if !option.is_empty() {
        return option.to_string();
    }
    match std::env::var(runtime::RUNTIME_ENV) {
        Ok(v) if !v.is_empty() => v,
        _ => runtime::DEFAULT_RUNTIME.to_string(),
    }
}

/// The runtime's `--root` for a namespace (unless the options name one).
pub fn runtime_root(option: &str, namespace: &str) -> PathBuf {
    if !option.is_empty() {
        return PathBuf::from(option);
    }
    Path::new(runtime::DEFAULT_ROOT).join(namespace)
}

/// Decode runc-style shim options (`containerd.runc.v1.Options`) from the
/// `Create` request; other option types are ignored.
fn decode_options(
    any: Option<&shim::protos::protobuf::well_known_types::any::Any>,
) -> Result<Options, String> {
    let Some(any) = any else {
        return Ok(Options::default());
    };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        Options::parse_from_bytes(&any.value)
            .map_err(|e| format!("shim options ({}): {e}", any.type_url))
    } else {
        if !any.type_url.is_empty() {
            info!("ignoring shim options of type {}", any.type_url);
        }
        Ok(Options::default())
    }
}

/// Shim-level entry points (`start`, `delete` actions, serving).
pub struct Shim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: String,
}

impl shim::Shim for Shim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut shim::Config) -> Self {
        // The crate routes SIGPIPE to its signal thread, which logs it at
        // debug level, to the log FIFO. When that FIFO's reader is gone
        // (containerd restarting, or the bundle of the first container of
        // a shared shim deleted) every log write raises SIGPIPE again and
        // the thread spins at 100% CPU. Ignored, a write just fails.
        // SAFETY: setting a signal disposition to SIG_IGN has no memory
        // effects; it runs after the crate registered its handlers.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Shim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle: args.bundle.clone(),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, shim::Error> {
        // One shim per pod when CRI groups containers by sandbox.
        let grouping = std::fs::read_to_string("config.json")
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| {
                v.pointer("/annotations/io.kubernetes.cri.sandbox-id")
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| opts.id.clone());
        let (_pid, address) = shim::spawn(opts, &grouping, Vec::new())?;
        shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, shim::Error> {
        // Cleanup after a shim that died: containerd runs us in the bundle.
        let bundle = if self.bundle.is_empty() {
            std::env::current_dir().map_err(|e| shim::Error::Other(format!("cwd: {e}")))?
        } else {
            PathBuf::from(&self.bundle)
        };
        let (binary, root) = read_runtime_state(&bundle)
            .unwrap_or_else(|| (runtime_binary(""), runtime_root("", &self.namespace)));
        let rt = Runtime::new(&binary, root, &bundle);
        if let Err(e) = rt.delete(&self.id, true) {
            warn!("cleanup of {}: {e}", self.id);
        }
        if let Err(e) = mount::unmount_all(&bundle.join("rootfs")) {
            warn!("cleanup of {}: {e}", self.id);
        }
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(now()),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        Service::new(self.namespace.clone(), Arc::clone(&self.exit), publisher)
    }
}

/// Whether the container's other processes must be killed when its init
/// exits: unless the bundle gives it a PID namespace of its own (one that
/// the kernel tears down with its init), they would outlive it, holding its
/// output FIFOs open. containerd's runc shim decides the same way
/// (containerd v1.6 `runtime/v2/runc/util.go`, `ShouldKillAllOnExit`: a
/// `pid` namespace without a path means its own; an unreadable config means
/// kill).
fn kill_all_on_exit(bundle: &Path) -> bool {
    let Some(spec) = std::fs::read_to_string(bundle.join("config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    else {
        return true;
    };
    let own_pid_ns = spec
        .pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .is_some_and(|nss| {
            nss.iter().any(|ns| {
                ns.get("type").and_then(|t| t.as_str()) == Some("pid")
                    && ns
                        .get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .is_empty()
            })
        });
    !own_pid_ns
}

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

fn read_runtime_state(bundle: &Path) -> Option<(String, PathBuf)> {
    let s = std::fs::read_to_string(bundle.join(RUNTIME_STATE_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    Some((
        v.get("binary")?.as_str()?.to_string(),
        PathBuf::from(v.get("root")?.as_str()?),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
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
struct Proc {
    /// 0 until the process exists (an exec before its start).
    pid: i32,
    status: Status,
    exit_status: u32,
    exited_at: Option<Timestamp>,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    stdin_writer: Option<StdinWriter>,
    console: Option<File>,
    io_done: Option<mpsc::Receiver<()>>,
    /// OCI process JSON of an exec process.
    spec: Vec<u8>,
}

impl Proc {
    fn new(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Proc {
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

    fn set_io(&mut self, io: ProcIo) {
        self.stdin_writer = io.stdin_writer;
        self.console = io.console;
        self.io_done = io.io_done;
    }

    fn close_io(&mut self) {
        if let Some(w) = self.stdin_writer.take() {
            io::close_writer(&w);
        }
        self.console.take();
    }

    fn task_status(&self) -> TaskStatus {
        match self.status {
            Status::Created | Status::StartFailed => TaskStatus::CREATED,
            Status::Running => TaskStatus::RUNNING,
            Status::Paused => TaskStatus::PAUSED,
            Status::Stopped => TaskStatus::STOPPED,
        }
    }
}

struct Container {
    bundle: PathBuf,
    runtime: Runtime,
    rootfs_mounted: bool,
    /// No PID namespace of its own: see `kill_all_on_exit`.
    kill_all_on_exit: bool,
    oom: Option<Arc<crate::oom::OomWatch>>,
    init: Proc,
    execs: HashMap<String, Proc>,
}

impl Container {
    fn proc_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc, ttrpc::Error> {
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
struct ProcIo {
    stdin_writer: Option<StdinWriter>,
    console: Option<File>,
    io_done: Option<mpsc::Receiver<()>>,
}

/// Set up stdio for a process and run the runtime command `launch` with it
/// (`create` or `exec`): FIFOs passed as the runtime's stdio, or, with a
/// terminal, a console socket whose pty master the shim then copies.
fn with_stdio(
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
        let io_done = io::spawn_console_copy(&master, stdin, stdout)?;
        Ok(ProcIo {
            stdin_writer: None,
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

fn read_pid_file(path: &Path) -> Result<i32, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    match s.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        Ok(p) => Err(format!("pid file {} holds {p}", path.display())),
        Err(e) => Err(format!("pid file {} holds {s:?}: {e}", path.display())),
    }
}

#[derive(Default)]
struct State {
    containers: HashMap<String, Container>,
    /// (sequence number, pid, exit code, time) of exits of unknown PIDs.
    early_exits: VecDeque<(u64, i32, i32, Timestamp)>,
    /// Sequence number of the next early exit.
    exit_seq: u64,
}

impl State {
    /// Take the recorded exit of `pid` if it exited before it was known.
    /// Only exits recorded at or after sequence `since` count: an older
    /// exit of the same PID was another process (PIDs get reused).
    fn take_early_exit(&mut self, pid: i32, since: u64) -> Option<(i32, Timestamp)> {
        let i = self
            .early_exits
            .iter()
            .position(|(seq, p, _, _)| *p == pid && *seq >= since)?;
        self.early_exits.remove(i).map(|(_, _, c, t)| (c, t))
    }

    fn record_early_exit(&mut self, pid: i32, code: i32) {
        if self.early_exits.len() >= EARLY_EXITS {
            self.early_exits.pop_front();
        }
        let seq = self.exit_seq;
        self.exit_seq += 1;
        self.early_exits.push_back((seq, pid, code, now()));
    }
}

/// An event for containerd, already encoded. The type name is written out
/// rather than taken from the message descriptor: building protobuf
/// descriptors at run time costs each shim a few hundred KiB of heap.
struct Event {
    topic: &'static str,
    type_url: &'static str,
    value: Vec<u8>,
    /// Acknowledged once this and every earlier event went out; an event
    /// with an empty topic is only such a marker.
    ack: Option<mpsc::Sender<()>>,
}

/// Connect to containerd's TTRPC endpoint for events.
fn events_client() -> Option<EventsClient> {
    let addr = std::env::var("TTRPC_ADDRESS").ok()?;
    let fd = shim::util::connect(&addr)
        .map_err(|e| warn!("connect to containerd at {addr}: {e}"))
        .ok()?;
    ttrpc::Client::new(fd)
        .map(EventsClient::new)
        .map_err(|e| warn!("connect to containerd at {addr}: {e}"))
        .ok()
}

fn forward(client: &EventsClient, namespace: &str, ev: &Event) -> Result<(), ttrpc::Error> {
    let req = ForwardRequest {
        envelope: MessageField::some(Envelope {
            timestamp: MessageField::some(now()),
            namespace: namespace.to_string(),
            topic: ev.topic.to_string(),
            event: MessageField::some(Any {
                type_url: ev.type_url.to_string(),
                value: ev.value.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.forward(Context::default(), &req).map(drop)
}

struct Inner {
    namespace: String,
    exit: Arc<ExitSignal>,
    state: Mutex<State>,
    changed: Condvar,
    /// Held while a process is being started (until its PID is recorded
    /// and TaskStart/TaskExecStarted is queued), and by the exit watcher
    /// before it handles an exit: a short-lived process's exit is then
    /// never reported before its start.
    lifecycle: Mutex<()>,
    events: Mutex<mpsc::Sender<Event>>,
}

/// Task service; cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    fn new(namespace: String, exit: Arc<ExitSignal>, publisher: RemotePublisher) -> Service {
        // The crate's publisher encodes through protobuf descriptors (see
        // `Event`); this shim keeps its own connection instead.
        drop(publisher);
        let (tx, rx) = mpsc::channel::<Event>();
        let ns = namespace.clone();
        // Events go out in order from one thread, never from inside a
        // request handler.
        thread::spawn(move || {
            let mut client = None;
            for ev in rx {
                if ev.topic.is_empty() {
                    if let Some(a) = ev.ack {
                        let _ = a.send(());
                    }
                    continue;
                }
                // One reconnection attempt per event if containerd went away.
                for _ in 0..2 {
                    if client.is_none() {
                        client = events_client();
                    }
                    let Some(c) = &client else { break };
                    match forward(c, &ns, &ev) {
                        Ok(()) => break,
                        Err(e) => {
                            warn!("publish {}: {e}", ev.topic);
                            client = None;
                        }
                    }
                }
            }
        });
        let inner = Arc::new(Inner {
            namespace,
            exit,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            lifecycle: Mutex::new(()),
            events: Mutex::new(tx),
        });
        match monitor_subscribe(Topic::Pid) {
            Ok(sub) => {
                let weak = Arc::downgrade(&inner);
                thread::spawn(move || {
                    while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
                        let Some(inner) = weak.upgrade() else { break };
                        if let Subject::Pid(pid) = subject {
                            inner.process_exit(pid, exit_code);
                        }
                    }
                });
            }
            Err(e) => warn!("cannot watch container exits: {e}"),
        }
        Service { inner }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lifecycle(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish<M: Message>(&self, topic: &'static str, type_url: &'static str, msg: &M) {
        let value = match msg.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                warn!("encode {type_url}: {e}");
                return;
            }
        };
        if let Ok(tx) = self.events.lock() {
            let _ = tx.send(Event {
                topic,
                type_url,
                value,
                ack: None,
            });
        }
    }

    /// Wait (bounded) until the events queued so far were sent.
    fn flush_events(&self) {
        let (tx, rx) = mpsc::channel();
        let sent = self.events.lock().map(|q| {
            q.send(Event {
                topic: "",
                type_url: "",
                value: Vec::new(),
                ack: Some(tx),
            })
            .is_ok()
        });
        if matches!(sent, Ok(true)) {
            let _ = rx.recv_timeout(EVENTS_FLUSH);
        }
    }

    fn publish_exit(&self, id: &str, exec_id: &str, pid: i32, code: i32, ts: Timestamp) {
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
    fn process_exit(&self, pid: i32, code: i32) {
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
        io::wait_output_read(&[&outputs[0], &outputs[1]], deadline);
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

    fn get<T>(
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

    fn get_proc<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut Proc) -> Result<T, ttrpc::Error>,
    ) -> Result<T, ttrpc::Error> {
        self.get(id, |c| f(c.proc_mut(id, exec_id)?))
    }

    fn runtime_of(&self, id: &str) -> Result<Runtime, ttrpc::Error> {
        self.get(id, |c| Ok(c.runtime.clone()))
    }

    fn create(&self, req: api::CreateTaskRequest) -> Result<u32, String> {
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
            io::wait_output_read(&[&req.stdout, &req.stderr], Instant::now() + IO_DRAIN);
            self.changed.notify_all();
            self.publish_exit(id, "", pid, code, ts);
        }
        Ok(pid as u32)
    }

    /// Start the init process (`exec_id` empty) or an exec process.
    fn start(&self, id: &str, exec_id: &str) -> Result<u32, ttrpc::Error> {
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
            io::wait_output_read(&[&stdout, &stderr], Instant::now() + IO_DRAIN);
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

impl shim::Task for Service {
    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .inner
            .get(&req.id, |c| Ok(c.init.pid as u32))
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        info!("create {} bundle {}", req.id, req.bundle);
        let id = req.id.clone();
        let pid = self.inner.create(req).map_err(|e| err(Code::UNKNOWN, e))?;
        let weak = Arc::downgrade(&self.inner);
        let cid = id.clone();
        let watched = crate::oom::watch(pid as i32, move || {
            if let Some(inner) = weak.upgrade() {
                inner.publish(
                    topics::TASK_OOM_EVENT_TOPIC,
                    "containerd.events.TaskOOM",
                    &TaskOOM {
                        container_id: cid.clone(),
                        ..Default::default()
                    },
                );
            }
        });
        match watched {
            Ok(w) => {
                let _ = self.inner.get(&id, |c| {
                    c.oom = Some(w);
                    Ok(())
                });
            }
            Err(e) => warn!("no OOM events for {id}: {e}"),
        }
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let pid = self.inner.start(&req.id, &req.exec_id)?;
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        if req.exec_id.is_empty() {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!("exec in {}: empty exec id", req.id),
            ));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&spec).is_err() {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!(
                    "exec {} in {}: the process spec is not JSON",
                    req.exec_id, req.id
                ),
            ));
        }
        self.inner.get(&req.id, |c| {
            if c.execs.contains_key(&req.exec_id) {
                return Err(err(
                    Code::ALREADY_EXISTS,
                    format!("exec {} in {} already exists", req.exec_id, req.id),
                ));
            }
            let mut p = Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
            p.spec = spec;
            c.execs.insert(req.exec_id.clone(), p);
            Ok(())
        })?;
        self.inner.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            "containerd.events.TaskExecAdded",
            &TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        self.inner.get(&req.id, |c| {
            let bundle = c.bundle.to_string_lossy().into_owned();
            let p = c.proc_mut(&req.id, &req.exec_id)?;
            Ok(api::StateResponse {
                id: if req.exec_id.is_empty() {
                    &req.id
                } else {
                    &req.exec_id
                }
                .clone(),
                bundle,
                pid: p.pid as u32,
                status: p.task_status().into(),
                stdin: p.stdin.clone(),
                stdout: p.stdout.clone(),
                stderr: p.stderr.clone(),
                terminal: p.terminal,
                exit_status: p.exit_status,
                exited_at: p.exited_at.clone().into(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            })
        })
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let (rt, pid, status) = self.inner.get(&req.id, |c| {
            let rt = c.runtime.clone();
            let p = c.proc_mut(&req.id, &req.exec_id)?;
            Ok((rt, p.pid, p.status))
        })?;
        let what = if req.exec_id.is_empty() {
            format!("container {}", req.id)
        } else {
            format!("exec {} in {}", req.exec_id, req.id)
        };
        if status == Status::Stopped {
            return Err(err(
                Code::NOT_FOUND,
                format!("{what}: process already finished"),
            ));
        }
        if pid == 0 && !req.exec_id.is_empty() {
            // Not started, or its start failed. containerd's kill-then-wait
            // (`WithProcessKill`) takes FAILED_PRECONDITION as "nothing to
            // wait for", as the runc shim answers.
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!("{what}: process not created"),
            ));
        }
        let result = if req.exec_id.is_empty() {
            rt.kill(&req.id, req.signal, req.all)
        } else {
            let sig = i32::try_from(req.signal)
                .ok()
                .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
                .ok_or_else(|| {
                    err(
                        Code::INVALID_ARGUMENT,
                        format!("{what}: invalid signal {}", req.signal),
                    )
                })?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
                .map_err(|e| format!("{what}: kill {pid} with {sig}: {e}"))
        };
        if let Err(e) = result {
            // It may have exited while we were asking.
            let stopped = self
                .inner
                .get_proc(&req.id, &req.exec_id, |p| Ok(p.status == Status::Stopped))?;
            let code = if stopped {
                Code::NOT_FOUND
            } else {
                Code::UNKNOWN
            };
            return Err(err(code, e));
        }
        Ok(api::Empty::default())
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        let inner = &self.inner;
        if !req.exec_id.is_empty() {
            let p = inner.get(&req.id, |c| {
                let p = c.proc_mut(&req.id, &req.exec_id)?;
                if matches!(p.status, Status::Running | Status::Paused) {
                    return Err(err(
                        Code::FAILED_PRECONDITION,
                        format!("exec {} in {} is still running", req.exec_id, req.id),
                    ));
                }
                Ok(c.execs.remove(&req.exec_id))
            })?;
            let Some(mut p) = p else {
                return Err(err(
                    Code::NOT_FOUND,
                    format!("exec {} not found", req.exec_id),
                ));
            };
            p.close_io();
            inner.changed.notify_all();
            return Ok(api::DeleteResponse {
                pid: p.pid as u32,
                exit_status: p.exit_status,
                exited_at: MessageField::some(p.exited_at.unwrap_or_else(now)),
                ..Default::default()
            });
        }
        let (rt, status) = inner.get(&req.id, |c| Ok((c.runtime.clone(), c.init.status)))?;
        if matches!(status, Status::Running | Status::Paused) {
            return Err(err(
                Code::FAILED_PRECONDITION,
                format!(
                    "container {} is {status:?}: kill it before deleting",
                    req.id
                ),
            ));
        }
        if let Err(e) = rt.delete(&req.id, true) {
            // Already gone (the runtime removed it, or never finished
            // creating it) is what delete wants.
            let gone = e.contains("does not exist")
                || e.contains("not found")
                || !rt.root.join(&req.id).exists();
            if !gone {
                return Err(err(Code::UNKNOWN, e));
            }
        }
        let c = inner.lock().containers.remove(&req.id);
        let Some(mut c) = c else {
            return Err(err(
                Code::NOT_FOUND,
                format!("container {} not found", req.id),
            ));
        };
        c.init.close_io();
        for p in c.execs.values_mut() {
            p.close_io();
        }
        if c.rootfs_mounted {
            if let Err(e) = mount::unmount_all(&c.bundle.join("rootfs")) {
                warn!("{e}");
            }
        }
        let exited_at = c.init.exited_at.clone().unwrap_or_else(now);
        inner.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            "containerd.events.TaskDelete",
            &TaskDelete {
                container_id: req.id.clone(),
                pid: c.init.pid as u32,
                exit_status: c.init.exit_status,
                exited_at: MessageField::some(exited_at.clone()),
                ..Default::default()
            },
        );
        inner.changed.notify_all();
        Ok(api::DeleteResponse {
            pid: c.init.pid as u32,
            exit_status: c.init.exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let inner = &self.inner;
        let mut st = inner.lock();
        loop {
            let c = st
                .containers
                .get_mut(&req.id)
                .ok_or_else(|| err(Code::NOT_FOUND, format!("container {} not found", req.id)))?;
            let p = c.proc_mut(&req.id, &req.exec_id)?;
            if matches!(p.status, Status::Stopped | Status::StartFailed) {
                return Ok(api::WaitResponse {
                    exit_status: p.exit_status,
                    exited_at: p.exited_at.clone().into(),
                    ..Default::default()
                });
            }
            st = inner.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let rt = self.inner.runtime_of(&req.id)?;
        let pids = rt.ps(&req.id).map_err(|e| err(Code::UNKNOWN, e))?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let rt = self.inner.runtime_of(&req.id)?;
        rt.pause(&req.id).map_err(|e| err(Code::UNKNOWN, e))?;
        self.inner.get(&req.id, |c| {
            if c.init.status == Status::Running {
                c.init.status = Status::Paused;
            }
            Ok(())
        })?;
        self.inner.publish(
            topics::TASK_PAUSED_EVENT_TOPIC,
            "containerd.events.TaskPaused",
            &TaskPaused {
                container_id: req.id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let rt = self.inner.runtime_of(&req.id)?;
        rt.resume(&req.id).map_err(|e| err(Code::UNKNOWN, e))?;
        self.inner.get(&req.id, |c| {
            if c.init.status == Status::Paused {
                c.init.status = Status::Running;
            }
            Ok(())
        })?;
        self.inner.publish(
            topics::TASK_RESUMED_EVENT_TOPIC,
            "containerd.events.TaskResumed",
            &TaskResumed {
                container_id: req.id.clone(),
                ..Default::default()
            },
        );
        Ok(api::Empty::default())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let (rt, bundle) = self
            .inner
            .get(&req.id, |c| Ok((c.runtime.clone(), c.bundle.clone())))?;
        // containerd sends the OCI LinuxResources as JSON.
        let value = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&value)
            .map(|v| !v.is_object())
            .unwrap_or(true)
        {
            return Err(err(
                Code::INVALID_ARGUMENT,
                format!("update {}: resources are not a JSON object", req.id),
            ));
        }
        let file = bundle.join("update-resources.json");
        std::fs::write(&file, &value)
            .map_err(|e| err(Code::UNKNOWN, format!("write {}: {e}", file.display())))?;
        let res = rt.update(&req.id, &file);
        let _ = std::fs::remove_file(&file);
        res.map_err(|e| err(Code::UNKNOWN, e))?;
        Ok(api::Empty::default())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        if req.stdin {
            self.inner.get_proc(&req.id, &req.exec_id, |p| {
                if let Some(w) = p.stdin_writer.take() {
                    io::close_writer(&w);
                }
                Ok(())
            })?;
        }
        Ok(api::Empty::default())
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        self.inner
            .get_proc(&req.id, &req.exec_id, |p| match &p.console {
                Some(m) => io::resize(m, req.width, req.height).map_err(|e| err(Code::UNKNOWN, e)),
                None => Err(err(
                    Code::FAILED_PRECONDITION,
                    format!("{} {} has no terminal", req.id, req.exec_id),
                )),
            })?;
        Ok(api::Empty::default())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let (pid, status) = self
            .inner
            .get(&req.id, |c| Ok((c.init.pid, c.init.status)))?;
        if status == Status::Stopped {
            return Err(err(
                Code::NOT_FOUND,
                format!("container {}: process already finished", req.id),
            ));
        }
        let stats = crate::stats::collect(pid)
            .map_err(|e| err(Code::UNKNOWN, format!("stats of {}: {e}", req.id)))?;
        Ok(api::StatsResponse {
            stats: MessageField::some(stats),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        // containerd asks once its tasks here are deleted; with a pod's
        // containers grouped in this shim, stay up while any remain.
        if self.inner.lock().containers.is_empty() {
            // Events still queued (a late TaskOOM) would die with us.
            self.inner.flush_events();
            self.inner.exit.signal();
        }
        Ok(api::Empty::default())
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

    #[test]
    fn runtime_choice_order() {
        assert_eq!(runtime_binary("/opt/x/urunc"), "/opt/x/urunc");
        assert_eq!(
            runtime_root("", "k8s.io"),
            PathBuf::from("/run/containerd/urunc/k8s.io")
        );
        assert_eq!(runtime_root("/r", "default"), PathBuf::from("/r"));
    }

    #[test]
    fn options_decoding() {
        use shim::protos::protobuf::well_known_types::any::Any;
        assert_eq!(decode_options(None).unwrap().binary_name, "");
        let opts = Options {
            binary_name: "runc".into(),
            root: "/tmp/r".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let d = decode_options(Some(&any)).unwrap();
        assert_eq!(
            (d.binary_name.as_str(), d.root.as_str()),
            ("runc", "/tmp/r")
        );
        let bad = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        assert!(decode_options(Some(&bad))
            .unwrap_err()
            .contains("shim options"));
        let other = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(decode_options(Some(&other)).unwrap().binary_name, "");
    }

    #[test]
    fn kill_all_unless_the_container_has_its_own_pid_namespace() {
        let dir = tempfile::tempdir().unwrap();
        // No config: kill, as the runc shim does.
        assert!(kill_all_on_exit(dir.path()));
        let with = |nss: serde_json::Value| {
            let spec = serde_json::json!({"linux": {"namespaces": nss}});
            std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
            kill_all_on_exit(dir.path())
        };
        assert!(!with(
            serde_json::json!([{"type": "pid"}, {"type": "mount"}])
        ));
        assert!(!with(serde_json::json!([{"type": "pid", "path": ""}])));
        assert!(with(
            serde_json::json!([{"type": "pid", "path": "/proc/42/ns/pid"}])
        ));
        assert!(with(serde_json::json!([{"type": "network"}])));
        assert!(!alive(u32::MAX), "a PID that cannot exist runs");
        assert!(alive(std::process::id()));
    }

    #[test]
    fn runtime_state_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_runtime_state(dir.path()).is_none());
        std::fs::write(
            dir.path().join(RUNTIME_STATE_FILE),
            serde_json::json!({"binary": "runc", "root": "/run/x"}).to_string(),
        )
        .unwrap();
        assert_eq!(
            read_runtime_state(dir.path()).unwrap(),
            ("runc".to_string(), PathBuf::from("/run/x"))
        );
    }
}

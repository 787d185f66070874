//! The task service (task API v2): containerd's requests, answered from
//! the shim's tasks.

use std::sync::Arc;

use containerd_shim::{
    self as shim, api,
    protos::{
        events::task::{TaskDelete, TaskExecAdded, TaskOOM, TaskPaused, TaskResumed},
        protobuf::MessageField,
        topics,
        ttrpc::Code,
        types::task::ProcessInfo,
    },
    TtrpcContext, TtrpcResult,
};
use log::{info, warn};

use crate::{
    exit::Exit,
    io, mount,
    process::{Proc, Status},
    rpc::{err, now},
    tasks::Tasks,
};

/// Task service; cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Tasks>,
}

impl Service {
    pub fn new(namespace: String, exit: Arc<Exit>) -> Service {
        Service {
            inner: Tasks::new(namespace, exit),
        }
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
        let _deleting = inner.begin_delete(&req.id)?;
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
        // containers grouped in this shim, stay up while any remain, and
        // while a delete has yet to answer (see `Tasks::begin_delete`).
        if self.inner.idle() {
            // Events still queued (a late TaskOOM) would die with us.
            self.inner.events.flush();
            self.inner.exit.signal();
        }
        Ok(api::Empty::default())
    }
}

//! The shim binary's entry points: the `start` action (spawn or join the
//! shim serving a container or pod), the `delete` action (clean up after a
//! shim that died) and serving the task service.

use std::{path::PathBuf, sync::Arc};

use containerd_shim::{
    self as shim, protos::protobuf::MessageField, publisher::RemotePublisher, DeleteResponse,
    Flags, StartOpts,
};
use log::warn;

use crate::{
    bundle::{read_runtime_state, runtime_binary, runtime_root},
    exit::Exit,
    mount,
    rpc::now,
    runtime::Runtime,
    service::Service,
};

/// Shim-level entry points (`start`, `delete` actions, serving).
pub struct Shim {
    exit: Arc<Exit>,
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
            exit: Arc::new(Exit::default()),
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
        // containerd runs this action after every shim exit, a clean one
        // too (its connection's close handler, cleanupAfterDeadShim, which
        // the task Delete waits for). With no state directory, neither
        // urunc nor the runc it delegates to (same --root, state in
        // <root>/<id>) has the container: skip both execs (~10 ms).
        if root.join(&self.id).symlink_metadata().is_ok() {
            let rt = Runtime::new(&binary, root, &bundle);
            if let Err(e) = rt.delete(&self.id, true) {
                warn!("cleanup of {}: {e}", self.id);
            }
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
        // The crate's publisher encodes through protobuf descriptors (see
        // `events::Event`); this shim keeps its own connection instead.
        drop(publisher);
        Service::new(self.namespace.clone(), Arc::clone(&self.exit))
    }
}

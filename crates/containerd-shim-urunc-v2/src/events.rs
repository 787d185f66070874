//! Events for containerd, encoded when published and sent in order by one
//! thread over the shim's own TTRPC connection, never from inside a
//! request handler.

use std::{
    sync::{mpsc, Mutex},
    thread,
    time::Duration,
};

use containerd_shim::{
    self as shim,
    protos::{
        protobuf::{well_known_types::any::Any, Message, MessageField},
        shim::{event::Envelope, events::ForwardRequest},
        ttrpc::{self, context::Context},
        EventsClient,
    },
};
use log::warn;

use crate::rpc::now;

/// How long shutdown waits for queued events to reach containerd.
const EVENTS_FLUSH: Duration = Duration::from_secs(2);

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

/// The queue of events for containerd and the thread that sends them.
pub struct Publisher {
    tx: Mutex<mpsc::Sender<Event>>,
}

impl Publisher {
    /// Start the sending thread for events of containerd namespace
    /// `namespace`.
    pub fn start(namespace: String) -> Publisher {
        let (tx, rx) = mpsc::channel::<Event>();
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
                    match forward(c, &namespace, &ev) {
                        Ok(()) => break,
                        Err(e) => {
                            warn!("publish {}: {e}", ev.topic);
                            client = None;
                        }
                    }
                }
            }
        });
        Publisher { tx: Mutex::new(tx) }
    }

    /// Queue `msg` (of protobuf type `type_url`) on `topic`.
    pub fn publish<M: Message>(&self, topic: &'static str, type_url: &'static str, msg: &M) {
        let value = match msg.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                warn!("encode {type_url}: {e}");
                return;
            }
        };
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Event {
                topic,
                type_url,
                value,
                ack: None,
            });
        }
    }

    /// Wait (bounded) until the events queued so far were sent.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        let sent = self.tx.lock().map(|q| {
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
}

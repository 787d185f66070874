//! Events for containerd, encoded when published and sent in order by one
//! thread over the shim's own TTRPC connection (no ttrpc client threads),
//! never from inside a request handler.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    sync::{mpsc, Mutex},
    thread,
    time::Duration,
};

use containerd_shim::protos::{
    protobuf::{well_known_types::any::Any, Message, MessageField},
    shim::{event::Envelope, events::ForwardRequest},
    ttrpc,
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

/// containerd's events service: one TTRPC connection, driven from the
/// sending thread itself. ttrpc's own client (`ttrpc::Client`) would add a
/// reader and a writer thread per shim for what is one request at a time.
///
/// The wire format (ttrpc's protocol, `ttrpc::proto`): a 10-byte header
/// (payload length, stream id, both u32 big-endian; type 1 = request,
/// 2 = response; flags), then a protobuf `ttrpc.Request` {service, method,
/// payload}; the reply is a `ttrpc.Response` {status, payload} on the same
/// stream id. A client numbers its streams 1, 3, 5, ...
struct EventsConn {
    sock: UnixStream,
    next_stream: u32,
}

/// How long a Forward may take before the connection is given up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";

impl EventsConn {
    /// Connect to containerd's TTRPC endpoint (`$TTRPC_ADDRESS`).
    fn connect() -> Option<EventsConn> {
        let addr = std::env::var("TTRPC_ADDRESS").ok()?;
        let path = addr.strip_prefix("unix://").unwrap_or(&addr);
        let sock = UnixStream::connect(path)
            .and_then(|s| {
                s.set_read_timeout(Some(FORWARD_TIMEOUT))?;
                s.set_write_timeout(Some(FORWARD_TIMEOUT))?;
                Ok(s)
            })
            .map_err(|e| warn!("connect to containerd at {addr}: {e}"))
            .ok()?;
        Some(EventsConn {
            sock,
            next_stream: 1,
        })
    }

    fn forward(&mut self, namespace: &str, ev: &Event) -> Result<(), String> {
        let fwd = ForwardRequest {
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
        let req = ttrpc::Request {
            service: EVENTS_SERVICE.to_string(),
            method: "Forward".to_string(),
            payload: fwd.write_to_bytes().map_err(|e| e.to_string())?,
            ..Default::default()
        };
        let body = req.write_to_bytes().map_err(|e| e.to_string())?;
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        let header: Vec<u8> = ttrpc::MessageHeader::new_request(stream, body.len() as u32).into();
        self.sock
            .write_all(&[header, body].concat())
            .map_err(|e| format!("send: {e}"))?;
        let mut head = [0u8; ttrpc::proto::MESSAGE_HEADER_LENGTH];
        self.sock
            .read_exact(&mut head)
            .map_err(|e| format!("receive: {e}"))?;
        let h = ttrpc::MessageHeader::from(&head);
        if h.length as usize > ttrpc::proto::MESSAGE_LENGTH_MAX {
            return Err(format!("reply of {} bytes", h.length));
        }
        let mut reply = vec![0u8; h.length as usize];
        self.sock
            .read_exact(&mut reply)
            .map_err(|e| format!("receive: {e}"))?;
        if h.type_ != ttrpc::proto::MESSAGE_TYPE_RESPONSE || h.stream_id != stream {
            return Err(format!(
                "unexpected reply (type {}, stream {} for {stream})",
                h.type_, h.stream_id
            ));
        }
        let res = ttrpc::Response::parse_from_bytes(&reply).map_err(|e| e.to_string())?;
        match res.status.as_ref() {
            Some(st) if st.code() != ttrpc::Code::OK => {
                Err(format!("{:?}: {}", st.code(), st.message))
            }
            _ => Ok(()),
        }
    }
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
                        client = EventsConn::connect();
                    }
                    let Some(c) = &mut client else { break };
                    match c.forward(&namespace, &ev) {
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

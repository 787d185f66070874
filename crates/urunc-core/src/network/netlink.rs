//! A plain, synchronous rtnetlink socket: dumps, and batches of requests
//! sent in one `send` whose acknowledgements are read back together (one
//! round trip for several changes).

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// Receive buffer: large enough for any single datagram the kernel sends
/// on a route socket (dump skbs are at most 32 KiB; we say MSG_TRUNC and
/// check).
const RECV_BUF: usize = 64 * 1024;

/// Why a netlink request failed: the errno, plus the kernel's extended
/// acknowledgement message when it gave one.
#[derive(Debug)]
pub struct NlError {
    pub errno: i32,
    pub msg: Option<String>,
}

impl NlError {
    fn io(e: &io::Error) -> NlError {
        NlError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            msg: e.raw_os_error().is_none().then(|| e.to_string()),
        }
    }

    fn proto(what: impl Into<String>) -> NlError {
        NlError {
            errno: libc::EPROTO,
            msg: Some(what.into()),
        }
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> Result<Rtnl, NlError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| NlError::io(&e))?;
        sock.bind_auto().map_err(|e| NlError::io(&e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| NlError::io(&e))?;
        // Best effort: error acks without the echoed request, with the
        // kernel's explanation attached.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn encode(&mut self, out: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16) -> u32 {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = out.len();
        out.resize(start + m.buffer_len(), 0);
        m.serialize(&mut out[start..]);
        // Messages in one datagram are 4-byte aligned.
        out.resize(out.len().next_multiple_of(4), 0);
        seq
    }

    /// Reads one datagram and returns its messages.
    fn recv(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NlError> {
        self.buf.clear();
        let n = loop {
            match self.sock.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NlError::io(&e)),
            }
        };
        if n > self.buf.len() {
            return Err(NlError::proto(format!(
                "netlink reply of {n} bytes truncated to {}",
                self.buf.len()
            )));
        }
        split(&self.buf)
    }

    /// Sends `reqs` (each with its own NLM_F_* flags; REQUEST and ACK are
    /// added) in one datagram and returns each one's outcome, in order.
    /// The kernel handles them one after the other and keeps going after a
    /// failure, so callers decide what a failure means for the rest.
    pub fn batch(
        &mut self,
        reqs: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Result<(), NlError>>, NlError> {
        let mut out = Vec::with_capacity(512);
        let seqs: Vec<u32> = reqs
            .into_iter()
            .map(|(m, f)| self.encode(&mut out, m, f | NLM_F_ACK))
            .collect();
        self.send(&out)?;
        let mut results: Vec<Option<Result<(), NlError>>> = seqs.iter().map(|_| None).collect();
        while results.iter().any(Option::is_none) {
            for m in self.recv()? {
                let Some(i) = seqs.iter().position(|s| *s == m.header.sequence_number) else {
                    continue;
                };
                if let NetlinkPayload::Error(e) = m.payload {
                    results[i] = Some(match e.code {
                        None => Ok(()),
                        Some(c) => Err(NlError {
                            errno: -c.get(),
                            msg: ext_ack_msg(m.header.flags, &e.header),
                        }),
                    });
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// One request, acknowledged.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.batch(vec![(msg, flags)])?
            .pop()
            .unwrap_or_else(|| Err(NlError::proto("no acknowledgement")))
    }

    /// A dump request; returns every message of the reply.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut out = Vec::with_capacity(64);
        let seq = self.encode(&mut out, msg, NLM_F_DUMP);
        self.send(&out)?;
        let mut msgs = Vec::new();
        loop {
            for m in self.recv()? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(msgs),
                    NetlinkPayload::Error(e) => {
                        return Err(match e.code {
                            None => NlError::proto("dump ended with an ack"),
                            Some(c) => NlError {
                                errno: -c.get(),
                                msg: ext_ack_msg(m.header.flags, &e.header),
                            },
                        })
                    }
                    NetlinkPayload::InnerMessage(i) => msgs.push(i),
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self, out: &[u8]) -> Result<(), NlError> {
        loop {
            match self.sock.send(out, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NlError::io(&e)),
            }
        }
    }
}

/// Splits a datagram into netlink messages.
fn split(mut buf: &[u8]) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NlError> {
    let mut msgs = Vec::new();
    while buf.len() >= 16 {
        let len = NetlinkBuffer::new_checked(buf)
            .map_err(|e| NlError::proto(format!("bad netlink header: {e}")))?
            .length() as usize;
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len])
            .map_err(|e| NlError::proto(format!("cannot parse the kernel's reply: {e}")))?;
        msgs.push(m);
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(msgs)
}

const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The kernel's extended-ack text, from an error message's payload after
/// the code: the echoed request (only its 16-byte header when capped), then
/// TLVs.
pub(crate) fn ext_ack_msg(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let skip = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let l = u32::from_ne_bytes(echoed.get(..4)?.try_into().ok()?) as usize;
        l.next_multiple_of(4)
    };
    let mut tlvs = echoed.get(skip..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let v = &tlvs[4..len];
            let v = v.split(|b| *b == 0).next().unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        tlvs = &tlvs[len.next_multiple_of(4).min(tlvs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_message_is_found_after_the_capped_header() {
        let mut p = vec![0u8; 16];
        let text = b"Exclusivity flag on\0";
        let len = 4 + text.len();
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        assert_eq!(
            ext_ack_msg(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).as_deref(),
            Some("Exclusivity flag on")
        );
        assert_eq!(ext_ack_msg(NLM_F_CAPPED, &p), None);
        assert_eq!(ext_ack_msg(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p[..18]), None);
    }

    #[test]
    fn error_text_names_errno_and_kernel_message() {
        let e = NlError {
            errno: libc::EEXIST,
            msg: Some("Exclusivity flag on".into()),
        };
        assert!(e.to_string().contains("File exists"), "{e}");
        assert!(e.to_string().contains("Exclusivity flag on"), "{e}");
    }
}

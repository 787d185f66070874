//! The nfnetlink socket for [`super::nft`]'s messages: a transaction sent
//! in one datagram and its acknowledgements read back, and the dump of the
//! `ip` family's tables.

use super::nft::{
    message, nft_type, parse_table, Batch, Listed, NFT_MSG_GETTABLE, NFT_MSG_NEWTABLE, REQ,
};
use std::io;

/// Why an nftables request failed.
#[derive(Debug)]
pub struct NftError {
    pub errno: i32,
    pub msg: Option<String>,
}

impl std::fmt::Display for NftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

fn io_err(e: &io::Error) -> NftError {
    NftError {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        msg: None,
    }
}

pub struct Nft {
    sock: netlink_sys::Socket,
    seq: u32,
}

/// One reply message: (type, flags, seq, payload after the netlink header).
type Reply = (u16, u16, u32, Vec<u8>);

impl Nft {
    pub fn open() -> Result<Nft, NftError> {
        use std::os::fd::AsRawFd;
        let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER)
            .map_err(|e| io_err(&e))?;
        sock.bind_auto().map_err(|e| io_err(&e))?;
        sock.connect(&netlink_sys::SocketAddr::new(0, 0))
            .map_err(|e| io_err(&e))?;
        let _ = sock.set_ext_ack(true);
        // Never hang on a reply the kernel does not send.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(Nft { sock, seq })
    }

    fn recv(&mut self) -> Result<Vec<Reply>, NftError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let n = loop {
            match self.sock.recv(&mut buf, 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(&e)),
            }
        };
        let mut b = &buf[..n.min(buf.len())];
        let mut out = Vec::new();
        while b.len() >= 16 {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap_or_default()) as usize;
            if len < 16 || len > b.len() {
                break;
            }
            let kind = u16::from_ne_bytes([b[4], b[5]]);
            let flags = u16::from_ne_bytes([b[6], b[7]]);
            let seq = u32::from_ne_bytes(b[8..12].try_into().unwrap_or_default());
            out.push((kind, flags, seq, b[16..len].to_vec()));
            b = &b[len.next_multiple_of(4).min(b.len())..];
        }
        Ok(out)
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        self.sock.send(bytes, 0).map(|_| ()).map_err(|e| io_err(&e))
    }

    /// Sends a transaction and waits for its outcome: the first error the
    /// kernel reports (the transaction is then not applied), else Ok.
    pub fn apply(&mut self, make: impl FnOnce(u32) -> Batch) -> Result<(), NftError> {
        let b = make(self.seq);
        self.seq = self.seq.wrapping_add(b.acked.len() as u32 + 2);
        self.send(&b.bytes)?;
        let mut pending = b.acked.clone();
        while !pending.is_empty() {
            for (kind, flags, seq, p) in self.recv()? {
                if kind != libc::NLMSG_ERROR as u16 || !pending.contains(&seq) {
                    continue;
                }
                let code = i32::from_ne_bytes(p.get(..4).and_then(|c| c.try_into().ok()).ok_or(
                    NftError {
                        errno: libc::EPROTO,
                        msg: Some("short netlink error".into()),
                    },
                )?);
                if code != 0 {
                    return Err(NftError {
                        errno: -code,
                        msg: super::netlink::ext_ack_msg(flags, &p[4..]),
                    });
                }
                pending.retain(|s| *s != seq);
            }
        }
        Ok(())
    }

    /// The `ip` family's tables.
    pub fn tables(&mut self) -> Result<Vec<Listed>, NftError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut bytes = Vec::new();
        message(
            &mut bytes,
            nft_type(NFT_MSG_GETTABLE),
            REQ | libc::NLM_F_DUMP as u16,
            seq,
            0,
            &[],
        );
        self.send(&bytes)?;
        let mut out = Vec::new();
        loop {
            for (kind, _, s, p) in self.recv()? {
                if s != seq {
                    continue;
                }
                if kind == libc::NLMSG_DONE as u16 {
                    return Ok(out);
                }
                if kind == libc::NLMSG_ERROR as u16 {
                    let code = p
                        .get(..4)
                        .and_then(|c| c.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(-libc::EPROTO);
                    return Err(NftError {
                        errno: -code,
                        msg: None,
                    });
                }
                if kind == nft_type(NFT_MSG_NEWTABLE) {
                    out.extend(parse_table(&p));
                }
            }
        }
    }
}

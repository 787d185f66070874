//! Link-level rtnetlink pieces shared by the tc and shared modes: the
//! socket, a link as the dump shows it, name → index, and the link
//! requests both modes send.

use super::error::{failed, NetError};
use super::netlink::{NlError, Rtnl};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

/// An interface as the link dump shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) mac: Option<Vec<u8>>,
    pub(super) mtu: u32,
    pub(super) loopback: bool,
    pub(super) lower_up: bool,
}

impl Link {
    pub(super) fn from_msg(m: &RouteNetlinkMessage) -> Option<Link> {
        let RouteNetlinkMessage::NewLink(l) = m else {
            return None;
        };
        let mut link = Link {
            index: l.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            loopback: l.header.flags.contains(LinkFlags::Loopback),
            lower_up: l.header.flags.contains(LinkFlags::LowerUp),
        };
        for a in &l.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                _ => {}
            }
        }
        Some(link)
    }
}

pub(super) fn nl_open() -> Result<Rtnl, NetError> {
    Rtnl::open().map_err(|e| failed("opening a netlink socket", e))
}

pub(super) fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

pub(super) fn del_link_by_name(name: &str) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::DelLink(m)
}

pub(super) fn set_up_with_mtu(ifindex: u32, mtu: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    if mtu > 0 {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    RouteNetlinkMessage::SetLink(m)
}

/// "Not there": what deleting a missing link or qdisc answers.
pub(super) fn missing(e: &NlError) -> bool {
    matches!(e.errno, libc::ENODEV | libc::ENOENT | libc::EINVAL)
}

//! Discovering the container's interface and the facts the guest takes
//! over from it (address, prefix, gateway, MAC, MTU): three rtnetlink dumps.

use super::error::{failed, NetError};
use super::links::{nl_open, Link};
use super::names::is_urunc_tap;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};

/// What the guest takes over from the container's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFacts {
    pub ifname: String,
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// The dotted netmask of a prefix length (`24` → 255.255.255.0); prefixes
/// above 32 are treated as 32.
pub fn prefix_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(mask_u32(prefix))
}

pub(super) fn mask_u32(prefix: u8) -> u32 {
    let p = u32::from(prefix.min(32));
    u32::MAX.checked_shl(32 - p).unwrap_or(0)
}

/// The container's interface among the namespace's links: `eth0`, else
/// the only one that is neither loopback nor a tap of ours.
fn pick(links: &[Link]) -> Result<Option<&Link>, NetError> {
    let cands: Vec<&Link> = links
        .iter()
        .filter(|l| !l.loopback && !is_urunc_tap(&l.name))
        .collect();
    if let Some(e) = cands.iter().find(|l| l.name == "eth0") {
        return Ok(Some(e));
    }
    match cands.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(NetError::Ambiguous {
            names: many.iter().map(|l| l.name.clone()).collect(),
        }),
    }
}

/// The first IPv4 address (and prefix) on `ifindex` in an address dump.
fn first_ipv4(msgs: &[RouteNetlinkMessage], ifindex: u32) -> Option<(Ipv4Addr, u8)> {
    msgs.iter().find_map(|m| {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            return None;
        };
        if a.header.index != ifindex || a.header.family != AddressFamily::Inet {
            return None;
        }
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
        // peer's on point-to-point links).
        let local = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(IpAddr::V4(v)) => Some(*v),
            _ => None,
        });
        let addr = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(IpAddr::V4(v)) => Some(*v),
            _ => None,
        });
        local.or(addr).map(|ip| (ip, a.header.prefix_len))
    })
}

/// The gateway of the IPv4 default route out of `ifindex` (main table,
/// lowest metric) in a route dump.
fn default_gateway(msgs: &[RouteNetlinkMessage], ifindex: u32) -> Option<Ipv4Addr> {
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for m in msgs {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        let h = &r.header;
        if h.address_family != AddressFamily::Inet
            || h.destination_prefix_length != 0
            || h.kind != RouteType::Unicast
        {
            continue;
        }
        let mut table = u32::from(h.table);
        let (mut gw, mut oif, mut metric) = (None, None, 0);
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
                RouteAttribute::Oif(o) => oif = Some(*o),
                RouteAttribute::Priority(p) => metric = *p,
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) || oif != Some(ifindex) {
            continue;
        }
        if let Some(g) = gw {
            if best.is_none_or(|(bm, _)| metric < bm) {
                best = Some((metric, g));
            }
        }
    }
    best.map(|(_, g)| g)
}

/// The container's interface in the current network namespace: `eth0`, or
/// the single non-loopback interface (taps of ours do not count).
/// `Ok(None)` when there is none.
pub fn discover() -> Result<Option<NetFacts>, NetError> {
    let mut nl = nl_open()?;
    let links = nl
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
        .map_err(|e| failed("listing interfaces", e))?;
    let links: Vec<Link> = links.iter().filter_map(Link::from_msg).collect();
    let Some(link) = pick(&links)? else {
        return Ok(None);
    };
    let name = &link.name;
    let mac: [u8; 6] = link
        .mac
        .as_deref()
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| {
            failed(
                format!("interface {name}"),
                "has no Ethernet (6-byte MAC) address",
            )
        })?;
    let mut am = AddressMessage::default();
    am.header.family = AddressFamily::Inet;
    let addrs = nl
        .dump(RouteNetlinkMessage::GetAddress(am))
        .map_err(|e| failed(format!("listing the addresses of {name}"), e))?;
    let Some((ip, prefix)) = first_ipv4(&addrs, link.index) else {
        return Err(NetError::NoIpv4 {
            ifname: name.clone(),
        });
    };
    let mut rm = RouteMessage::default();
    rm.header.address_family = AddressFamily::Inet;
    let routes = nl
        .dump(RouteNetlinkMessage::GetRoute(rm))
        .map_err(|e| failed(format!("listing the routes of {name}"), e))?;
    Ok(Some(NetFacts {
        ifname: name.clone(),
        ifindex: link.index,
        ip,
        prefix,
        gateway: default_gateway(&routes, link.index),
        mac,
        mtu: link.mtu,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::names::tap_name;
    use super::*;

    #[test]
    fn masks_follow_the_prefix() {
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_mask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(prefix_mask(17), Ipv4Addr::new(255, 255, 128, 0));
        assert_eq!(prefix_mask(1), Ipv4Addr::new(128, 0, 0, 0));
        assert_eq!(prefix_mask(40), Ipv4Addr::new(255, 255, 255, 255));
    }

    fn link(index: u32, name: &str, loopback: bool) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(vec![2, 0, 0, 0, 0, index as u8]),
            mtu: 1500,
            loopback,
            lower_up: false,
        }
    }

    #[test]
    fn eth0_wins_then_the_only_interface() {
        let lo = link(1, "lo", true);
        let eth0 = link(2, "eth0", false);
        let tap = link(3, &tap_name("c"), false);
        let mytap = link(4, "mytap0", false);
        let net1 = link(5, "net1", false);
        let names = |r: Option<&Link>| r.map(|l| l.name.clone());
        let l = [
            lo.clone(),
            tap.clone(),
            mytap.clone(),
            eth0.clone(),
            net1.clone(),
        ];
        assert_eq!(names(pick(&l).unwrap()), Some("eth0".into()));
        let l = [lo.clone(), tap.clone(), net1.clone()];
        assert_eq!(names(pick(&l).unwrap()), Some("net1".into()));
        let l = [lo.clone(), tap.clone()];
        assert_eq!(pick(&l).unwrap(), None);
        assert_eq!(pick(&[]).unwrap(), None);
        let l = [lo, mytap, tap, net1];
        let e = pick(&l).unwrap_err().to_string();
        assert!(
            e.contains("mytap0, net1") && e.contains("none is eth0"),
            "{e}"
        );
        assert!(!e.contains("urunc"), "{e}");
    }

    fn addr(index: u32, ip: [u8; 4], prefix: u8, local: bool) -> RouteNetlinkMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.index = index;
        m.header.prefix_len = prefix;
        let ip = IpAddr::V4(Ipv4Addr::from(ip));
        m.attributes.push(if local {
            AddressAttribute::Local(ip)
        } else {
            AddressAttribute::Address(ip)
        });
        RouteNetlinkMessage::NewAddress(m)
    }

    #[test]
    fn first_ipv4_address_of_the_interface() {
        let msgs = [
            addr(3, [10, 0, 0, 9], 8, true),
            addr(2, [192, 168, 1, 5], 24, true),
            addr(2, [192, 168, 2, 5], 24, true),
        ];
        assert_eq!(
            first_ipv4(&msgs, 2),
            Some((Ipv4Addr::new(192, 168, 1, 5), 24))
        );
        assert_eq!(first_ipv4(&msgs, 4), None);
        // IFA_ADDRESS only (no IFA_LOCAL) still counts.
        assert_eq!(
            first_ipv4(&[addr(2, [172, 16, 0, 2], 30, false)], 2),
            Some((Ipv4Addr::new(172, 16, 0, 2), 30))
        );
    }

    fn route(
        dst_len: u8,
        oif: u32,
        gw: [u8; 4],
        metric: Option<u32>,
        table: u8,
    ) -> RouteNetlinkMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = dst_len;
        m.header.kind = RouteType::Unicast;
        m.header.table = table;
        m.attributes.push(RouteAttribute::Oif(oif));
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::from(
                gw,
            ))));
        if let Some(p) = metric {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        RouteNetlinkMessage::NewRoute(m)
    }

    #[test]
    fn default_gateway_out_of_the_interface_lowest_metric() {
        let main = RouteHeader::RT_TABLE_MAIN;
        let msgs = [
            route(24, 2, [10, 0, 0, 254], None, main),
            route(0, 3, [10, 9, 9, 1], None, main),
            route(0, 2, [10, 0, 0, 7], Some(200), main),
            route(0, 2, [10, 0, 0, 1], Some(100), main),
            route(0, 2, [10, 0, 0, 99], None, 100),
        ];
        assert_eq!(default_gateway(&msgs, 2), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(default_gateway(&msgs, 3), Some(Ipv4Addr::new(10, 9, 9, 1)));
        assert_eq!(default_gateway(&msgs, 4), None);
        assert_eq!(default_gateway(&msgs[..1], 2), None);
    }
}

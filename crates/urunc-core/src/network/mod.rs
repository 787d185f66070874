//! The container's network, handed to the guest: discover eth0's facts in
//! the current network namespace, create the container's tap and redirect
//! all traffic between eth0 and the tap with tc. Everything goes over
//! rtnetlink (no `ip`/`tc` binaries), a handful of round trips per start.
//! That is the `tc` mode; the `shared` mode (pod IP kept on eth0, NAT to a
//! private /30 per guest) is in [`shared`], the choice between them in
//! [`mode`].
//!
//! The address stays on eth0. With every frame arriving on eth0 redirected
//! at tc ingress, the namespace's own stack never sees the guest's traffic,
//! so the duplicate address is harmless; keeping it leaves the namespace
//! as the CNI plugin made it (its CHECK and DEL still find what they
//! configured) and lets a restarted container in the same pod (§7) discover
//! the address again. The flip side: while the guest runs, nothing else in
//! the pod's namespace receives traffic on eth0 (all of it is the guest's).
//!
//! Costs (measured, see tests/network.rs): discover ≈ 0.1 ms and setup ≈
//! 0.5 ms in a release build — three dumps, one delete, the tun ioctls and
//! one batched datagram for the tap's MTU/state, both qdiscs and both
//! filters. Replacing a stale tap adds the kernel's device unregistration
//! (≈ 15–20 ms, an RCU grace period), as does `teardown`.
//!
//! Ownership: the tap is named after the container (`tap_name`); the mirred
//! actions carry that name as their cookie, so `teardown` finds the
//! interface whose ingress we took without being told, and `setup`
//! recognises another container's live redirect on eth0.

pub mod mode;
mod netlink;
mod nft;
mod nft_sock;
pub mod shared;
mod tap;
mod tc;

use netlink::{NlError, Rtnl};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("network: {what}: {problem}")]
    Failed { what: String, problem: String },
    #[error(
        "network: interface {ifname} has no IPv4 address (the guest takes over the \
         container's IPv4 address; configure one on {ifname}, or run the container \
         without a network)"
    )]
    NoIpv4 { ifname: String },
    #[error(
        "network: several interfaces and none is eth0 ({}): cannot tell which one is \
         the container's",
        names.join(", ")
    )]
    Ambiguous { names: Vec<String> },
    #[error(
        "network: interface {ifname} already carries the network of another unikernel \
         (its tap {tap} is in use); one interface serves one unikernel"
    )]
    InUse { ifname: String, tap: String },
}

fn failed(what: impl Into<String>, problem: impl std::fmt::Display) -> NetError {
    NetError::Failed {
        what: what.into(),
        problem: problem.to_string(),
    }
}

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

fn mask_u32(prefix: u8) -> u32 {
    let p = u32::from(prefix.min(32));
    u32::MAX.checked_shl(32 - p).unwrap_or(0)
}

/// An interface as the link dump shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    index: u32,
    name: String,
    mac: Option<Vec<u8>>,
    mtu: u32,
    loopback: bool,
    lower_up: bool,
}

impl Link {
    fn from_msg(m: &RouteNetlinkMessage) -> Option<Link> {
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

/// A tap of ours: `urunc` + 8 lowercase hex digits, what [`tap_name`]
/// makes. Such a device is never the container's interface.
pub fn is_urunc_tap(name: &str) -> bool {
    name.len() == 13
        && name.starts_with("urunc")
        && name[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

fn nl_open() -> Result<Rtnl, NetError> {
    Rtnl::open().map_err(|e| failed("opening a netlink socket", e))
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

/// Refuses to take over the runtime's own network namespace: a container
/// without a network namespace of its own (host networking), or one whose
/// namespace is PID 1's, would otherwise have the host's interface
/// redirected into its guest. Called before [`discover`] in the
/// container's namespace.
pub fn check_own_netns(spec_has_netns: bool) -> Result<(), NetError> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let shares_init = match (id("/proc/self/ns/net"), id("/proc/1/ns/net")) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    if spec_has_netns && !shares_init {
        return Ok(());
    }
    Err(failed(
        "the container shares the runtime's network namespace (host networking)",
        "urunc gives the container's interface to the guest and will not take the \
         host's; run the container with a network namespace of its own",
    ))
}

/// Tap name for a container: unique per container, at most 15 bytes.
pub fn tap_name(container_id: &str) -> String {
    // FNV-1a, so that the name is stable for an ID (delete can find it).
    let mut h: u32 = 0x811c9dc5;
    for b in container_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("urunc{h:08x}")
}

fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn del_link_by_name(name: &str) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::DelLink(m)
}

fn set_up_with_mtu(ifindex: u32, mtu: u32) -> RouteNetlinkMessage {
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
fn missing(e: &NlError) -> bool {
    matches!(e.errno, libc::ENODEV | libc::ENOENT | libc::EINVAL)
}

/// Creates `tap` (owned by uid/gid, eth0's MTU, up) and the tc redirect
/// between it and `facts.ifname`. A tap left with the same name (a crashed
/// earlier run) is replaced. On failure, what was done is undone.
pub fn setup(facts: &NetFacts, tap: &str, uid: u32, gid: u32) -> Result<(), NetError> {
    let eth = &facts.ifname;
    let mut nl = nl_open()?;
    match nl.request(del_link_by_name(tap), 0) {
        Ok(()) => {}
        Err(e) if missing(&e) => {}
        Err(e) => return Err(failed(format!("removing the stale tap {tap}"), e)),
    }
    check_not_taken(&mut nl, facts, tap)?;
    tap::create(tap, uid, gid)
        .map_err(|e| failed(format!("creating tap {tap}: {}", e.step), e.err))?;
    let r = redirect(&mut nl, facts, tap);
    if r.is_err() {
        let _ = undo(&mut nl, tap, facts.ifindex);
    }
    r.map_err(|(what, e)| failed(format!("{what} (container interface {eth}, tap {tap})"), e))
}

/// Refuses an interface whose ingress already redirects to another
/// container's tap that a monitor still holds; a stale one (no monitor
/// attached: no carrier) is removed.
fn check_not_taken(nl: &mut Rtnl, facts: &NetFacts, tap: &str) -> Result<(), NetError> {
    let filters = match nl.dump(tc::dump_ingress_filters(facts.ifindex)) {
        Ok(f) => f,
        Err(e) if missing(&e) => return Ok(()),
        Err(e) => {
            return Err(failed(
                format!("listing the ingress filters of {}", facts.ifname),
                e,
            ))
        }
    };
    for (_, cookie) in tc::redirects(&filters) {
        let other = String::from_utf8_lossy(&cookie).into_owned();
        if other == tap || !is_urunc_tap(&other) {
            continue;
        }
        let Some(idx) = if_index(&other) else {
            continue;
        };
        let mut m = LinkMessage::default();
        m.header.index = idx;
        let live = nl
            .dump(RouteNetlinkMessage::GetLink(m))
            .ok()
            .and_then(|v| v.iter().filter_map(Link::from_msg).find(|l| l.index == idx))
            .is_some_and(|l| l.lower_up);
        if live {
            return Err(NetError::InUse {
                ifname: facts.ifname.clone(),
                tap: other,
            });
        }
        match nl.request(del_link_by_name(&other), 0) {
            Ok(()) => {}
            Err(e) if missing(&e) => {}
            Err(e) => return Err(failed(format!("removing the stale tap {other}"), e)),
        }
    }
    Ok(())
}

/// The tap's MTU and state, the ingress qdiscs and both redirects, in one
/// round trip.
fn redirect(nl: &mut Rtnl, facts: &NetFacts, tap: &str) -> Result<(), (String, NlError)> {
    let eth = &facts.ifname;
    let tap_idx = if_index(tap).ok_or_else(|| {
        (
            format!("finding the index of tap {tap}"),
            NlError {
                errno: libc::ENODEV,
                msg: None,
            },
        )
    })?;
    let excl = NLM_F_CREATE | NLM_F_EXCL;
    let cookie = tap.as_bytes();
    // Step 1 (an old ingress qdisc on eth0 — a crash before delete, or
    // anyone's — goes: eth0's traffic is the guest's from now on) usually
    // finds nothing to remove; any other failure counts.
    const MAY_FAIL: usize = 1;
    let steps = [
        (
            format!("setting tap {tap} up with MTU {}", facts.mtu),
            set_up_with_mtu(tap_idx, facts.mtu),
            0,
        ),
        (
            format!("removing an old ingress qdisc from {eth}"),
            tc::del_ingress(facts.ifindex),
            0,
        ),
        (
            format!("adding the ingress qdisc to {eth}"),
            tc::add_ingress(facts.ifindex),
            excl,
        ),
        (
            format!("adding the ingress qdisc to {tap}"),
            tc::add_ingress(tap_idx),
            excl,
        ),
        (
            format!("redirecting {eth} ingress to {tap}"),
            tc::add_redirect(facts.ifindex, tap_idx, cookie),
            excl,
        ),
        (
            format!("redirecting {tap} ingress to {eth}"),
            tc::add_redirect(tap_idx, facts.ifindex, cookie),
            excl,
        ),
    ];
    let mut whats = Vec::with_capacity(steps.len());
    let mut reqs = Vec::with_capacity(steps.len());
    for (what, msg, flags) in steps {
        whats.push(what);
        reqs.push((msg, flags));
    }
    let results = nl
        .batch(reqs)
        .map_err(|e| ("sending the tap and tc requests".to_string(), e))?;
    for (i, (what, r)) in whats.into_iter().zip(results).enumerate() {
        if let Err(e) = r {
            if i != MAY_FAIL {
                return Err((what, e));
            }
        }
    }
    Ok(())
}

fn undo(nl: &mut Rtnl, tap: &str, ifindex: u32) -> Result<(), NetError> {
    let res = nl
        .batch(vec![
            (del_link_by_name(tap), 0),
            (tc::del_ingress(ifindex), 0),
        ])
        .map_err(|e| failed(format!("removing tap {tap}"), e))?;
    for (what, r) in [
        format!("removing tap {tap}"),
        "removing the ingress qdisc".into(),
    ]
    .into_iter()
    .zip(res)
    {
        match r {
            Err(e) if !missing(&e) => return Err(failed(what, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Removes `tap` and the ingress qdisc (with its filters) of the interface
/// that redirects to it: `ifname`, or, when the caller does not know it,
/// whichever interface's ingress carries our cookie. Missing ones are fine.
pub fn teardown(tap: &str, ifname: Option<&str>) -> Result<(), NetError> {
    let mut nl = nl_open()?;
    let qdiscs = nl
        .dump(tc::dump_qdiscs())
        .map_err(|e| failed("listing qdiscs", e))?;
    let only = ifname.and_then(if_index);
    let tap_idx = if_index(tap);
    let mut ours = Vec::new();
    for idx in tc::ingress_qdiscs(&qdiscs) {
        if Some(idx) == tap_idx || (ifname.is_some() && only != Some(idx)) {
            continue;
        }
        let filters = match nl.dump(tc::dump_ingress_filters(idx)) {
            Ok(f) => f,
            Err(e) if missing(&e) => continue,
            Err(e) => {
                return Err(failed(
                    format!("listing the ingress filters of interface {idx}"),
                    e,
                ))
            }
        };
        if tc::redirects(&filters)
            .iter()
            .any(|(_, c)| c == tap.as_bytes())
        {
            ours.push(idx);
        }
    }
    let mut reqs = vec![(del_link_by_name(tap), 0)];
    reqs.extend(ours.iter().map(|i| (tc::del_ingress(*i), 0)));
    let res = nl
        .batch(reqs)
        .map_err(|e| failed(format!("removing tap {tap}"), e))?;
    for (i, r) in res.into_iter().enumerate() {
        match r {
            Err(e) if !missing(&e) => {
                let what = if i == 0 {
                    format!("removing tap {tap}")
                } else {
                    format!("removing the ingress qdisc of interface {}", ours[i - 1])
                };
                return Err(failed(what, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The nameserver the container would use: its /etc/resolv.conf as the
/// spec's mounts provide it (docker, nerdctl and CRI bind-mount one over
/// the image's), else the rootfs's own, with symlinks resolved inside the
/// rootfs (an image's absolute link must not read the host's file).
pub fn container_nameserver(spec: &oci_spec::runtime::Spec, rootfs: &Path) -> Option<Ipv4Addr> {
    let mounted = spec.mounts().as_ref().and_then(|ms| {
        ms.iter()
            .rev()
            .find(|m| {
                Path::new(m.destination())
                    .components()
                    .eq(Path::new("/etc/resolv.conf").components())
            })
            .and_then(|m| m.source().clone())
            .filter(|s| s.is_absolute())
    });
    match mounted {
        Some(src) => nameserver(&src),
        None => nameserver(&crate::rootfs::resolve_in_root(rootfs, "/etc/resolv.conf").ok()?),
    }
}

/// First IPv4 nameserver in a resolv.conf.
pub fn nameserver(resolv_conf: &Path) -> Option<Ipv4Addr> {
    std::fs::read_to_string(resolv_conf)
        .ok()?
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_and_differ() {
        let a = tap_name("a");
        assert!(a.len() <= 15);
        assert_ne!(a, tap_name("b"));
        assert_eq!(a, tap_name("a"));
        assert!(is_urunc_tap(&a));
        assert!(is_urunc_tap(&tap_name(&"x".repeat(300))));
    }

    #[test]
    fn only_our_naming_counts_as_our_tap() {
        assert!(is_urunc_tap("urunc0123abcd"));
        for other in [
            "mytap0",
            "tap0",
            "urunc",
            "urunc0123abc",
            "urunc0123abcde",
            "urunc0123ABCD",
            "uruncg123abcd",
            "xrunc0123abcd",
        ] {
            assert!(!is_urunc_tap(other), "{other}");
        }
    }

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

    #[test]
    fn nameserver_from_the_spec_mount_else_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::create_dir_all(rootfs.join("run")).unwrap();
        std::fs::write(rootfs.join("run/resolv.conf"), "nameserver 10.1.1.1\n").unwrap();
        // An absolute link, as images have: it must stay in the rootfs.
        std::os::unix::fs::symlink("/run/resolv.conf", rootfs.join("etc/resolv.conf")).unwrap();
        let spec = |mounts: serde_json::Value| -> oci_spec::runtime::Spec {
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts})).unwrap()
        };
        let none = spec(serde_json::json!([]));
        assert_eq!(
            container_nameserver(&none, &rootfs),
            Some(Ipv4Addr::new(10, 1, 1, 1))
        );
        let host = d.path().join("engine-resolv.conf");
        std::fs::write(&host, "search x\nnameserver fd00::1\nnameserver 10.2.2.2\n").unwrap();
        let mounted = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": host, "options": ["rbind", "ro"]},
        ]));
        assert_eq!(
            container_nameserver(&mounted, &rootfs),
            Some(Ipv4Addr::new(10, 2, 2, 2))
        );
        std::fs::remove_file(rootfs.join("run/resolv.conf")).unwrap();
        assert_eq!(container_nameserver(&none, &rootfs), None);
    }

    #[test]
    fn errors_name_the_interface() {
        let e = NetError::NoIpv4 {
            ifname: "eth0".into(),
        }
        .to_string();
        assert!(e.contains("interface eth0 has no IPv4 address"), "{e}");
        let e = NetError::InUse {
            ifname: "eth0".into(),
            tap: "urunc00000000".into(),
        }
        .to_string();
        assert!(e.contains("eth0") && e.contains("urunc00000000"), "{e}");
    }
}

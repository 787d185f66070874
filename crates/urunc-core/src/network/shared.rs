//! The `shared` network mode: the pod IP stays on eth0 for every container
//! of the pod; the guest gets a private /30 on its own tap, and one
//! nftables table per container (named `urunc-<id>`) forwards its ports.
//!
//! For a guest with address G behind tap address T (the guest's gateway),
//! pod IP P on eth0 and ports N…:
//!
//! - `prerouting` (dstnat): `ip daddr P <proto> dport N dnat to G` —
//!   traffic from outside, and from other guests of the pod.
//! - `output` (dstnat): the same for P and for 127.0.0.1 — sidecars in the
//!   pod (Knative's queue-proxy dials 127.0.0.1:$PORT). Reaching the tap
//!   from 127.0.0.1 needs `route_localnet` on the tap (set on the tap
//!   only: it goes with the tap).
//! - `postrouting` (srcnat): `oif tap ip saddr 127.0.0.0/8 masquerade` (the
//!   guest answers its gateway), `ip saddr G oif eth0 masquerade` (the
//!   guest's own connections leave with the pod IP).
//!
//! Forwarding: `net.ipv4.ip_forward` is per network namespace; it is set
//! to 1 in the pod's namespace. The value found before the first urunc
//! table is noted in every urunc table's userdata (`forward-was=0|1`), and
//! the last table's removal puts it back.
//!
//! Ownership: a table is ours when its name is `urunc-<id>` and its
//! userdata starts with `urunc `; anything else is left alone.

use super::mode::Port;
use super::nft::{self, Action, Chain, Cond, Hook, Rule, Table};
use super::nft_sock::{Nft, NftError};
use super::{failed, NetError, NetFacts};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};

pub const TABLE_PREFIX: &str = "urunc-";
const USERDATA_PREFIX: &str = "urunc ";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The table of container `id`: `urunc-<id>` (a long ID, whose name would
/// pass nftables' 256-byte limit, is replaced by its tap name's hash).
pub fn table_name(id: &str) -> String {
    if id.len() <= 200 {
        format!("{TABLE_PREFIX}{id}")
    } else {
        format!("{TABLE_PREFIX}{}", super::tap_name(id))
    }
}

/// A locally administered unicast MAC for the guest, stable per container.
pub fn guest_mac(id: &str) -> [u8; 6] {
    let t = super::tap_name(id);
    let h = u32::from_str_radix(&t[5..], 16).unwrap_or(0).to_be_bytes();
    [0x02, 0x75, h[0], h[1], h[2], h[3]]
}

/// The addresses of one guest: the tap's (its gateway) and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub tap: Ipv4Addr,
    pub guest: Ipv4Addr,
}

/// The first /30 of `range` that no address in the namespace touches
/// (`used`: address and prefix of every IPv4 address there).
pub fn allocate(range: (Ipv4Addr, u8), used: &[(Ipv4Addr, u8)]) -> Option<Pair> {
    let (base, plen) = range;
    let plen = plen.min(30);
    let base = u32::from(base) & super::mask_u32(plen);
    let count = 1u64 << (30 - plen);
    'next: for i in 0..count {
        let net = base + (i as u32) * 4;
        for (a, p) in used {
            let m = super::mask_u32((*p).min(30));
            if (u32::from(*a) & m) == (net & m) {
                continue 'next;
            }
        }
        return Some(Pair {
            tap: Ipv4Addr::from(net + 1),
            guest: Ipv4Addr::from(net + 2),
        });
    }
    None
}

/// What the table of a container holds (pure; see the module doc).
pub fn table(
    id: &str,
    eth: &NetFacts,
    tap: (&str, u32),
    pair: Pair,
    ports: &[Port],
    forward_was: u8,
) -> Table {
    let mut rules = Vec::new();
    for p in ports {
        let dport = Cond::Dport(p.proto.nft(), p.port);
        rules.push(Rule {
            chain: "prerouting",
            conds: vec![Cond::Daddr(eth.ip), dport.clone()],
            action: Action::Dnat(pair.guest),
        });
        for dst in [eth.ip, Ipv4Addr::LOCALHOST] {
            rules.push(Rule {
                chain: "output",
                conds: vec![Cond::Daddr(dst), dport.clone()],
                action: Action::Dnat(pair.guest),
            });
        }
    }
    rules.push(Rule {
        chain: "postrouting",
        conds: vec![
            Cond::Oif {
                index: tap.1,
                name: tap.0.to_string(),
            },
            Cond::SaddrNet8(127),
        ],
        action: Action::Masquerade,
    });
    rules.push(Rule {
        chain: "postrouting",
        conds: vec![
            Cond::Saddr(pair.guest),
            Cond::Oif {
                index: eth.ifindex,
                name: eth.ifname.clone(),
            },
        ],
        action: Action::Masquerade,
    });
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    Table {
        name: table_name(id),
        userdata: format!(
            "{USERDATA_PREFIX}forward-was={forward_was} tap={} guest={} ports={}",
            tap.0,
            pair.guest,
            ports.join(",")
        ),
        chains: vec![
            Chain {
                name: "prerouting",
                hook: Hook::Prerouting,
                priority: -100,
            },
            Chain {
                name: "output",
                hook: Hook::Output,
                priority: -100,
            },
            Chain {
                name: "postrouting",
                hook: Hook::Postrouting,
                priority: 100,
            },
        ],
        rules,
    }
}

/// `forward-was=N` in one of our tables' userdata.
fn forward_was(userdata: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(userdata).ok()?;
    let rest = s.strip_prefix(USERDATA_PREFIX)?;
    rest.split(' ')
        .find_map(|w| w.strip_prefix("forward-was="))
        .and_then(|v| v.parse().ok())
}

/// `tap=NAME` in one of our tables' userdata.
fn tap_of(userdata: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(userdata).ok()?;
    s.strip_prefix(USERDATA_PREFIX)?
        .split(' ')
        .find_map(|w| w.strip_prefix("tap="))
        .map(str::to_string)
}

/// Whether a monitor holds tap `name` (the tap has carrier only while a
/// process has it open: the same test as tc mode's for a stale redirect).
fn tap_live(nl: &mut super::netlink::Rtnl, name: &str) -> bool {
    use netlink_packet_route::link::LinkMessage;
    let Some(idx) = super::if_index(name) else {
        return false;
    };
    let mut m = LinkMessage::default();
    m.header.index = idx;
    nl.dump(RouteNetlinkMessage::GetLink(m))
        .ok()
        .and_then(|v| {
            v.iter()
                .filter_map(super::Link::from_msg)
                .find(|l| l.index == idx)
        })
        .is_some_and(|l| l.lower_up)
}

fn ours(t: &nft::Listed) -> bool {
    t.name.starts_with(TABLE_PREFIX) && t.userdata.starts_with(USERDATA_PREFIX.as_bytes())
}

fn nft_failed(what: impl Into<String>, e: NftError) -> NetError {
    // What a kernel without nf_tables (or its NAT expressions) answers.
    let hint = match e.errno {
        libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::ENOENT => {
            "; the shared network mode needs nftables NAT in the kernel \
             (CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_MASQ, or the nf_tables, \
             nft_nat, nft_masq modules)"
        }
        _ => "",
    };
    failed(what, format!("{e}{hint}"))
}

fn read_sysctl(path: &str) -> Result<u8, NetError> {
    let v = std::fs::read_to_string(path).map_err(|e| failed(format!("reading {path}"), e))?;
    Ok(u8::from(v.trim() != "0"))
}

fn write_sysctl(path: &str, v: &str) -> Result<(), NetError> {
    std::fs::write(path, v).map_err(|e| failed(format!("writing {v} to {path}"), e))
}

/// The range's network and prefix (`169.254.100.0/24`).
pub fn parse_range(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let p: u8 = p.parse().ok()?;
    (p <= 30).then_some(())?;
    Some((a.parse().ok()?, p))
}

/// Sets up the shared mode for container `id` in the current namespace:
/// the tap (owned by uid/gid) with the guest's gateway address, forwarding,
/// and the container's nftables table. Returns what the guest gets.
/// On failure, what was done is undone.
#[allow(clippy::too_many_arguments)]
pub fn setup(
    id: &str,
    eth: &NetFacts,
    tap: &str,
    uid: u32,
    gid: u32,
    ports: &[Port],
    range: (Ipv4Addr, u8),
) -> Result<NetFacts, NetError> {
    let mut nl = super::nl_open()?;
    match nl.request(super::del_link_by_name(tap), 0) {
        Ok(()) => {}
        Err(e) if super::missing(&e) => {}
        Err(e) => return Err(failed(format!("removing the stale tap {tap}"), e)),
    }
    // A live tc redirect on eth0 (another unikernel owns the pod IP) is
    // refused; a stale one goes.
    super::check_not_taken(&mut nl, eth, tap)?;
    let mut am = AddressMessage::default();
    am.header.family = AddressFamily::Inet;
    let addrs = nl
        .dump(RouteNetlinkMessage::GetAddress(am))
        .map_err(|e| failed("listing the namespace's addresses", e))?;
    let used: Vec<(Ipv4Addr, u8)> = addrs
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(IpAddr::V4(v))
                | AddressAttribute::Address(IpAddr::V4(v)) => Some((*v, a.header.prefix_len)),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    let pair = allocate(range, &used).ok_or_else(|| {
        failed(
            format!("choosing the guest's address in {}/{}", range.0, range.1),
            "every /30 of the range is in use in this namespace ([network] shared_range)",
        )
    })?;
    super::tap::create(tap, uid, gid)
        .map_err(|e| failed(format!("creating tap {tap}: {}", e.step), e.err))?;
    let r = (|| {
        let tap_idx = super::if_index(tap)
            .ok_or_else(|| failed(format!("finding the index of tap {tap}"), "no such device"))?;
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = 30;
        addr.header.index = tap_idx;
        addr.attributes
            .push(AddressAttribute::Local(IpAddr::V4(pair.tap)));
        addr.attributes
            .push(AddressAttribute::Address(IpAddr::V4(pair.tap)));
        let res = nl
            .batch(vec![
                (super::set_up_with_mtu(tap_idx, eth.mtu), 0),
                (
                    RouteNetlinkMessage::NewAddress(addr),
                    NLM_F_CREATE | NLM_F_EXCL,
                ),
            ])
            .map_err(|e| failed(format!("configuring tap {tap}"), e))?;
        for (what, r) in [
            format!("setting tap {tap} up with MTU {}", eth.mtu),
            format!("adding {}/30 to tap {tap}", pair.tap),
        ]
        .into_iter()
        .zip(res)
        {
            r.map_err(|e| failed(what, e))?;
        }
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{tap}/route_localnet"),
            "1",
        )?;
        let mut nft = Nft::open().map_err(|e| nft_failed("opening an nftables socket", e))?;
        let tables = nft
            .tables()
            .map_err(|e| nft_failed("listing nftables tables", e))?;
        let name = table_name(id);
        if let Some(stale) = tables.iter().find(|t| t.name == name) {
            if !ours(stale) {
                return Err(failed(
                    format!("nftables table ip {name}"),
                    "exists and is not urunc's; remove it or rename the container",
                ));
            }
            nft.apply(|s| nft::delete_batch(&name, s))
                .map_err(|e| nft_failed(format!("removing the stale table ip {name}"), e))?;
        }
        // Another container's table whose guest is gone (its monitor died
        // and nobody deleted it yet: kubelet keeps exited containers) would
        // still DNAT its ports to a dead address: it goes, with its tap.
        for t in tables.iter().filter(|t| t.name != name && ours(t)) {
            let Some(other_tap) = tap_of(&t.userdata) else {
                continue;
            };
            if other_tap == tap || tap_live(&mut nl, &other_tap) {
                continue;
            }
            nft.apply(|s| nft::delete_batch(&t.name, s))
                .map_err(|e| nft_failed(format!("removing the stale table ip {}", t.name), e))?;
            match nl.request(super::del_link_by_name(&other_tap), 0) {
                Ok(()) => {}
                Err(e) if super::missing(&e) => {}
                Err(e) => return Err(failed(format!("removing the stale tap {other_tap}"), e)),
            }
        }
        let inherited = tables
            .iter()
            .filter(|t| t.name != name && ours(t))
            .find_map(|t| forward_was(&t.userdata));
        let was = match inherited {
            Some(v) => v,
            None => read_sysctl(IP_FORWARD)?,
        };
        let t = table(id, eth, (tap, tap_idx), pair, ports, was);
        crate::log::debug(&format!("container {id}: nftables\n{}", t.listing()));
        nft.apply(|s| nft::create_batch(&t, s))
            .map_err(|e| nft_failed(format!("creating table ip {name}"), e))?;
        write_sysctl(IP_FORWARD, "1")?;
        Ok(NetFacts {
            ifname: tap.to_string(),
            ifindex: tap_idx,
            ip: pair.guest,
            prefix: 30,
            gateway: Some(pair.tap),
            mac: guest_mac(id),
            mtu: eth.mtu,
        })
    })();
    if r.is_err() {
        let _ = teardown(id, tap);
    }
    r
}

/// Removes container `id`'s table (if it is ours) and tap, and puts
/// `ip_forward` back when the last urunc table is gone. Missing ones are
/// fine.
pub fn teardown(id: &str, tap: &str) -> Result<(), NetError> {
    let mut nl = super::nl_open()?;
    match nl.request(super::del_link_by_name(tap), 0) {
        Ok(()) => {}
        Err(e) if super::missing(&e) => {}
        Err(e) => return Err(failed(format!("removing tap {tap}"), e)),
    }
    let mut nft = Nft::open().map_err(|e| nft_failed("opening an nftables socket", e))?;
    let tables = nft
        .tables()
        .map_err(|e| nft_failed("listing nftables tables", e))?;
    let name = table_name(id);
    let Some(mine) = tables.iter().find(|t| t.name == name && ours(t)) else {
        return Ok(());
    };
    nft.apply(|s| nft::delete_batch(&name, s))
        .map_err(|e| nft_failed(format!("removing table ip {name}"), e))?;
    let others = tables.iter().any(|t| t.name != name && ours(t));
    if !others && forward_was(&mine.userdata) == Some(0) {
        write_sysctl(IP_FORWARD, "0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::mode::{parse_ports, PortProto};
    use super::*;

    fn eth0() -> NetFacts {
        NetFacts {
            ifname: "eth0".into(),
            ifindex: 2,
            ip: Ipv4Addr::new(10, 88, 0, 5),
            prefix: 16,
            gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
            mac: [2, 0, 0, 0, 0, 5],
            mtu: 1500,
        }
    }

    #[test]
    fn first_free_slash_30() {
        let r = (Ipv4Addr::new(169, 254, 100, 0), 24);
        let p = |a: [u8; 4]| Ipv4Addr::from(a);
        assert_eq!(
            allocate(r, &[]),
            Some(Pair {
                tap: p([169, 254, 100, 1]),
                guest: p([169, 254, 100, 2])
            })
        );
        let used = [(p([10, 88, 0, 5]), 16), (p([169, 254, 100, 1]), 30)];
        assert_eq!(allocate(r, &used).unwrap().guest, p([169, 254, 100, 6]));
        // A wide address covering the range takes all of it.
        assert_eq!(allocate(r, &[(p([169, 254, 0, 1]), 16)]), None);
        assert_eq!(
            allocate((p([169, 254, 9, 8]), 30), &[]).unwrap().tap,
            p([169, 254, 9, 9])
        );
        assert_eq!(
            parse_range("169.254.100.0/24"),
            Some((p([169, 254, 100, 0]), 24))
        );
        assert_eq!(parse_range("169.254.100.0/31"), None);
        assert_eq!(parse_range("169.254.100.0"), None);
    }

    /// The golden rule set of one unikernel serving 8080/tcp and 53/udp.
    #[test]
    fn golden_table() {
        let pair = Pair {
            tap: Ipv4Addr::new(169, 254, 100, 1),
            guest: Ipv4Addr::new(169, 254, 100, 2),
        };
        let ports = parse_ports("8080/tcp,53/udp").unwrap();
        assert_eq!(ports[1].proto, PortProto::Udp);
        let t = table("web", &eth0(), ("urunc0badcafe", 7), pair, &ports, 0);
        let want = "\
table ip urunc-web { # urunc forward-was=0 tap=urunc0badcafe guest=169.254.100.2 ports=8080/tcp,53/udp
  chain prerouting { type nat hook prerouting priority -100; }
    ip daddr 10.88.0.5 tcp dport 8080 dnat to 169.254.100.2
    ip daddr 10.88.0.5 udp dport 53 dnat to 169.254.100.2
  chain output { type nat hook output priority -100; }
    ip daddr 10.88.0.5 tcp dport 8080 dnat to 169.254.100.2
    ip daddr 127.0.0.1 tcp dport 8080 dnat to 169.254.100.2
    ip daddr 10.88.0.5 udp dport 53 dnat to 169.254.100.2
    ip daddr 127.0.0.1 udp dport 53 dnat to 169.254.100.2
  chain postrouting { type nat hook postrouting priority 100; }
    oif urunc0badcafe ip saddr 127.0.0.0/8 masquerade
    ip saddr 169.254.100.2 oif eth0 masquerade
}
";
        assert_eq!(t.listing(), want);
        assert_eq!(forward_was(t.userdata.as_bytes()), Some(0));
        // A table without ports still masquerades the guest's traffic.
        let t = table("x", &eth0(), ("urunc0badcafe", 7), pair, &[], 1);
        assert_eq!(t.rules.len(), 2);
        assert_eq!(forward_was(t.userdata.as_bytes()), Some(1));
    }

    #[test]
    fn names_and_macs() {
        assert_eq!(table_name("abc"), "urunc-abc");
        let long = "x".repeat(300);
        assert!(table_name(&long).len() < 32);
        let m = guest_mac("abc");
        assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
        assert_ne!(m, guest_mac("abd"));
        assert!(forward_was(b"someone else forward-was=0").is_none());
        assert_eq!(
            tap_of(b"urunc forward-was=0 tap=urunc0badcafe guest=x").as_deref(),
            Some("urunc0badcafe")
        );
        assert_eq!(tap_of(b"other tap=urunc0badcafe"), None);
    }
}

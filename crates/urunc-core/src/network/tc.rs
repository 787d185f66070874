//! tc messages: the ingress qdisc (`handle ffff:`) and the u32 match-all
//! filter whose mirred action redirects every frame to the other
//! interface's egress — `tc filter add dev A parent ffff: protocol all
//! prio 1 u32 match u32 0 0 action mirred egress redirect dev B`. The
//! action carries the tap's name as its cookie, so that `delete` can find
//! the filters of a container without knowing its interface.

use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirror, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

/// The ingress qdisc's handle, `ffff:`.
pub const INGRESS_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};
/// Our filters' priority.
pub const PRIO: u16 = 1;
/// `ETH_P_ALL` in network byte order, as tc's `protocol` field wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

fn qdisc(ifindex: u32) -> TcMessage {
    let mut m = TcMessage::with_index(ifindex as i32);
    m.header.parent = TcHandle::INGRESS;
    m.header.handle = INGRESS_HANDLE;
    m
}

/// RTM_NEWQDISC: `tc qdisc add dev X handle ffff: ingress`.
pub fn add_ingress(ifindex: u32) -> RouteNetlinkMessage {
    let mut m = qdisc(ifindex);
    m.attributes = vec![
        TcAttribute::Kind("ingress".to_string()),
        TcAttribute::Options(vec![]),
    ];
    RouteNetlinkMessage::NewQueueDiscipline(m)
}

/// RTM_DELQDISC: `tc qdisc del dev X ingress` (its filters go with it).
pub fn del_ingress(ifindex: u32) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelQueueDiscipline(qdisc(ifindex))
}

/// RTM_GETTFILTER dump of the ingress filters of `ifindex`.
pub fn dump_ingress_filters(ifindex: u32) -> RouteNetlinkMessage {
    let mut m = TcMessage::with_index(ifindex as i32);
    m.header.parent = INGRESS_HANDLE;
    RouteNetlinkMessage::GetTrafficFilter(m)
}

/// RTM_GETQDISC dump (all interfaces).
pub fn dump_qdiscs() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default())
}

/// RTM_NEWTFILTER: on `from`'s ingress, a u32 filter matching every frame
/// (one key, mask 0 value 0 at offset 0) whose action redirects it to
/// `to`'s egress; `cookie` tags the action as ours.
pub fn add_redirect(from: u32, to: u32, cookie: &[u8]) -> RouteNetlinkMessage {
    let mut m = TcMessage::with_index(from as i32);
    m.header.parent = INGRESS_HANDLE;
    m.header.info = (u32::from(PRIO) << 16) | u32::from(ETH_P_ALL_BE);

    let mut key = TcU32Key::default();
    key.mask = 0;
    key.val = 0;
    key.off = 0;
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![key];

    let mut mirror = TcMirror::default();
    // What `tc ... mirred egress redirect` asks for: the frame is stolen
    // from the ingress path and sent out of `to`.
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.tab = 1;
    action.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
        TcActionAttribute::Cookie(cookie.to_vec()),
    ];

    m.attributes = vec![
        TcAttribute::Kind(TcFilterU32::KIND.to_string()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(sel)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    RouteNetlinkMessage::NewTrafficFilter(m)
}

/// The (interface index, kind) of every qdisc in a dump that is an ingress
/// qdisc.
pub fn ingress_qdiscs(msgs: &[RouteNetlinkMessage]) -> Vec<u32> {
    msgs.iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) if q.header.parent == TcHandle::INGRESS => {
                Some(q.header.index as u32)
            }
            _ => None,
        })
        .collect()
}

/// The mirred redirects (target ifindex, cookie) in a filter dump.
pub fn redirects(msgs: &[RouteNetlinkMessage]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewTrafficFilter(f) = m else {
            continue;
        };
        for a in &f.attributes {
            let TcAttribute::Options(opts) = a else {
                continue;
            };
            for o in opts {
                let TcOption::U32(TcFilterU32Option::Action(acts)) = o else {
                    continue;
                };
                for act in acts {
                    let mut target = None;
                    let mut cookie = Vec::new();
                    for aa in &act.attributes {
                        match aa {
                            TcActionAttribute::Options(ao) => {
                                for x in ao {
                                    if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) =
                                        x
                                    {
                                        target = Some(p.ifindex);
                                    }
                                }
                            }
                            TcActionAttribute::Cookie(c) => cookie = c.clone(),
                            _ => {}
                        }
                    }
                    if let Some(t) = target {
                        out.push((t, cookie));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn bytes(m: &TcMessage) -> Vec<u8> {
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        b
    }

    #[test]
    fn ingress_qdisc_is_handle_ffff_under_the_ingress_parent() {
        let RouteNetlinkMessage::NewQueueDiscipline(m) = add_ingress(7) else {
            panic!("wrong message type")
        };
        let b = bytes(&m);
        // tcmsg: family, pad[3], ifindex, handle, parent, info.
        assert_eq!(&b[4..8], &7i32.to_ne_bytes());
        assert_eq!(&b[8..12], &0xffff_0000u32.to_ne_bytes());
        assert_eq!(&b[12..16], &0xffff_fff1u32.to_ne_bytes());
        // TCA_KIND (1) "ingress": nla_len 12.
        assert_eq!(
            &b[20..24],
            [12u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat()
        );
        assert_eq!(&b[24..32], b"ingress\0");
    }

    #[test]
    fn redirect_filter_is_a_u32_match_all_with_mirred_egress_redirect() {
        let RouteNetlinkMessage::NewTrafficFilter(m) = add_redirect(3, 9, b"urunc0011aabb") else {
            panic!("wrong message type")
        };
        // protocol all (0x0003, big endian) at priority 1.
        assert_eq!(m.header.info, (1 << 16) | u32::from(0x0003u16.to_be()));
        let b = bytes(&m);
        // Round trip through the crate's parser: what the kernel would read.
        let back = TcMessage::parse(&b).unwrap();
        assert_eq!(back, m);
        let msgs = vec![RouteNetlinkMessage::NewTrafficFilter(back.clone())];
        assert_eq!(redirects(&msgs), vec![(9, b"urunc0011aabb".to_vec())]);
        let sel = back
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Options(o) => o.iter().find_map(|o| match o {
                    TcOption::U32(TcFilterU32Option::Selector(s)) => Some(s.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap();
        assert_eq!(sel.nkeys, 1);
        assert_eq!(
            (sel.keys[0].mask, sel.keys[0].val, sel.keys[0].off),
            (0, 0, 0)
        );
        assert!(sel.flags.contains(TcU32SelectorFlags::Terminal));
        // tc_mirred in the raw bytes: eaction 1 (egress redirect), ifindex 9,
        // preceded by tc_gen's action 4 (stolen).
        let needle: Vec<u8> = [4i32.to_ne_bytes(), 0i32.to_ne_bytes(), 0i32.to_ne_bytes()]
            .concat()
            .into_iter()
            .chain(1i32.to_ne_bytes())
            .chain(9u32.to_ne_bytes())
            .collect();
        assert!(b.windows(needle.len()).any(|w| w == needle), "{b:02x?}");
    }

    #[test]
    fn only_ingress_qdiscs_are_listed() {
        let mut root = TcMessage::with_index(2);
        root.header.parent = TcHandle::ROOT;
        let RouteNetlinkMessage::NewQueueDiscipline(ing) = add_ingress(5) else {
            panic!("wrong message type")
        };
        let msgs = vec![
            RouteNetlinkMessage::NewQueueDiscipline(root),
            RouteNetlinkMessage::NewQueueDiscipline(ing),
        ];
        assert_eq!(ingress_qdiscs(&msgs), vec![5]);
    }
}

//! A small nftables client over nfnetlink: the few messages the shared
//! network mode needs (one `ip` table with three NAT chains and their
//! rules), encoded by hand, sent in one batch.
//!
//! Why by hand: the Rust nftables crates are either GPL-3.0 (`rustables`,
//! which would make the Apache-2.0 binary GPL) or bindings to the C
//! libnftnl (`nftnl`), and the JSON ones run the `nft` binary. What we
//! send is a fixed, small set; it is checked below against the bytes.
//!
//! The wire format is the kernel's uapi, `include/uapi/linux/netfilter/
//! nf_tables.h` and `nfnetlink.h`: a netlink header, a `struct nfgenmsg`
//! (family, version 0, resource id big-endian), then attributes; every
//! integer attribute is big-endian; changes travel between
//! NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END and are applied (or
//! refused) as one transaction.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NFPROTO_IPV4: u8 = 2;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;

const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_META_OIF: u32 = 5;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;

/// Netfilter hooks (`enum nf_inet_hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting = 0,
    Output = 3,
    Postrouting = 4,
}

/// A NAT base chain of our table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    pub hook: Hook,
    /// `dstnat` is -100, `srcnat` 100 (nft's names for NF_IP_PRI_NAT_*).
    pub priority: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// What a rule matches on (all must hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// `ip daddr A`
    Daddr(Ipv4Addr),
    /// `ip saddr A`
    Saddr(Ipv4Addr),
    /// `ip saddr N.0.0.0/8`
    SaddrNet8(u8),
    /// `meta l4proto P th dport N`
    Dport(Proto, u16),
    /// `meta oif I` (interface index; `name` only for the listing)
    Oif { index: u32, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `dnat to A` (the port is kept)
    Dnat(Ipv4Addr),
    /// `masquerade` (source becomes the outgoing interface's address)
    Masquerade,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub conds: Vec<Cond>,
    pub action: Action,
}

/// A whole table of ours: created at once, removed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// NFTA_TABLE_USERDATA: what we note for `delete` (see `shared.rs`).
    pub userdata: String,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

impl Table {
    /// The table as `nft list table ip NAME` would show it (for tests and
    /// debug logs; not parsed by anything).
    pub fn listing(&self) -> String {
        let mut s = format!("table ip {} {{ # {}\n", self.name, self.userdata);
        for c in &self.chains {
            let hook = match c.hook {
                Hook::Prerouting => "prerouting",
                Hook::Output => "output",
                Hook::Postrouting => "postrouting",
            };
            let _ = writeln!(
                s,
                "  chain {} {{ type nat hook {hook} priority {}; }}",
                c.name, c.priority
            );
            for r in self.rules.iter().filter(|r| r.chain == c.name) {
                let mut words: Vec<String> = r
                    .conds
                    .iter()
                    .map(|c| match c {
                        Cond::Daddr(a) => format!("ip daddr {a}"),
                        Cond::Saddr(a) => format!("ip saddr {a}"),
                        Cond::SaddrNet8(n) => format!("ip saddr {n}.0.0.0/8"),
                        Cond::Dport(p, n) => format!("{} dport {n}", p.name()),
                        Cond::Oif { name, .. } => format!("oif {name}"),
                    })
                    .collect();
                words.push(match &r.action {
                    Action::Dnat(a) => format!("dnat to {a}"),
                    Action::Masquerade => "masquerade".into(),
                });
                let _ = writeln!(s, "    {}", words.join(" "));
            }
        }
        s.push_str("}\n");
        s
    }
}

// ---- encoding ---------------------------------------------------------

fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn attr_str(out: &mut Vec<u8>, kind: u16, s: &str) {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    attr(out, kind, &b);
}

fn attr_be32(out: &mut Vec<u8>, kind: u16, v: u32) {
    attr(out, kind, &v.to_be_bytes());
}

fn nest(out: &mut Vec<u8>, kind: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    f(&mut inner);
    attr(out, kind | NLA_F_NESTED, &inner);
}

fn data(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    nest(out, kind, |o| attr(o, NFTA_DATA_VALUE, value));
}

fn expr(out: &mut Vec<u8>, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
    nest(out, NFTA_LIST_ELEM, |o| {
        attr_str(o, NFTA_EXPR_NAME, name);
        nest(o, NFTA_EXPR_DATA, f);
    });
}

fn meta(out: &mut Vec<u8>, key: u32) {
    expr(out, "meta", |o| {
        attr_be32(o, NFTA_META_KEY, key);
        attr_be32(o, NFTA_META_DREG, NFT_REG_1);
    });
}

fn payload(out: &mut Vec<u8>, base: u32, offset: u32, len: u32) {
    expr(out, "payload", |o| {
        attr_be32(o, NFTA_PAYLOAD_DREG, NFT_REG_1);
        attr_be32(o, NFTA_PAYLOAD_BASE, base);
        attr_be32(o, NFTA_PAYLOAD_OFFSET, offset);
        attr_be32(o, NFTA_PAYLOAD_LEN, len);
    });
}

fn cmp_eq(out: &mut Vec<u8>, value: &[u8]) {
    expr(out, "cmp", |o| {
        attr_be32(o, NFTA_CMP_SREG, NFT_REG_1);
        attr_be32(o, NFTA_CMP_OP, NFT_CMP_EQ);
        data(o, NFTA_CMP_DATA, value);
    });
}

/// The expressions of a rule, as nft itself would compile them.
fn rule_exprs(r: &Rule) -> Vec<u8> {
    let mut o = Vec::new();
    for c in &r.conds {
        match c {
            // IPv4 header: saddr at 12, daddr at 16.
            Cond::Daddr(a) => {
                payload(&mut o, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
                cmp_eq(&mut o, &a.octets());
            }
            Cond::Saddr(a) => {
                payload(&mut o, NFT_PAYLOAD_NETWORK_HEADER, 12, 4);
                cmp_eq(&mut o, &a.octets());
            }
            Cond::SaddrNet8(n) => {
                payload(&mut o, NFT_PAYLOAD_NETWORK_HEADER, 12, 1);
                cmp_eq(&mut o, &[*n]);
            }
            // TCP and UDP both carry the destination port at offset 2.
            Cond::Dport(p, port) => {
                meta(&mut o, NFT_META_L4PROTO);
                cmp_eq(&mut o, &[p.number()]);
                payload(&mut o, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
                cmp_eq(&mut o, &port.to_be_bytes());
            }
            // meta oif compares the host-order u32 index.
            Cond::Oif { index, .. } => {
                meta(&mut o, NFT_META_OIF);
                cmp_eq(&mut o, &index.to_ne_bytes());
            }
        }
    }
    match &r.action {
        Action::Dnat(a) => {
            expr(&mut o, "immediate", |x| {
                attr_be32(x, NFTA_IMMEDIATE_DREG, NFT_REG_1);
                data(x, NFTA_IMMEDIATE_DATA, &a.octets());
            });
            expr(&mut o, "nat", |x| {
                attr_be32(x, NFTA_NAT_TYPE, NFT_NAT_DNAT);
                attr_be32(x, NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
                attr_be32(x, NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
            });
        }
        Action::Masquerade => expr(&mut o, "masq", |_| {}),
    }
    o
}

/// One netlink message: header, nfgenmsg, attributes.
pub(super) fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    let family = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
        libc::AF_UNSPEC as u8
    } else {
        NFPROTO_IPV4
    };
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

pub(super) fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

pub(super) const REQ: u16 = libc::NLM_F_REQUEST as u16;
const ACK: u16 = libc::NLM_F_ACK as u16;
const CREATE: u16 = libc::NLM_F_CREATE as u16;
const EXCL: u16 = libc::NLM_F_EXCL as u16;
const APPEND: u16 = libc::NLM_F_APPEND as u16;

/// A transaction: its bytes and the sequence numbers that get an ack.
pub struct Batch {
    pub bytes: Vec<u8>,
    pub acked: Vec<u32>,
}

fn batch(seq0: u32, body: impl FnOnce(&mut Vec<u8>, &mut dyn FnMut() -> u32)) -> Batch {
    let mut bytes = Vec::new();
    let mut seq = seq0;
    let mut acked = Vec::new();
    message(
        &mut bytes,
        NFNL_MSG_BATCH_BEGIN,
        REQ,
        seq,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    {
        let mut next = || {
            seq += 1;
            acked.push(seq);
            seq
        };
        body(&mut bytes, &mut next);
    }
    seq += 1;
    message(
        &mut bytes,
        NFNL_MSG_BATCH_END,
        REQ,
        seq,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    Batch { bytes, acked }
}

/// The batch that creates `t` whole: it fails (EEXIST) if a table of that
/// name exists, and then nothing is created.
pub fn create_batch(t: &Table, seq0: u32) -> Batch {
    batch(seq0, |b, next| {
        let mut a = Vec::new();
        attr_str(&mut a, NFTA_TABLE_NAME, &t.name);
        attr(&mut a, NFTA_TABLE_USERDATA, t.userdata.as_bytes());
        message(
            b,
            nft_type(NFT_MSG_NEWTABLE),
            REQ | ACK | CREATE | EXCL,
            next(),
            0,
            &a,
        );
        for c in &t.chains {
            let mut a = Vec::new();
            attr_str(&mut a, NFTA_CHAIN_TABLE, &t.name);
            attr_str(&mut a, NFTA_CHAIN_NAME, c.name);
            nest(&mut a, NFTA_CHAIN_HOOK, |h| {
                attr_be32(h, NFTA_HOOK_HOOKNUM, c.hook as u32);
                attr(h, NFTA_HOOK_PRIORITY, &c.priority.to_be_bytes());
            });
            attr_str(&mut a, NFTA_CHAIN_TYPE, "nat");
            message(
                b,
                nft_type(NFT_MSG_NEWCHAIN),
                REQ | ACK | CREATE,
                next(),
                0,
                &a,
            );
        }
        for r in &t.rules {
            let mut a = Vec::new();
            attr_str(&mut a, NFTA_RULE_TABLE, &t.name);
            attr_str(&mut a, NFTA_RULE_CHAIN, r.chain);
            attr(&mut a, NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, &rule_exprs(r));
            message(
                b,
                nft_type(NFT_MSG_NEWRULE),
                REQ | ACK | CREATE | APPEND,
                next(),
                0,
                &a,
            );
        }
    })
}

/// The batch that removes table `name` (its chains and rules go with it).
pub fn delete_batch(name: &str, seq0: u32) -> Batch {
    batch(seq0, |b, next| {
        let mut a = Vec::new();
        attr_str(&mut a, NFTA_TABLE_NAME, name);
        message(b, nft_type(NFT_MSG_DELTABLE), REQ | ACK, next(), 0, &a);
    })
}

/// A table as a dump lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub userdata: Vec<u8>,
}

/// Attributes after a message's nfgenmsg.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

pub(super) fn parse_table(payload: &[u8]) -> Option<Listed> {
    let a = attrs(payload.get(4..)?);
    let name = a.iter().find(|(k, _)| *k == NFTA_TABLE_NAME)?.1;
    let name = String::from_utf8_lossy(name.split(|c| *c == 0).next()?).into_owned();
    let userdata = a
        .iter()
        .find(|(k, _)| *k == NFTA_TABLE_USERDATA)
        .map(|(_, v)| v.to_vec())
        .unwrap_or_default();
    Some(Listed { name, userdata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            name: "urunc-a".into(),
            userdata: "urunc".into(),
            chains: vec![Chain {
                name: "prerouting",
                hook: Hook::Prerouting,
                priority: -100,
            }],
            rules: vec![Rule {
                chain: "prerouting",
                conds: vec![
                    Cond::Daddr(Ipv4Addr::new(10, 0, 0, 2)),
                    Cond::Dport(Proto::Tcp, 8080),
                ],
                action: Action::Dnat(Ipv4Addr::new(169, 254, 100, 2)),
            }],
        }
    }

    /// Splits a batch into (type, flags, seq, payload).
    fn split(mut b: &[u8]) -> Vec<(u16, u16, u32, Vec<u8>)> {
        let mut out = vec![];
        while !b.is_empty() {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0, "messages stay aligned");
            out.push((
                u16::from_ne_bytes([b[4], b[5]]),
                u16::from_ne_bytes([b[6], b[7]]),
                u32::from_ne_bytes(b[8..12].try_into().unwrap()),
                b[16..len].to_vec(),
            ));
            b = &b[len..];
        }
        out
    }

    #[test]
    fn create_batch_is_begin_table_chain_rule_end() {
        let b = create_batch(&sample(), 100);
        let m = split(&b.bytes);
        let kinds: Vec<u16> = m.iter().map(|x| x.0).collect();
        assert_eq!(kinds, [0x10, 0x0a00, 0x0a03, 0x0a06, 0x11]);
        assert_eq!(b.acked, [101, 102, 103]);
        // Batch begin: AF_UNSPEC, version 0, res_id = NFNL_SUBSYS_NFTABLES (be).
        assert_eq!(m[0].3, [0, 0, 0, 10]);
        // The table: family ip, NEW|CREATE|EXCL|ACK, name and userdata.
        assert_eq!(&m[1].3[..4], [2, 0, 0, 0]);
        assert_eq!(m[1].1, REQ | ACK | CREATE | EXCL);
        let a = attrs(&m[1].3[4..]);
        assert_eq!(a[0], (NFTA_TABLE_NAME, &b"urunc-a\0"[..]));
        assert_eq!(a[1], (NFTA_TABLE_USERDATA, &b"urunc"[..]));
        assert_eq!(
            parse_table(&m[1].3),
            Some(Listed {
                name: "urunc-a".into(),
                userdata: b"urunc".to_vec()
            })
        );
        // The chain's hook: prerouting (0), priority -100 big-endian.
        let a = attrs(&m[2].3[4..]);
        let hook = a.iter().find(|x| x.0 == NFTA_CHAIN_HOOK).unwrap().1;
        let h = attrs(hook);
        assert_eq!(h[0], (NFTA_HOOK_HOOKNUM, &0u32.to_be_bytes()[..]));
        assert_eq!(h[1], (NFTA_HOOK_PRIORITY, &(-100i32).to_be_bytes()[..]));
        assert!(a.contains(&(NFTA_CHAIN_TYPE, &b"nat\0"[..])));
    }

    #[test]
    fn dnat_rule_compiles_like_nft() {
        let e = rule_exprs(&sample().rules[0]);
        let names: Vec<String> = attrs(&e)
            .iter()
            .map(|(k, v)| {
                assert_eq!(*k, NFTA_LIST_ELEM);
                let inner = attrs(v);
                String::from_utf8_lossy(inner[0].1)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        // What `nft --debug=netlink add rule ip t c ip daddr 10.0.0.2 tcp
        // dport 8080 dnat to 169.254.100.2` prints, expression by expression.
        assert_eq!(
            names,
            [
                "payload",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate",
                "nat"
            ]
        );
        // Values: daddr, l4proto 6, port 8080 big-endian, dnat address.
        let needle = |v: &[u8]| {
            let mut n = Vec::new();
            attr(&mut n, NFTA_DATA_VALUE, v);
            e.windows(n.len()).any(|w| w == n)
        };
        assert!(needle(&[10, 0, 0, 2]));
        assert!(needle(&[6]));
        assert!(needle(&8080u16.to_be_bytes()));
        assert!(needle(&[169, 254, 100, 2]));
    }

    #[test]
    fn delete_batch_names_the_table() {
        let b = delete_batch("urunc-x", 7);
        let m = split(&b.bytes);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].0, 0x0a02);
        assert_eq!(attrs(&m[1].3[4..]), [(NFTA_TABLE_NAME, &b"urunc-x\0"[..])]);
        assert_eq!(b.acked, [8]);
    }

    #[test]
    fn listing_reads_like_nft() {
        let l = sample().listing();
        assert!(l.contains("chain prerouting { type nat hook prerouting priority -100; }"));
        assert!(l.contains("ip daddr 10.0.0.2 tcp dport 8080 dnat to 169.254.100.2"));
    }
}

//! The container's network, handed to the guest: discover eth0's facts in
//! the current network namespace, create the container's tap and redirect
//! all traffic between eth0 and the tap with tc.
//!
//! (Interface only for now; the netlink implementation follows.)

use std::net::Ipv4Addr;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("network: {what}: {problem}")]
    Failed { what: String, problem: String },
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

/// The container's interface in the current network namespace: `eth0`, or
/// the single non-loopback interface. `Ok(None)` when there is none.
pub fn discover() -> Result<Option<NetFacts>, NetError> {
    Ok(None)
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

/// Creates `tap` (owned by uid/gid, eth0's MTU) and the tc redirect.
pub fn setup(facts: &NetFacts, tap: &str, uid: u32, gid: u32) -> Result<(), NetError> {
    let _ = (facts, uid, gid);
    Err(NetError::Failed {
        what: format!("tap {tap}"),
        problem: "network setup is not implemented yet".into(),
    })
}

/// Removes `tap` and the tc qdiscs/filters on `ifname`. Missing ones are fine.
pub fn teardown(tap: &str, ifname: Option<&str>) -> Result<(), NetError> {
    let _ = (tap, ifname);
    Ok(())
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
    }
}

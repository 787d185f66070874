//! Recognising another container's redirect on the interface we are about
//! to take: refused while its monitor holds its tap, removed when stale.

use super::error::{failed, NetError};
use super::facts::NetFacts;
use super::links::{del_link_by_name, if_index, missing, Link};
use super::names::is_urunc_tap;
use super::netlink::Rtnl;
use super::tc;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;

/// Refuses an interface whose ingress already redirects to another
/// container's tap that a monitor still holds; a stale one (no monitor
/// attached: no carrier) is removed.
pub(super) fn check_not_taken(nl: &mut Rtnl, facts: &NetFacts, tap: &str) -> Result<(), NetError> {
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

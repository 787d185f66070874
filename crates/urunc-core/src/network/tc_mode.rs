//! The `tc` mode: the container's tap and the tc redirect between it and
//! the container's interface (setup at start), and their removal (teardown
//! at delete, or when start fails).

use super::error::{failed, NetError};
use super::facts::NetFacts;
use super::links::{del_link_by_name, if_index, missing, nl_open, set_up_with_mtu};
use super::netlink::{NlError, Rtnl};
use super::stale::check_not_taken;
use super::{tap, tc};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

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

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
//!
//! Layout (a file imports only files listed before it, never back):
//! `error` (NetError) · `names` (our taps' names) · `netlink` (the
//! rtnetlink socket) · `links` (link requests both modes send) · `facts`
//! (discover) · `tap`, `tc` (tun ioctls, tc messages) · `stale` (another
//! container's redirect on eth0) · `tc_mode` (setup/teardown) · `hostns`
//! (the host-network guard) · `dns` (the guest's nameserver) · `nft`,
//! `nft_sock` (nftables messages and socket) · `mode` (the choice) ·
//! `shared` (the shared mode). This file only declares and re-exports.

mod dns;
mod error;
mod facts;
mod hostns;
mod links;
pub mod mode;
mod names;
mod netlink;
mod nft;
mod nft_sock;
pub mod shared;
mod stale;
mod tap;
mod tc;
mod tc_mode;

pub use dns::{container_nameserver, nameserver};
pub use error::NetError;
pub use facts::{discover, prefix_mask, NetFacts};
pub use hostns::check_own_netns;
pub use names::{is_urunc_tap, tap_name};
pub use tc_mode::{setup, teardown};

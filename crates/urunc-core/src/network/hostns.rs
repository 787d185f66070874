//! The guard against taking over the host's network: the container must
//! have a network namespace of its own.

use super::error::{failed, NetError};

/// Refuses to take over the runtime's own network namespace: a container
/// without a network namespace of its own (host networking), or one whose
/// namespace is PID 1's, would otherwise have the host's interface
/// redirected into its guest. Called before [`discover`](super::discover)
/// in the container's namespace.
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

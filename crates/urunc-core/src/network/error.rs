//! The network step's error: what failed, named after the interface or
//! tap it concerns.

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

pub(super) fn failed(what: impl Into<String>, problem: impl std::fmt::Display) -> NetError {
    NetError::Failed {
        what: what.into(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

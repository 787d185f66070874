//! Which network mode a container gets, and which ports it serves: pure
//! functions of its annotations, environment and the config (decided at
//! `create`, kept in the state, used at `start`).
//!
//! - `tc` (default): the guest takes over the pod IP; all of eth0's
//!   traffic is redirected to it. One unikernel per pod, no sidecars.
//! - `shared`: the pod IP stays on eth0 for everyone; the guest gets a
//!   private /30 on its own tap, and nftables NAT forwards its ports.
//!
//! Precedence: the container's `com.urunc.network.mode` annotation (a pod
//! annotation reaches containers when containerd's runtime handler lists
//! it in `pod_annotations`) > Knative (`io.kubernetes.cri.container-name`
//! = `user-container`: shared) > `[network] mode` in the config > tc.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use super::nft::Proto;

pub const KEY_MODE: &str = "com.urunc.network.mode";
pub const KEY_PORTS: &str = "com.urunc.network.ports";
/// containerd's CRI plugin sets these on every container of a pod
/// (containerd `pkg/cri/annotations`).
pub const KEY_CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub const KEY_CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Knative's serving container; queue-proxy runs beside it and proxies to
/// `127.0.0.1:$PORT` (Knative sets `PORT`, 8080 by default).
pub const KNATIVE_USER_CONTAINER: &str = "user-container";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Tc,
    Shared,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "tc" => Some(Mode::Tc),
            "shared" => Some(Mode::Shared),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tc => "tc",
            Mode::Shared => "shared",
        }
    }
}

/// A port the guest serves on the pod IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub port: u16,
    pub proto: PortProto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    Tcp,
    Udp,
}

impl PortProto {
    pub fn nft(self) -> Proto {
        match self {
            PortProto::Tcp => Proto::Tcp,
            PortProto::Udp => Proto::Udp,
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto.nft().name())
    }
}

/// The network a container asked for (kept in its state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Choice {
    pub mode: Mode,
    /// Set by an annotation (or Knative), not by default: a tc container
    /// that asked for tc is never switched.
    #[serde(default)]
    pub explicit: bool,
    #[serde(default)]
    pub ports: Vec<Port>,
}

/// `8080/tcp,53/udp,9000` (protocol defaults to tcp); duplicates refused.
pub fn parse_ports(s: &str) -> Result<Vec<Port>, String> {
    let mut out: Vec<Port> = Vec::new();
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let (n, p) = w.split_once('/').unwrap_or((w, "tcp"));
        let proto = match p.trim() {
            "tcp" => PortProto::Tcp,
            "udp" => PortProto::Udp,
            other => return Err(format!("{w:?}: protocol {other:?} is not tcp or udp")),
        };
        let port = match n.trim().parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{w:?}: {n:?} is not a port (1-65535)")),
            Ok(v) => v,
        };
        let p = Port { port, proto };
        if out.contains(&p) {
            return Err(format!("{w:?}: listed twice"));
        }
        out.push(p);
    }
    Ok(out)
}

/// The container's choice from its annotations, `process.env` and the
/// config's default mode. Errors name the annotation and the problem.
pub fn choose(
    annotations: &HashMap<String, String>,
    env: &[String],
    default: Mode,
) -> Result<Choice, String> {
    let knative = annotations
        .get(KEY_CRI_CONTAINER_NAME)
        .is_some_and(|n| n == KNATIVE_USER_CONTAINER);
    let (mode, explicit) = match annotations.get(KEY_MODE) {
        Some(v) => (
            Mode::parse(v)
                .ok_or_else(|| format!("annotation {KEY_MODE}: {v:?} is not one of tc, shared"))?,
            true,
        ),
        None if knative => (Mode::Shared, true),
        None => (default, false),
    };
    let ports = match annotations.get(KEY_PORTS) {
        Some(v) => parse_ports(v).map_err(|e| format!("annotation {KEY_PORTS}: {e}"))?,
        None if knative => {
            let port = env
                .iter()
                .find_map(|kv| kv.strip_prefix("PORT="))
                .map(|p| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("process.env PORT={p:?} is not a port"))
                })
                .transpose()?
                .unwrap_or(8080);
            vec![Port {
                port,
                proto: PortProto::Tcp,
            }]
        }
        None => vec![],
    };
    Ok(Choice {
        mode,
        explicit,
        ports,
    })
}

/// Another live unikernel in the same network namespace.
#[derive(Debug, Clone)]
pub struct Neighbour {
    pub id: String,
    pub choice: Choice,
}

/// The rule for several unikernels in one pod: a newcomer whose mode was
/// not asked for joins a shared pod in shared mode; anything else next to
/// a tc unikernel, or a tc unikernel next to anything, is refused (tc
/// gives the guest all of eth0: there is nothing left to share, and the
/// running guest cannot be switched under its feet). Ports must differ.
pub fn settle(mut me: Choice, others: &[Neighbour]) -> Result<Choice, String> {
    if others.is_empty() {
        return Ok(me);
    }
    if let Some(o) = others.iter().find(|o| o.choice.mode == Mode::Tc) {
        return Err(format!(
            "container {} already owns the pod's network in tc mode (the guest has the \
             pod IP); a second unikernel cannot join it: give the pod's unikernels \
             the annotation {KEY_MODE}=shared",
            o.id
        ));
    }
    if me.mode == Mode::Tc {
        if me.explicit {
            return Err(format!(
                "{KEY_MODE}=tc: the pod already runs unikernel {} in shared mode; tc \
                 would take all of eth0 from it",
                others[0].id
            ));
        }
        me.mode = Mode::Shared;
    }
    for p in &me.ports {
        if let Some(o) = others.iter().find(|o| o.choice.ports.contains(p)) {
            return Err(format!(
                "port {p} is already served by container {} in this pod; \
                 two unikernels in one pod need distinct ports ({KEY_PORTS})",
                o.id
            ));
        }
    }
    Ok(me)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ports_parse_with_tcp_default() {
        assert_eq!(
            parse_ports("8080/tcp, 53/udp,9000").unwrap(),
            [
                Port {
                    port: 8080,
                    proto: PortProto::Tcp
                },
                Port {
                    port: 53,
                    proto: PortProto::Udp
                },
                Port {
                    port: 9000,
                    proto: PortProto::Tcp
                }
            ]
        );
        for bad in ["0", "70000", "80/sctp", "x", "80,80/tcp"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        assert!(parse_ports("80/sctp").unwrap_err().contains("sctp"));
    }

    #[test]
    fn annotation_beats_knative_beats_config() {
        let c = choose(&ann(&[]), &[], Mode::Tc).unwrap();
        assert_eq!((c.mode, c.explicit), (Mode::Tc, false));
        let c = choose(&ann(&[]), &[], Mode::Shared).unwrap();
        assert_eq!((c.mode, c.explicit), (Mode::Shared, false));
        let kn = [(KEY_CRI_CONTAINER_NAME, "user-container")];
        let c = choose(&ann(&kn), &["PORT=9090".into()], Mode::Tc).unwrap();
        assert_eq!(c.mode, Mode::Shared);
        assert_eq!(c.ports[0].port, 9090);
        let c = choose(&ann(&kn), &[], Mode::Tc).unwrap();
        assert_eq!(c.ports[0].port, 8080);
        let c = choose(
            &ann(&[kn[0], (KEY_MODE, "tc"), (KEY_PORTS, "81")]),
            &[],
            Mode::Shared,
        )
        .unwrap();
        assert_eq!((c.mode, c.ports[0].port), (Mode::Tc, 81));
        let e = choose(&ann(&[(KEY_MODE, "nat")]), &[], Mode::Tc).unwrap_err();
        assert!(e.contains(KEY_MODE) && e.contains("\"nat\""), "{e}");
        let e = choose(&ann(&[(KEY_PORTS, "80/icmp")]), &[], Mode::Tc).unwrap_err();
        assert!(e.contains(KEY_PORTS) && e.contains("icmp"), "{e}");
    }

    fn shared(ports: &str) -> Choice {
        Choice {
            mode: Mode::Shared,
            explicit: true,
            ports: parse_ports(ports).unwrap(),
        }
    }

    #[test]
    fn second_unikernel_rule() {
        let a = Neighbour {
            id: "a".into(),
            choice: shared("8080"),
        };
        // Alone: as asked.
        assert_eq!(settle(shared("8080"), &[]).unwrap(), shared("8080"));
        // Default tc next to a shared one: joins shared.
        let mut d = shared("8081");
        d.mode = Mode::Tc;
        d.explicit = false;
        assert_eq!(
            settle(d, std::slice::from_ref(&a)).unwrap().mode,
            Mode::Shared
        );
        // Asked-for tc next to a shared one: refused.
        let mut t = shared("8081");
        t.mode = Mode::Tc;
        let e = settle(t, std::slice::from_ref(&a)).unwrap_err();
        assert!(e.contains("tc") && e.contains(" a "), "{e}");
        // Anything next to a tc one: refused, naming it.
        let tc = Neighbour {
            id: "owner".into(),
            choice: Choice::default(),
        };
        let e = settle(shared("9000"), &[tc]).unwrap_err();
        assert!(e.contains("owner") && e.contains(KEY_MODE), "{e}");
        // Same port: refused, naming port and container.
        let e = settle(shared("53/udp,8080"), &[a]).unwrap_err();
        assert!(e.contains("8080/tcp") && e.contains("container a"), "{e}");
    }
}

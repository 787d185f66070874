//! `/etc/urunc/config.toml`: defaults that the OCI spec does not carry.
//!
//! A missing file means built-in defaults; a file that does not parse is an
//! error naming the line. The path can be overridden with `URUNC_CONFIG`.

use crate::error::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/urunc/config.toml";
pub const ENV_PATH: &str = "URUNC_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// OCI runtime that runs every container that is not a unikernel.
    pub delegate: String,
    /// Guest memory when the spec sets no memory limit.
    pub default_memory_mib: u64,
    /// vCPUs when the spec sets no CPU quota (`vcpus` overrides the spec).
    pub default_vcpus: u32,
    /// Fixed vCPU count, overriding the spec's CPU quota.
    pub vcpus: Option<u32>,
    /// Seccomp for monitors. `false` turns it off even when the spec asks.
    pub seccomp: bool,
    /// Nameserver handed to guests when the container has no resolv.conf.
    pub dns_fallback: Ipv4Addr,
    pub timestamps: Timestamps,
    pub monitors: BTreeMap<String, MonitorConfig>,
    pub network: NetworkConfig,
}

/// `[network]`: how a guest reaches the pod's network (SPEC §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// `tc` (the guest owns the pod IP) or `shared` (NAT, the pod IP stays
    /// on eth0); annotations override it per container.
    pub mode: crate::network::mode::Mode,
    /// Where shared-mode guests get their /30s (`169.254.100.0/24`).
    pub shared_range: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            mode: crate::network::mode::Mode::Tc,
            shared_range: "169.254.100.0/24".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timestamps {
    pub enabled: bool,
    pub destination: PathBuf,
}

/// Per-monitor settings, `[monitors.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Binary; default: the monitor's usual name looked up in `$PATH`.
    pub path: Option<PathBuf>,
    /// Memory the monitor process needs beyond guest RAM, added to the
    /// container's cgroup memory limit.
    pub overhead_mib: Option<u64>,
    pub default_memory_mib: Option<u64>,
    pub default_vcpus: Option<u32>,
    /// QEMU: `kvm`, `tcg`, or `kvm-tcg` (KVM, falling back to TCG).
    pub accel: Option<String>,
    /// QEMU: machine type (`-M`), e.g. `pc`, `q35`, `microvm`.
    pub machine: Option<String>,
    /// QEMU: CPU model (`-cpu`); unset leaves QEMU's default model.
    pub cpu: Option<String>,
    /// QEMU: BIOS/firmware directory passed with `-L`.
    pub data_dir: Option<PathBuf>,
    /// Extra words appended to the guest command line (e.g. `tsc_early_khz=`).
    pub extra_guest_args: Vec<String>,
    /// QEMU: how shared directories reach the guest, `9p` (default) or
    /// `virtiofs` (see [`crate::shares`]).
    pub shared_fs: Option<String>,
    /// QEMU: the virtiofsd binary for `shared_fs = "virtiofs"`; default:
    /// `virtiofsd` in `$PATH`, else `/usr/libexec/virtiofsd`, else
    /// `/usr/lib/qemu/virtiofsd`.
    pub virtiofsd: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            delegate: "runc".into(),
            default_memory_mib: 256,
            default_vcpus: 1,
            vcpus: None,
            seccomp: true,
            dns_fallback: Ipv4Addr::new(8, 8, 8, 8),
            timestamps: Timestamps::default(),
            monitors: BTreeMap::new(),
            network: NetworkConfig::default(),
        }
    }
}

impl Default for Timestamps {
    fn default() -> Self {
        Timestamps {
            enabled: false,
            destination: PathBuf::from("/var/log/urunc/timestamps.log"),
        }
    }
}

impl Config {
    /// Loads from `$URUNC_CONFIG` or the default path; missing file = defaults.
    pub fn load() -> Result<Config, ConfigError> {
        let path = std::env::var_os(ENV_PATH)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        Self::load_from(&path)
    }

    pub fn load_from(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            // serde reports unknown keys against the whole table; find the
            // key's own line so that the message points at it.
            let unknown = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
                .and_then(|key| {
                    text.lines().position(|l| {
                        let l = l.trim_start();
                        l.strip_prefix(key)
                            .is_some_and(|r| r.trim_start().starts_with('='))
                    })
                })
                .map(|i| i + 1);
            let line = unknown.or_else(|| {
                e.span()
                    .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            });
            ConfigError::Parse {
                path: path.to_path_buf(),
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })?;
        for (name, m) in &cfg.monitors {
            if let Some(a) = &m.accel {
                if !["kvm", "tcg", "kvm-tcg"].contains(&a.as_str()) {
                    return Err(ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: format!(
                            "monitors.{name}.accel: {a:?} is not one of kvm, tcg, kvm-tcg"
                        ),
                    });
                }
            }
        }
        if crate::network::shared::parse_range(&cfg.network.shared_range).is_none() {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "network.shared_range: {:?} is not an IPv4 network with a prefix of \
                     at most 30 (like \"169.254.100.0/24\")",
                    cfg.network.shared_range
                ),
            });
        }
        Ok(cfg)
    }

    pub fn monitor(&self, name: &str) -> MonitorConfig {
        self.monitors.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_missing() {
        let c = Config::load_from(Path::new("/nonexistent/urunc.toml")).unwrap();
        assert_eq!(c.default_memory_mib, 256);
        assert_eq!(c.delegate, "runc");
    }

    #[test]
    fn parses_monitor_sections() {
        let c = Config::parse(
            "default_memory_mib = 128\n[monitors.qemu]\naccel = \"tcg\"\nmachine = \"microvm\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.default_memory_mib, 128);
        assert_eq!(c.monitor("qemu").accel.as_deref(), Some("tcg"));
        assert_eq!(c.monitor("qemu").machine.as_deref(), Some("microvm"));
    }

    #[test]
    fn bad_file_names_the_line() {
        let e = Config::parse("delegate = \"runc\"\nbogus = 1\n", Path::new("c.toml")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("c.toml") && m.contains("line 2"), "{m}");
        let e =
            Config::parse("[monitors.qemu]\naccel = \"xen\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("monitors.qemu.accel"), "{e}");
    }

    #[test]
    fn network_section() {
        use crate::network::mode::Mode;
        assert_eq!(Config::default().network.mode, Mode::Tc);
        let c = Config::parse(
            "[network]\nmode = \"shared\"\nshared_range = \"10.99.0.0/28\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.network.mode, Mode::Shared);
        assert_eq!(c.network.shared_range, "10.99.0.0/28");
        let e = Config::parse("[network]\nmode = \"nat\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("nat"), "{e}");
        let e = Config::parse(
            "[network]\nshared_range = \"10.0.0.0/31\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("network.shared_range"), "{e}");
    }
}

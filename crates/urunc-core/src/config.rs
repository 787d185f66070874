//! `/etc/urunc/config.toml`: defaults that the OCI spec does not carry.
//!
//! One schema that takes the Go urunc's file as it is, plus our own keys.
//! The Go urunc's keys (its documented `config.toml`, v0.8):
//!
//! | key | meaning here |
//! |---|---|
//! | `[runtime] libcontainer` | accepted, no effect: urunc always builds the monitor's sandbox itself |
//! | `[log] level` | least level written to the log: `debug`, `info`, `warn`/`warning`, `error` (`--debug` still means debug) |
//! | `[log] syslog` | also send every log line to the system log (`/dev/log`) |
//! | `[timestamps] enabled, destination` | per-step timestamps file (see [`crate::timestamps`]) |
//! | `[monitors.<name>] default_memory_mb` | guest memory (MiB) when the spec sets no memory limit (alias of our `default_memory_mib`) |
//! | `[monitors.<name>] default_vcpus` | vCPUs when the spec sets no CPU quota |
//! | `[monitors.<name>] path` | the monitor binary |
//! | `[monitors.<name>] data_path` | QEMU: firmware directory, `-L` (alias of our `data_dir`) |
//! | `[extra_binaries.virtiofsd] path, options` | the virtiofsd binary and extra words for its command line |
//!
//! Monitor names: `qemu`, `firecracker`, `hvt`, `spt`, `clh`.
//!
//! Our own keys are documented on the fields below. An unknown key is a
//! warning (with its line), never a failure: files written for other
//! versions keep working.
//!
//! Path: `$URUNC_CONFIG` if set, else `$URUNC_CONFIG_FILE` (the Go urunc's
//! variable), else `/etc/urunc/config.toml`. `URUNC_CONFIG` wins when both
//! are set, as the variable only this implementation reads. A missing file
//! means built-in defaults. A file that cannot be read or parsed does not
//! stop urunc: [`Config::load`] returns the defaults together with the
//! error, the caller logs it and delegates ordinary containers as usual,
//! and `create` of a unikernel fails with it (naming the line).

use crate::error::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/urunc/config.toml";
/// Ours; wins over [`ENV_PATH_GO`].
pub const ENV_PATH: &str = "URUNC_CONFIG";
/// The Go urunc's variable for the same path.
pub const ENV_PATH_GO: &str = "URUNC_CONFIG_FILE";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// OCI runtime that runs every container that is not a unikernel.
    pub delegate: String,
    /// Guest memory when the spec sets no memory limit.
    #[serde(alias = "default_memory_mb")]
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
    /// Go urunc: `[runtime]`.
    pub runtime: RuntimeSection,
    /// Go urunc: `[log]`.
    pub log: LogSection,
    /// Go urunc: `[extra_binaries]`.
    pub extra_binaries: ExtraBinaries,
    /// `[network]`.
    pub network: NetworkConfig,
}

/// `[network]`: how a guest reaches the pod's network (SPEC §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
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
#[serde(default)]
pub struct Timestamps {
    pub enabled: bool,
    pub destination: PathBuf,
}

/// `[runtime]` (Go urunc).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeSection {
    /// Go urunc: set up containers through runc's libcontainer. Accepted
    /// and ignored here (urunc has one way to build the monitor's sandbox).
    pub libcontainer: bool,
}

/// `[log]` (Go urunc).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// `debug`, `info`, `warn` (or `warning`), `error`; unset: `info`.
    pub level: Option<String>,
    /// Also write log lines to the system log (`/dev/log`).
    pub syslog: bool,
}

/// `[extra_binaries]` (Go urunc).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExtraBinaries {
    pub virtiofsd: ExtraBinary,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExtraBinary {
    /// The binary; `[monitors.qemu] virtiofsd` wins over it.
    pub path: Option<PathBuf>,
    /// Extra words for its command line, split on whitespace (e.g.
    /// `"--sandbox none"`), after the ones urunc passes.
    pub options: Option<String>,
}

/// Per-monitor settings, `[monitors.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MonitorConfig {
    /// Binary; default: the monitor's usual name looked up in `$PATH`.
    pub path: Option<PathBuf>,
    /// Memory the monitor process needs beyond guest RAM, added to the
    /// container's cgroup memory limit.
    pub overhead_mib: Option<u64>,
    /// Guest memory when the spec sets no limit (Go: `default_memory_mb`).
    #[serde(alias = "default_memory_mb")]
    pub default_memory_mib: Option<u64>,
    pub default_vcpus: Option<u32>,
    /// QEMU: `kvm`, `tcg`, or `kvm-tcg` (KVM, falling back to TCG).
    pub accel: Option<String>,
    /// QEMU: machine type (`-M`), e.g. `pc`, `q35`, `microvm`.
    pub machine: Option<String>,
    /// QEMU: CPU model (`-cpu`); unset leaves QEMU's default model.
    pub cpu: Option<String>,
    /// QEMU: BIOS/firmware directory passed with `-L` (Go: `data_path`).
    #[serde(alias = "data_path")]
    pub data_dir: Option<PathBuf>,
    /// Extra words appended to the guest command line (e.g. `tsc_early_khz=`).
    pub extra_guest_args: Vec<String>,
    /// QEMU: how shared directories reach the guest, `9p` (default) or
    /// `virtiofs` (see [`crate::shares`]).
    pub shared_fs: Option<String>,
    /// QEMU: the virtiofsd binary for `shared_fs = "virtiofs"`; default:
    /// `[extra_binaries.virtiofsd] path`, else `virtiofsd` in `$PATH`, else
    /// `/usr/libexec/virtiofsd`, else `/usr/lib/qemu/virtiofsd`.
    pub virtiofsd: Option<PathBuf>,
    /// QEMU: extra words for virtiofsd's command line; default: the words
    /// of `[extra_binaries.virtiofsd] options`.
    pub virtiofsd_options: Vec<String>,
    /// QEMU: vhost-net for the guest's network (`vhost=on` on the tap).
    /// Unset: on when the host has `/dev/vhost-net`; `false` turns it off.
    pub vhost: Option<bool>,
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
            runtime: RuntimeSection::default(),
            log: LogSection::default(),
            extra_binaries: ExtraBinaries::default(),
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

/// What [`Config::load`] found: the config to use (defaults when the file
/// is bad), the file's problem if any, and warnings (unknown keys).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
    pub error: Option<ConfigError>,
    pub warnings: Vec<String>,
}

/// The config file's path from the environment (see the module docs).
pub fn path_from_env() -> PathBuf {
    [ENV_PATH, ENV_PATH_GO]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The line where the dotted key `path` (e.g. `monitors.qemu.vhostt`) is
/// written: its last segment as `key =` after the right table header, or
/// a header naming it.
fn key_line(text: &str, path: &str) -> Option<usize> {
    let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(h) = l.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            current = h.split(']').next().unwrap_or("").replace(' ', "");
            if current == path || current.starts_with(&format!("{path}.")) {
                return Some(i + 1);
            }
            continue;
        }
        let k = l.split('=').next().unwrap_or("").trim().trim_matches('"');
        if l.contains('=') {
            let full = if current.is_empty() {
                k.to_string()
            } else {
                format!("{current}.{k}")
            };
            if full == path || (current == table && k == key) {
                return Some(i + 1);
            }
        }
    }
    None
}

impl Config {
    /// Loads from the path in the environment (see [`path_from_env`]).
    /// Never fails: a bad file yields the defaults plus the error.
    pub fn load() -> Loaded {
        Self::load_from(&path_from_env())
    }

    pub fn load_from(path: &Path) -> Loaded {
        let mut warnings = Vec::new();
        let result = match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_with_warnings(&text, path, &mut warnings),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                problem: e.to_string(),
            }),
        };
        let (config, error) = match result {
            Ok(c) => (c, None),
            Err(e) => (Config::default(), Some(e)),
        };
        Loaded {
            config,
            path: path.to_path_buf(),
            error,
            warnings,
        }
    }

    /// Parses `text`; unknown keys are dropped silently (see
    /// [`Config::parse_with_warnings`]).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with_warnings(text, path, &mut Vec::new())
    }

    /// Parses `text`, pushing one warning per unknown key (with its line).
    pub fn parse_with_warnings(
        text: &str,
        path: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::new(text);
        let mut unknown = Vec::new();
        let cfg: Config =
            serde_ignored::deserialize(de, |p| unknown.push(p.to_string())).map_err(|e| {
                err(match e.span() {
                    Some(s) => format!("line {}: {}", line_of(text, s.start), e.message()),
                    None => e.message().to_string(),
                })
            })?;
        for k in unknown {
            let at = key_line(text, &k)
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            warnings.push(format!(
                "config file {}: {at}unknown key `{k}` ignored",
                path.display()
            ));
        }
        for (name, m) in &cfg.monitors {
            let at = |key: &str| {
                key_line(text, &format!("monitors.{name}.{key}"))
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default()
            };
            if !crate::monitor::KNOWN.contains(&crate::monitor::canonical(name)) {
                warnings.push(format!(
                    "config file {}: {}[monitors.{name}]: not a known monitor (known: {}); ignored",
                    path.display(),
                    key_line(text, &format!("monitors.{name}"))
                        .map(|l| format!("line {l}: "))
                        .unwrap_or_default(),
                    crate::monitor::KNOWN.join(", ")
                ));
            }
            if let Some(a) = &m.accel {
                if !["kvm", "tcg", "kvm-tcg"].contains(&a.as_str()) {
                    return Err(err(format!(
                        "{}monitors.{name}.accel: {a:?} is not one of kvm, tcg, kvm-tcg",
                        at("accel")
                    )));
                }
            }
        }
        if let Some(l) = &cfg.log.level {
            if crate::log::Level::parse(l).is_none() {
                return Err(err(format!(
                    "{}log.level: {l:?} is not one of debug, info, warn, error",
                    key_line(text, "log.level")
                        .map(|l| format!("line {l}: "))
                        .unwrap_or_default()
                )));
            }
        }
        if crate::network::shared::parse_range(&cfg.network.shared_range).is_none() {
            return Err(err(format!(
                "{}network.shared_range: {:?} is not an IPv4 network with a prefix of \
                 at most 30 (like \"169.254.100.0/24\")",
                key_line(text, "network.shared_range")
                    .map(|l| format!("line {l}: "))
                    .unwrap_or_default(),
                cfg.network.shared_range
            )));
        }
        Ok(cfg)
    }

    /// `[monitors.<name>]`, with the settings that live elsewhere in the
    /// Go urunc's layout filled in (virtiofsd's path).
    /// A section may use a monitor's alias (`[monitors.cloud-hypervisor]`).
    pub fn monitor(&self, name: &str) -> MonitorConfig {
        let section = self.monitors.get(name).or_else(|| {
            self.monitors
                .iter()
                .find(|(k, _)| crate::monitor::canonical(k) == name)
                .map(|(_, m)| m)
        });
        let mut m = section.cloned().unwrap_or_default();
        let vfs = &self.extra_binaries.virtiofsd;
        if m.virtiofsd.is_none() {
            m.virtiofsd = vfs.path.clone();
        }
        if m.virtiofsd_options.is_empty() {
            let words = vfs.options.as_deref().unwrap_or("").split_whitespace();
            m.virtiofsd_options = words.map(String::from).collect();
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Go urunc's `/etc/urunc/config.toml` as its documentation and
    /// urunc-deploy write it (issue 12), verbatim.
    const GO_FILE: &str = r#"[runtime]
libcontainer = false

[log]
level = "info"
syslog = false

[timestamps]
enabled = false
destination = "/var/log/urunc/timestamps.log"

[monitors.qemu]
default_memory_mb = 512
default_vcpus = 2
path = "/usr/local/bin/qemu-system-x86_64"
data_path = "/usr/share/"

[monitors.firecracker]
default_memory_mb = 256
default_vcpus = 1

[monitors.hvt]
default_memory_mb = 256
default_vcpus = 1

[monitors.spt]
default_memory_mb = 48
default_vcpus = 1

[extra_binaries.virtiofsd]
path = "/usr/libexec/virtiofsd"
options = "--sandbox none"
"#;

    #[test]
    fn defaults_when_missing() {
        let l = Config::load_from(Path::new("/nonexistent/urunc.toml"));
        assert!(l.error.is_none() && l.warnings.is_empty());
        assert_eq!(l.config.default_memory_mib, 256);
        assert_eq!(l.config.delegate, "runc");
    }

    #[test]
    fn go_urunc_file_verbatim() {
        let mut w = Vec::new();
        let c = Config::parse_with_warnings(GO_FILE, Path::new("go.toml"), &mut w).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let q = c.monitor("qemu");
        assert_eq!(q.default_memory_mib, Some(512));
        assert_eq!(q.default_vcpus, Some(2));
        assert_eq!(
            q.path.as_deref(),
            Some(Path::new("/usr/local/bin/qemu-system-x86_64"))
        );
        assert_eq!(q.data_dir.as_deref(), Some(Path::new("/usr/share/")));
        assert_eq!(
            q.virtiofsd.as_deref(),
            Some(Path::new("/usr/libexec/virtiofsd"))
        );
        assert_eq!(c.monitor("spt").default_memory_mib, Some(48));
        assert_eq!(q.virtiofsd_options, ["--sandbox", "none"]);
        assert_eq!(c.log.level.as_deref(), Some("info"));
        assert!(!c.log.syslog && !c.runtime.libcontainer && !c.timestamps.enabled);
        assert_eq!(
            c.timestamps.destination,
            Path::new("/var/log/urunc/timestamps.log")
        );
        // Ours stay at their defaults.
        assert_eq!((c.delegate.as_str(), c.seccomp), ("runc", true));
    }

    #[test]
    fn ours_and_go_keys_together() {
        let text = "delegate = \"crun\"\ndefault_memory_mib = 128\nseccomp = false\ndns_fallback = \"1.1.1.1\"\nvcpus = 3\n\
                    [monitors.qemu]\naccel = \"tcg\"\nmachine = \"microvm\"\ncpu = \"max\"\noverhead_mib = 64\n\
                    shared_fs = \"virtiofs\"\nvirtiofsd = \"/opt/virtiofsd\"\nvhost = false\ndata_dir = \"/opt/qemu\"\n\
                    extra_guest_args = [\"tsc_early_khz=1000\"]\ndefault_memory_mb = 300\n\
                    [extra_binaries.virtiofsd]\npath = \"/usr/libexec/virtiofsd\"\n";
        let c = Config::parse(text, Path::new("x.toml")).unwrap();
        assert_eq!(
            (c.delegate.as_str(), c.default_memory_mib, c.seccomp),
            ("crun", 128, false)
        );
        assert_eq!(
            (c.dns_fallback, c.vcpus),
            (Ipv4Addr::new(1, 1, 1, 1), Some(3))
        );
        let q = c.monitor("qemu");
        assert_eq!(q.accel.as_deref(), Some("tcg"));
        assert_eq!(q.machine.as_deref(), Some("microvm"));
        assert_eq!(q.cpu.as_deref(), Some("max"));
        assert_eq!(q.overhead_mib, Some(64));
        assert_eq!(q.shared_fs.as_deref(), Some("virtiofs"));
        // The monitor's own virtiofsd wins over [extra_binaries].
        assert_eq!(q.virtiofsd.as_deref(), Some(Path::new("/opt/virtiofsd")));
        assert_eq!(q.vhost, Some(false));
        assert_eq!(q.data_dir.as_deref(), Some(Path::new("/opt/qemu")));
        assert_eq!(q.extra_guest_args, ["tsc_early_khz=1000"]);
        assert_eq!(q.default_memory_mib, Some(300));
        // A monitor's alias names its section too.
        let mut w = Vec::new();
        let text = "[monitors.cloud-hypervisor]\npath = \"/opt/clh\"\n";
        let c = Config::parse_with_warnings(text, Path::new("x.toml"), &mut w).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.monitor("clh").path.as_deref(),
            Some(Path::new("/opt/clh"))
        );
    }

    #[test]
    fn unknown_keys_are_warnings_with_their_line() {
        let text = "delegate = \"runc\"\nbogus = 1\n[monitors.qemu]\nvhostt = true\n[monitors.xen]\npath = \"/x\"\n[newsection]\na = 1\n";
        let mut w = Vec::new();
        let c = Config::parse_with_warnings(text, Path::new("c.toml"), &mut w).unwrap();
        assert_eq!(c.delegate, "runc");
        let all = w.join("\n");
        assert!(all.contains("c.toml: line 2: unknown key `bogus`"), "{all}");
        assert!(
            all.contains("line 4: unknown key `monitors.qemu.vhostt`"),
            "{all}"
        );
        assert!(
            all.contains("line 5: [monitors.xen]: not a known monitor"),
            "{all}"
        );
        assert!(all.contains("line 7: unknown key `newsection`"), "{all}");
        assert_eq!(w.len(), 3 + 1, "{all}");
    }

    #[test]
    fn bad_file_names_the_line() {
        let e = Config::parse(
            "delegate = \"runc\"\ndefault_vcpus = \"two\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("c.toml") && m.contains("line 2"), "{m}");
        let e = Config::parse("x = \n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e =
            Config::parse("[monitors.qemu]\naccel = \"xen\"\n", Path::new("c.toml")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("line 2: monitors.qemu.accel"), "{m}");
        let e = Config::parse("[log]\nlevel = \"loud\"\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("line 2: log.level"), "{e}");
    }

    #[test]
    fn bad_file_yields_defaults_and_the_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        std::fs::write(&p, "delegate = \"crun\"\n[monitors.qemu\n").unwrap();
        let l = Config::load_from(&p);
        let e = l.error.expect("a parse error").to_string();
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(l.config.delegate, "runc");
    }

    #[test]
    fn env_precedence() {
        // Both variables in one test: the process environment is shared.
        std::env::remove_var(ENV_PATH);
        std::env::set_var(ENV_PATH_GO, "/go/config.toml");
        assert_eq!(path_from_env(), Path::new("/go/config.toml"));
        std::env::set_var(ENV_PATH, "/ours/config.toml");
        assert_eq!(path_from_env(), Path::new("/ours/config.toml"));
        std::env::remove_var(ENV_PATH);
        std::env::remove_var(ENV_PATH_GO);
        assert_eq!(path_from_env(), Path::new(DEFAULT_PATH));
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

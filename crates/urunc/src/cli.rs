//! runc's command line: global flags and subcommands. Subcommand options
//! come from `liboci-cli` where its shapes match runc's; the rest are ours.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use urunc_core::lifecycle::Runtime;
use urunc_core::state;

#[derive(Parser, Debug)]
#[command(
    name = "urunc",
    version,
    about = "OCI runtime for unikernels (runc-compatible command line)"
)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd cgroup paths (`slice:prefix:name`).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// true, false or auto (default: rootless when not run as root): the
    /// monitor runs in a user namespace made by urunc, state under
    /// `$XDG_RUNTIME_DIR/urunc`.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true)]
    pub criu: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    Create(liboci_cli::Create),
    Start(liboci_cli::Start),
    State(liboci_cli::State),
    Kill(Kill),
    Delete(liboci_cli::Delete),
    Run(liboci_cli::Run),
    Ps(Ps),
    List(List),
    Features(liboci_cli::Features),
    Pause(liboci_cli::Pause),
    Resume(liboci_cli::Resume),
    Exec(Exec),
    Events(Events),
    Update(Update),
    Spec(Passthrough),
    Checkpoint(Passthrough),
    Restore(Passthrough),
}

/// runc's kill: the signal is optional (SIGTERM).
#[derive(Args, Debug)]
pub struct Kill {
    #[arg(short, long)]
    pub all: bool,
    pub container_id: String,
    pub signal: Option<String>,
}

#[derive(Args, Debug)]
pub struct Ps {
    #[arg(short, long)]
    pub format: Option<String>,
    pub container_id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct List {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    #[arg(short, long)]
    pub quiet: bool,
}

/// exec: only the container ID matters to us; everything else goes to the
/// delegate for its containers.
#[derive(Args, Debug)]
pub struct Exec {
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long, short)]
    pub detach: bool,
    #[arg(long, short)]
    pub tty: bool,
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<String>,
    #[arg(long, short)]
    pub user: Option<String>,
    pub container_id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Update {
    #[arg(long, short)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub cpu_quota: Option<String>,
    #[arg(long)]
    pub cpu_period: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<String>,
    pub container_id: String,
}

/// runc's events: `--interval` takes a duration (`5s`, `500ms`).
#[derive(Args, Debug)]
pub struct Events {
    #[arg(long, default_value = "5s")]
    pub interval: String,
    #[arg(long)]
    pub stats: bool,
    pub container_id: String,
}

/// `5s`, `500ms`, `1m`, or plain seconds.
pub fn parse_interval(s: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return None,
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Commands handed to the delegate as they are.
#[derive(Args, Debug)]
pub struct Passthrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `features` (OCI runtime features document).
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": [],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
        },
        "annotations": {
            "io.github.urunc.monitors": urunc_core::monitor::REGISTRY.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
            "io.github.urunc.frameworks": urunc_core::guest::names().join(","),
        },
    })
}

/// `list`: urunc's containers, then the delegate's.
pub fn list(rt: &Runtime, l: &List, raw: &[std::ffi::OsString]) -> Result<(), urunc_core::Error> {
    let mut rows: Vec<serde_json::Value> =
        state::list(&rt.root).iter().map(|s| s.oci_json()).collect();
    // The delegate's containers (same global flags, JSON format).
    let globals: Vec<&std::ffi::OsString> = raw
        .iter()
        .take_while(|a| a.to_str() != Some("list"))
        .collect();
    if let Ok(out) = std::process::Command::new(&rt.config.delegate)
        .args(globals)
        .args(["list", "--format", "json"])
        .stderr(std::process::Stdio::null())
        .output()
    {
        if let Ok(serde_json::Value::Array(theirs)) = serde_json::from_slice(&out.stdout) {
            rows.extend(theirs);
        }
    }
    if l.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or(""));
        }
    } else if l.format == "json" {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!(
            "{:<20} {:<8} {:<10} {:<40} CREATED",
            "ID", "PID", "STATUS", "BUNDLE"
        );
        for r in &rows {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {}",
                r["id"].as_str().unwrap_or(""),
                r["pid"],
                r["status"].as_str().unwrap_or(""),
                r["bundle"].as_str().unwrap_or(""),
                r["created"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn intervals() {
        assert_eq!(super::parse_interval("5s"), Some(Duration::from_secs(5)));
        assert_eq!(
            super::parse_interval("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(super::parse_interval("2"), Some(Duration::from_secs(2)));
        assert_eq!(super::parse_interval("1m"), Some(Duration::from_secs(60)));
        assert_eq!(super::parse_interval("0s"), None);
        assert_eq!(super::parse_interval("fast"), None);
    }
}

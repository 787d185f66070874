//! runc's command line: global flags and subcommands. Subcommand options
//! come from `liboci-cli` where its shapes match runc's; the rest are ours.

use clap::{Args, Command, FromArgMatches, Subcommand};
use std::path::PathBuf;
use urunc_core::lifecycle::Runtime;
use urunc_core::state;

/// The global flags (runc's), accepted before or after the subcommand.
#[derive(Args, Debug)]
pub struct Globals {
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
}

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    pub globals: Globals,
    pub cmd: Cmd,
}

impl std::ops::Deref for Cli {
    type Target = Globals;
    fn deref(&self) -> &Globals {
        &self.globals
    }
}

/// Builds one subcommand's arguments (see [`Cli::command`]).
type Build = fn(Command) -> Command;

/// The subcommands, in `Cmd`'s order: name, summary (for `--help`), and
/// the builder of their arguments.
const SUBCOMMANDS: &[(&str, &str, Build)] = &[
    (
        "create",
        "Create a container",
        liboci_cli::Create::augment_args,
    ),
    (
        "start",
        "Start a created container",
        liboci_cli::Start::augment_args,
    ),
    (
        "state",
        "Print the container's OCI state",
        liboci_cli::State::augment_args,
    ),
    (
        "kill",
        "Send a signal to the container (SIGTERM by default)",
        Kill::augment_args,
    ),
    (
        "delete",
        "Delete the container and everything it created",
        liboci_cli::Delete::augment_args,
    ),
    (
        "run",
        "Create and start a container, wait for it, delete it",
        liboci_cli::Run::augment_args,
    ),
    ("ps", "List the container's processes", Ps::augment_args),
    ("list", "List containers", List::augment_args),
    (
        "features",
        "Print the runtime's features document",
        liboci_cli::Features::augment_args,
    ),
    (
        "pause",
        "Pause the container",
        liboci_cli::Pause::augment_args,
    ),
    (
        "resume",
        "Resume a paused container",
        liboci_cli::Resume::augment_args,
    ),
    (
        "exec",
        "Run a process in a container (not possible in a unikernel)",
        Exec::augment_args,
    ),
    (
        "events",
        "Print the container's resource usage",
        Events::augment_args,
    ),
    (
        "update",
        "Update a container's resources (not for unikernels)",
        Update::augment_args,
    ),
    (
        "spec",
        "Handed to the delegate runtime",
        Passthrough::augment_args,
    ),
    (
        "checkpoint",
        "Handed to the delegate runtime",
        Passthrough::augment_args,
    ),
    (
        "restore",
        "Handed to the delegate runtime",
        Passthrough::augment_args,
    ),
];

impl Cli {
    /// The command line's definition. Each subcommand's arguments are
    /// built only when that subcommand is the one given (clap's `defer`):
    /// building all seventeen, as the derived parser does, took about a
    /// tenth of a `urunc run`'s own CPU time (perf), on every command.
    pub fn command() -> Command {
        // (about after augment_args, which sets Globals' own doc comment)
        let cmd = Globals::augment_args(Command::new("urunc"))
            .version(env!("CARGO_PKG_VERSION"))
            .about("OCI runtime for unikernels (runc-compatible command line)")
            .long_about(None)
            .subcommand_required(true)
            .arg_required_else_help(true);
        SUBCOMMANDS.iter().fold(cmd, |c, (name, about, build)| {
            c.subcommand(Command::new(*name).about(*about).defer(*build))
        })
    }

    pub fn try_parse_from(raw: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
        let mut m = Cli::command().try_get_matches_from(raw)?;
        Ok(Cli {
            globals: Globals::from_arg_matches_mut(&mut m)?,
            cmd: Cmd::from_arg_matches_mut(&mut m)?,
        })
    }
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

    fn parse(args: &[&str]) -> Result<super::Cli, clap::Error> {
        let raw: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        super::Cli::try_parse_from(&raw)
    }

    #[test]
    fn subcommands_and_globals_parse() {
        let c = parse(&[
            "urunc", "--root", "/r", "run", "--bundle", "/b", "--log", "/l", "id",
        ])
        .unwrap();
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/r")));
        // A global flag after the subcommand counts too.
        assert_eq!(c.log.as_deref(), Some(std::path::Path::new("/l")));
        match c.cmd {
            super::Cmd::Run(r) => {
                assert_eq!(r.container_id, "id");
                assert_eq!(r.bundle, std::path::PathBuf::from("/b"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let c = parse(&["urunc", "kill", "--all", "x", "KILL"]).unwrap();
        assert!(
            matches!(c.cmd, super::Cmd::Kill(k) if k.all && k.signal.as_deref() == Some("KILL"))
        );
        let c = parse(&["urunc", "--rootless=false", "delete", "--force", "x"]).unwrap();
        assert_eq!(c.rootless.as_deref(), Some("false"));
        assert!(matches!(c.cmd, super::Cmd::Delete(d) if d.force && d.container_id == "x"));
    }

    #[test]
    fn unknown_commands_and_flags_are_errors() {
        // (main hands these to the delegate)
        assert!(parse(&["urunc", "frobnicate", "x"]).is_err());
        assert!(parse(&["urunc", "start", "--no-such-flag", "x"]).is_err());
        assert!(parse(&["urunc", "start"]).is_err());
        assert!(parse(&["urunc"]).is_err());
    }

    #[test]
    fn every_subcommand_is_defined_and_consistent() {
        // Each deferred subcommand, built as clap builds it when used.
        super::Cli::command().debug_assert();
        use clap::Subcommand;
        let names: Vec<&str> = super::SUBCOMMANDS.iter().map(|(n, _, _)| *n).collect();
        for n in &names {
            assert!(super::Cmd::has_subcommand(n), "{n} is not a Cmd variant");
        }
        assert_eq!(
            names.len(),
            super::Cmd::augment_subcommands(clap::Command::new("x"))
                .get_subcommands()
                .count()
        );
    }

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

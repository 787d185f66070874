//! `urunc`: runc's command line for unikernel containers. Everything that is
//! not a unikernel container, and every command urunc does not implement,
//! is handed to the delegate runtime (`runc`) with the same arguments.
//!
//! The process starts at the C `main` below rather than std's wrapper (see
//! [`entry`]): urunc is started once per lifecycle command.

#![cfg_attr(not(test), no_main)]

mod cli;
mod delegate;
mod entry;
mod run;

use cli::{Cli, Cmd};
use entry::ExitCode;
use urunc_core::config::Config;
use urunc_core::lifecycle::{self, Outcome, Runtime};
use urunc_core::{log, Error};

/// The process's entry point, called by the C library's start-up code:
/// std's [`entry::prepare`] steps, urunc, then [`std::process::exit`]
/// (which flushes stdout, as returning from std's `main` does).
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    entry::prepare();
    std::process::exit(i32::from(urunc_main().0))
}

#[cfg_attr(test, allow(dead_code))]
fn urunc_main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&raw) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // A command or flag we do not know: the delegate may.
            return delegate::exec(&Config::load().config.delegate, &raw[1..]);
        }
    };
    log::init(cli.log.clone(), cli.log_format.as_deref(), cli.debug);
    // A bad config file never stops a command: it is logged, the defaults
    // apply, and only `create` of a unikernel fails with it.
    let loaded = Config::load();
    log::configure(loaded.config.log.level.as_deref(), loaded.config.log.syslog);
    for w in &loaded.warnings {
        log::warn(w);
    }
    if let Some(e) = &loaded.error {
        log::warn(&format!(
            "{e}; using the built-in defaults (containers that are not unikernels are delegated as usual, unikernel containers fail until the file is fixed)"
        ));
    }
    // runc's --rootless: true, false, or auto (unset): rootless when not root.
    let rootless = match cli.rootless.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => !nix::unistd::geteuid().is_root(),
    };
    // Rootless state lives under $XDG_RUNTIME_DIR, as runc's does.
    let default_root = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if rootless && !x.is_empty() => std::path::PathBuf::from(x).join("urunc"),
        _ => "/run/urunc".into(),
    };
    let rt = Runtime {
        root: cli.root.clone().unwrap_or(default_root),
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
        config: loaded.config,
        config_error: loaded.error,
    };
    match dispatch(&rt, &cli, &raw) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    log::error(&e.to_string());
    ExitCode::FAILURE
}

/// The container ID a command is about, if any.
fn target(cmd: &Cmd) -> Option<&str> {
    Some(match cmd {
        Cmd::Start(c) => &c.container_id,
        Cmd::State(c) => &c.container_id,
        Cmd::Kill(c) => &c.container_id,
        Cmd::Delete(c) => &c.container_id,
        Cmd::Ps(c) => &c.container_id,
        Cmd::Pause(c) => &c.container_id,
        Cmd::Resume(c) => &c.container_id,
        Cmd::Exec(c) => &c.container_id,
        Cmd::Events(c) => &c.container_id,
        Cmd::Update(c) => &c.container_id,
        _ => return None,
    })
}

fn dispatch(rt: &Runtime, cli: &Cli, raw: &[std::ffi::OsString]) -> Result<ExitCode, Error> {
    let delegate = || delegate::exec(&rt.config.delegate, &raw[1..]);
    if let Some(id) = target(&cli.cmd) {
        if !rt.owns(id) {
            return Ok(delegate());
        }
    }
    match &cli.cmd {
        Cmd::Create(c) => {
            let opts = lifecycle::CreateOpts {
                id: c.container_id.clone(),
                bundle: c.bundle.clone(),
                pid_file: c.pid_file.clone(),
                console_socket: c.console_socket.clone(),
                preserve_fds: c.preserve_fds.max(0) as u32,
            };
            match lifecycle::create(rt, &opts)? {
                Outcome::Created(_) => Ok(ExitCode::SUCCESS),
                Outcome::NotUnikernel => Ok(delegate()),
            }
        }
        Cmd::Run(r) => run::run(rt, r, delegate),
        Cmd::Start(c) => lifecycle::start(rt, &c.container_id).map(|_| ExitCode::SUCCESS),
        Cmd::State(c) => {
            let v = lifecycle::state(rt, &c.container_id)?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kill(k) => {
            let sig = lifecycle::parse_signal(k.signal.as_deref().unwrap_or("SIGTERM"))?;
            lifecycle::kill(rt, &k.container_id, sig, k.all).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Delete(d) => lifecycle::delete(rt, &d.container_id, d.force).map(|_| ExitCode::SUCCESS),
        Cmd::Ps(p) => {
            let pids = lifecycle::ps(rt, &p.container_id)?;
            if p.format.as_deref() == Some("json") {
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            } else {
                println!("PID\tCMD");
                for pid in pids {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    println!("{pid}\t{}", comm.trim());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pause(p) => lifecycle::pause(rt, &p.container_id).map(|_| ExitCode::SUCCESS),
        Cmd::Resume(p) => lifecycle::resume(rt, &p.container_id).map(|_| ExitCode::SUCCESS),
        Cmd::Exec(e) => Err(Error::msg(format!(
            "container {} is a unikernel: exec is not possible (a unikernel has no processes to exec into)",
            e.container_id
        ))),
Cmd::Events(e) => {
            let interval = cli::parse_interval(&e.interval)
                .ok_or_else(|| Error::msg(format!("--interval {:?}: not a duration such as 5s or 500ms", e.interval)))?;
            let mut printed = false;
            loop {
                match lifecycle::stats(rt, &e.container_id) {
                    Ok(v) => println!("{v}"),
                    // Streaming ends when the container stops.
                    Err(_) if printed => return Ok(ExitCode::SUCCESS),
                    Err(err) => return Err(err),
                }
                printed = true;
                if e.stats {
                    return Ok(ExitCode::SUCCESS);
                }
                std::thread::sleep(interval);
            }
        }

        Cmd::Update(u) => Err(Error::msg(format!(
            "container {}: update is not supported for unikernel containers (guest memory and vCPUs are fixed at boot)",
            u.container_id
        ))),
        Cmd::List(l) => cli::list(rt, l, &raw[1..]).map(|_| ExitCode::SUCCESS),
        Cmd::Features(_) => {
            println!("{}", serde_json::to_string_pretty(&cli::features()).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Spec(_) | Cmd::Checkpoint(_) | Cmd::Restore(_) => Ok(delegate()),
    }
}

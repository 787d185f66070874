//! Driving the OCI runtime CLI (`urunc`, or `runc` during development).
//!
//! The shim is a child subreaper and the containerd-shim crate reaps every
//! child in its SIGCHLD handler, so `std::process::Child::wait` cannot be
//! used: the exit status is taken from the crate's exit monitor instead
//! (subscribed to before the child is spawned, so no exit is missed).

use std::{
    ffi::OsString,
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use containerd_shim::monitor::{monitor_subscribe, wait_pid, Topic};

/// Environment variable naming the runtime binary (name in PATH or path).
pub const RUNTIME_ENV: &str = "URUNC_SHIM_RUNTIME";
/// Runtime used when neither shim options nor the environment name one.
pub const DEFAULT_RUNTIME: &str = "urunc";
/// Parent of the runtime's `--root`; the containerd namespace is appended.
pub const DEFAULT_ROOT: &str = "/run/containerd/urunc";

/// One OCI runtime CLI, bound to a state root and a log file.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Binary as configured (name or path).
    pub binary: String,
    /// `--root` directory.
    pub root: PathBuf,
    /// `--log` file (JSON lines).
    pub log: PathBuf,
}

/// What a finished runtime command left behind.
pub struct Output {
    pub stdout: Vec<u8>,
}

/// Stdio for the runtime process; `None` means `/dev/null`.
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

impl Runtime {
    pub fn new(binary: &str, root: PathBuf, bundle: &Path) -> Runtime {
        Runtime {
            binary: binary.to_string(),
            root,
            log: bundle.join("log.json"),
        }
    }

    fn base_args(&self) -> Vec<OsString> {
        vec![
            "--root".into(),
            self.root.clone().into_os_string(),
            "--log".into(),
            self.log.clone().into_os_string(),
            "--log-format".into(),
            "json".into(),
        ]
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), String> {
        let mut args: Vec<OsString> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.as_os_str().into(),
            "--pid-file".into(),
            pid_file.as_os_str().into(),
        ];
        if let Some(sock) = console_socket {
            args.push("--console-socket".into());
            args.push(sock.as_os_str().into());
        }
        args.push(id.into());
        self.run(args, stdio, false).map(drop)
    }

    /// `exec --process P --pid-file F --detach [--console-socket S] ID`
    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), String> {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--process".into(),
            process.as_os_str().into(),
            "--pid-file".into(),
            pid_file.as_os_str().into(),
            "--detach".into(),
        ];
        if let Some(sock) = console_socket {
            args.push("--console-socket".into());
            args.push(sock.as_os_str().into());
        }
        args.push(id.into());
        self.run(args, stdio, false).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<(), String> {
        self.simple(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), String> {
        let sig = signal.to_string();
        if all {
            self.simple(&["kill", "--all", id, &sig])
        } else {
            self.simple(&["kill", id, &sig])
        }
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<(), String> {
        if force {
            self.simple(&["delete", "--force", id])
        } else {
            self.simple(&["delete", id])
        }
    }

    pub fn pause(&self, id: &str) -> Result<(), String> {
        self.simple(&["pause", id])
    }

    pub fn resume(&self, id: &str) -> Result<(), String> {
        self.simple(&["resume", id])
    }

    /// `ps --format json ID`: the container's host PIDs.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>, String> {
        let out = self.run(
            vec!["ps".into(), "--format".into(), "json".into(), id.into()],
            ChildStdio::default(),
            true,
        )?;
        parse_ps(&out.stdout).map_err(|e| format!("{} ps {id}: {e}", self.binary))
    }

    fn simple(&self, args: &[&str]) -> Result<(), String> {
        let args = args.iter().map(OsString::from).collect();
        self.run(args, ChildStdio::default(), false).map(drop)
    }

    /// Run one runtime command and wait for it. On failure the error is the
    /// last `"level":"error"` message the runtime logged during this call,
    /// else its stderr, else its exit status.
    fn run(
        &self,
        args: Vec<OsString>,
        stdio: ChildStdio,
        capture_stdout: bool,
    ) -> Result<Output, String> {
        let binary = resolve_binary(&self.binary)?;
        let log_offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let verb = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();

        let mut cmd = Command::new(&binary);
        cmd.args(self.base_args()).args(&args);
        cmd.stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from));
        match (capture_stdout, stdio.stdout) {
            (true, _) => cmd.stdout(Stdio::piped()),
            (false, Some(f)) => cmd.stdout(Stdio::from(f)),
            (false, None) => cmd.stdout(Stdio::null()),
        };
        // Our own pipe for stderr when the caller gives none, so that a
        // runtime that fails without logging JSON still explains itself.
        let own_stderr = stdio.stderr.is_none();
        match stdio.stderr {
            Some(f) => cmd.stderr(Stdio::from(f)),
            None => cmd.stderr(Stdio::piped()),
        };

        // Subscribe before spawning: the reaper may collect the child at once.
        let sub = monitor_subscribe(Topic::Pid)
            .map_err(|e| format!("{} {verb}: cannot watch for its exit: {e}", self.binary))?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {} {verb}: {e}", binary.display()))?;
        // Dropping `cmd` closes the parent's copies of the stdio files.
        drop(cmd);
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        }
        let mut stderr = Vec::new();
        if own_stderr {
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_end(&mut stderr);
            }
        }
        let code = wait_pid(child.id() as i32, sub);
        if code == 0 {
            return Ok(Output { stdout });
        }
        let msg = last_error_since(&self.log, log_offset)
            .or_else(|| {
                let s = String::from_utf8_lossy(&stderr).trim().to_string();
                (!s.is_empty()).then_some(s)
            })
            .unwrap_or_else(|| format!("exit status {code}"));
        Err(format!("OCI runtime {verb} failed: {msg}"))
    }
}

/// Find the runtime binary: a path is taken as is, a bare name is looked up
/// in `PATH`. Checked before spawning so that a missing binary is a clear
/// error rather than a failed exec.
pub fn resolve_binary(name: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("runtime binary name is empty".to_string());
    }
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "runtime binary {name} does not exist or is not executable"
            ))
        };
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "runtime binary {name} not found in PATH ({})",
        path.to_string_lossy()
    ))
}

/// The `msg` of the last `"level":"error"` JSON line written to `log` after
/// byte `offset`.
pub fn last_error_since(log: &Path, offset: u64) -> Option<String> {
    let mut f = File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    // A log that shrank was rewritten: read it whole.
    let start = if offset <= len { offset } else { 0 };
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    last_error_msg(&String::from_utf8_lossy(&buf))
}

/// The `msg` of the last line whose `level` is `error` (or `fatal`/`panic`).
pub fn last_error_msg(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        let level = v.get("level")?.as_str()?;
        if !matches!(level, "error" | "fatal" | "panic") {
            return None;
        }
        let msg = v.get("msg")?;
        Some(match msg.as_str() {
            Some(s) => s.to_string(),
            None => msg.to_string(),
        })
    })
}

/// Parse `ps --format json` output: a JSON array of PIDs (`null` = none).
pub fn parse_ps(out: &[u8]) -> Result<Vec<u32>, String> {
    let text = String::from_utf8_lossy(out);
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("output is not JSON ({e}): {text:.200}"))?;
    let arr = v
        .as_array()
        .ok_or_else(|| format!("output is not a JSON array: {text:.200}"))?;
    arr.iter()
        .map(|p| {
            p.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{p} is not a PID"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_the_last_error_line() {
        let log = r#"{"level":"info","msg":"starting","time":"x"}
{"level":"error","msg":"first failure","time":"x"}
{"level":"warning","msg":"later warning"}
{"level":"error","msg":"container_linux.go: starting container process caused: exec: \"nope\": executable file not found in $PATH"}
{"level":"info","msg":"after"}
"#;
        assert_eq!(
            last_error_msg(log).as_deref(),
            Some("container_linux.go: starting container process caused: exec: \"nope\": executable file not found in $PATH")
        );
    }

    #[test]
    fn last_error_ignores_garbage_and_non_errors() {
        assert_eq!(
            last_error_msg("not json\n{\"level\":\"info\",\"msg\":\"x\"}\n"),
            None
        );
        assert_eq!(last_error_msg(""), None);
        assert_eq!(
            last_error_msg("{\"level\":\"fatal\",\"msg\":\"boom\"}\ngarbage\n").as_deref(),
            Some("boom")
        );
    }

    #[test]
    fn last_error_since_reads_only_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        std::fs::write(&log, "{\"level\":\"error\",\"msg\":\"old\"}\n").unwrap();
        let off = std::fs::metadata(&log).unwrap().len();
        assert_eq!(last_error_since(&log, off), None);
        let mut content = std::fs::read_to_string(&log).unwrap();
        content.push_str("{\"level\":\"error\",\"msg\":\"new\"}\n");
        std::fs::write(&log, content).unwrap();
        assert_eq!(last_error_since(&log, off).as_deref(), Some("new"));
        assert_eq!(last_error_since(&dir.path().join("absent"), 0), None);
    }

    #[test]
    fn ps_output_parses() {
        assert_eq!(parse_ps(b"[12,34]\n").unwrap(), vec![12, 34]);
        assert_eq!(parse_ps(b"null\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_ps(b"").unwrap(), Vec::<u32>::new());
        assert!(parse_ps(b"{\"a\":1}")
            .unwrap_err()
            .contains("not a JSON array"));
        assert!(parse_ps(b"[-1]").unwrap_err().contains("not a PID"));
        assert!(parse_ps(b"oops").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn resolve_binary_finds_and_rejects() {
        assert!(resolve_binary("").unwrap_err().contains("empty"));
        let e = resolve_binary("/nonexistent/urunc").unwrap_err();
        assert!(e.contains("/nonexistent/urunc"), "{e}");
        let e = resolve_binary("definitely-not-a-runtime-xyz").unwrap_err();
        assert!(e.contains("not found in PATH"), "{e}");
        // `sh` exists on any host that can run these tests.
        assert!(resolve_binary("sh").unwrap().is_absolute());
    }
}

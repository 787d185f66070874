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
    os::{fd::FromRawFd, unix::fs::PermissionsExt},
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

    /// `update --resources FILE ID` (FILE: OCI `LinuxResources` JSON).
    pub fn update(&self, id: &str, resources: &Path) -> Result<(), String> {
        let args = vec![
            "update".into(),
            "--resources".into(),
            resources.as_os_str().into(),
            id.into(),
        ];
        self.run(args, ChildStdio::default(), false).map(drop)
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

        // Output is captured in memory files, not pipes, and read after the
        // command exited: a helper the runtime leaves running with an
        // inherited descriptor cannot make the shim wait for EOF.
        let out_capture = if capture_stdout {
            Some(memfile()?)
        } else {
            None
        };
        let err_capture = if stdio.stderr.is_none() {
            Some(memfile()?)
        } else {
            None
        };
        let dup = |f: &File| {
            f.try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("{} {verb}: dup capture file: {e}", self.binary))
        };
        let mut cmd = Command::new(&binary);
        cmd.args(self.base_args()).args(&args);
        cmd.stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from));
        match (&out_capture, stdio.stdout) {
            (Some(f), _) => cmd.stdout(dup(f)?),
            (None, Some(f)) => cmd.stdout(Stdio::from(f)),
            (None, None) => cmd.stdout(Stdio::null()),
        };
        match (&err_capture, stdio.stderr) {
            (Some(f), _) => cmd.stderr(dup(f)?),
            (None, Some(f)) => cmd.stderr(Stdio::from(f)),
            (None, None) => cmd.stderr(Stdio::null()),
        };

        // Subscribe before spawning: the reaper may collect the child at once.
        let sub = monitor_subscribe(Topic::Pid)
            .map_err(|e| format!("{} {verb}: cannot watch for its exit: {e}", self.binary))?;
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {} {verb}: {e}", binary.display()))?;
        // Dropping `cmd` closes the parent's copies of the stdio files.
        drop(cmd);
        let code = wait_pid(child.id() as i32, sub);
        let stdout = out_capture.map(read_capture).unwrap_or_default();
        let stderr = err_capture.map(read_capture).unwrap_or_default();
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

/// Most of a command's output kept for errors and `ps`.
const CAPTURE_MAX: u64 = 1 << 20;

/// An anonymous in-memory file.
fn memfile() -> Result<File, String> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns
    // a new descriptor or -1, checked below.
    let fd = unsafe { libc::memfd_create(c"urunc-shim-capture".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn read_capture(mut f: File) -> Vec<u8> {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(CAPTURE_MAX).read_to_end(&mut buf);
    }
    buf
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

    /// In the shim the crate's SIGCHLD handler reaps children and reports
    /// their exits; unit tests have no such handler, so they get this one.
    fn test_reaper() {
        static START: std::sync::Once = std::sync::Once::new();
        START.call_once(|| {
            std::thread::spawn(|| loop {
                use nix::sys::wait::{waitpid, WaitStatus};
                match waitpid(None, None) {
                    Ok(WaitStatus::Exited(pid, code)) => {
                        let _ = containerd_shim::monitor::monitor_notify_by_pid(pid.as_raw(), code);
                    }
                    Ok(WaitStatus::Signaled(pid, sig, _)) => {
                        let _ = containerd_shim::monitor::monitor_notify_by_pid(
                            pid.as_raw(),
                            128 + sig as i32,
                        );
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            });
        });
    }

    /// A stand-in runtime. One dispatcher script, written once, sources
    /// `<root>/body.sh` with `log` and `verb` set (argument 7, after the
    /// four global flags and their values). Bodies are sourced, never
    /// executed: writing an executable while another test thread forks can
    /// make its exec fail with ETXTBSY.
    fn fake_runtime(dir: &Path, body: &str) -> Runtime {
        static DISPATCHER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let script = DISPATCHER.get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            // Next to the test executable (in target/), so nothing is
            // left in /tmp; rewritten only when its content changes.
            let exe = std::env::current_exe().unwrap();
            let p = exe.with_file_name("urunc-shim-fake-runtime");
            let text = "#!/bin/sh\nlog=\"$4\"\nverb=\"$7\"\n. \"$2/body.sh\"\n";
            if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
                std::fs::write(&p, text).unwrap();
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        });
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("body.sh"), body).unwrap();
        Runtime::new(script.to_str().unwrap(), root, dir)
    }

    #[test]
    fn run_takes_the_error_from_the_json_log() {
        test_reaper();
        let dir = tempfile::tempdir().unwrap();
        let rt = fake_runtime(
            dir.path(),
            r#"echo '{"level":"info","msg":"starting"}' >>"$log"
echo '{"level":"error","msg":"container x: no such kernel /unikernel/k"}' >>"$log"
echo 'plain stderr' >&2
exit 1"#,
        );
        let e = rt.start("x").unwrap_err();
        assert_eq!(
            e,
            "OCI runtime start failed: container x: no such kernel /unikernel/k"
        );
    }

    #[test]
    fn run_falls_back_to_stderr_then_status() {
        test_reaper();
        let dir = tempfile::tempdir().unwrap();
        let rt = fake_runtime(dir.path(), "echo \"bad $verb\" >&2; exit 3");
        assert_eq!(
            rt.kill("x", 9, false).unwrap_err(),
            "OCI runtime kill failed: bad kill"
        );
        let rt = fake_runtime(dir.path(), "exit 4");
        assert_eq!(
            rt.pause("x").unwrap_err(),
            "OCI runtime pause failed: exit status 4"
        );
    }

    #[test]
    fn run_captures_ps_output() {
        test_reaper();
        let dir = tempfile::tempdir().unwrap();
        let rt = fake_runtime(dir.path(), "[ \"$verb\" = ps ] && echo '[42,43]'");
        assert_eq!(rt.ps("x").unwrap(), vec![42, 43]);
    }

    #[test]
    fn run_does_not_wait_for_helpers_holding_its_output() {
        test_reaper();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("helper.pid");
        let rt = fake_runtime(
            dir.path(),
            &format!(
                "sleep 1000 & echo $! > {}; echo failed >&2; exit 1",
                pidfile.display()
            ),
        );
        let e = rt.resume("x").unwrap_err();
        assert_eq!(e, "OCI runtime resume failed: failed");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The helper still holds the runtime's stderr and is alive: `run`
        // returned without waiting for it.
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(alive, "run waited for the helper to exit");
    }

    #[test]
    fn update_passes_the_resources_file() {
        test_reaper();
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let rt = fake_runtime(
            dir.path(),
            &format!(
                "echo \"$7 $8 ${{10}}\" > {}; cat \"$9\" >> {}",
                seen.display(),
                seen.display()
            ),
        );
        let res = dir.path().join("res.json");
        std::fs::write(&res, r#"{"memory":{"limit":1}}"#).unwrap();
        rt.update("c9", &res).unwrap();
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            "update --resources c9\n{\"memory\":{\"limit\":1}}"
        );
    }

    #[test]
    fn memfile_round_trip() {
        use std::io::Write;
        let mut f = memfile().unwrap();
        f.write_all(b"captured").unwrap();
        assert_eq!(read_capture(f), b"captured");
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

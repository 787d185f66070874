//! runc-compatible logging: with `--log FILE --log-format json`, one JSON
//! object per line with `level`, `msg` and `time` (containerd's runc shim
//! shows the last `"level":"error"` line to the user). Errors also go to
//! stderr. Written directly: no subscriber machinery on the hot path.
//! The config file's `[log] level` sets the least level written, `[log]
//! syslog` copies lines to the system log ([`configure`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The config file's spelling (the Go urunc's logrus names).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Level::Debug,
            "info" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "fatal" | "panic" => Level::Error,
            _ => return None,
        })
    }

    /// syslog(3) severity.
    fn severity(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Warn => 4,
            Level::Error => 3,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
struct Sink {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();
/// Least level written (config `[log] level`); `Info` unless configured.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static SYSLOG: AtomicBool = AtomicBool::new(false);

/// The system log socket (syslog(3)'s `_PATH_LOG`).
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Applies the config file's `[log]` section (after [`init`]): `level`
/// (ignored when `--debug` is given) and `syslog`.
pub fn configure(level: Option<&str>, syslog: bool) {
    if let Some(l) = level.and_then(Level::parse) {
        MIN_LEVEL.store(l as u8, Ordering::Relaxed);
    }
    SYSLOG.store(syslog, Ordering::Relaxed);
}

/// One datagram in the BSD syslog format that `/dev/log` readers
/// (rsyslog, journald) accept: `<PRI>TAG[PID]: MSG`, facility daemon (3),
/// RFC 3164 §4.1.
pub fn syslog_line(level: Level, msg: &str) -> String {
    let pri = 3 * 8 + level.severity();
    format!("<{pri}>urunc[{}]: {msg}", std::process::id())
}

fn to_syslog(level: Level, msg: &str) {
    if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = s.send_to(syslog_line(level, msg).as_bytes(), SYSLOG_SOCKET);
    }
}

/// Sets the log destination once, from the global flags.
pub fn init(file: Option<PathBuf>, format: Option<&str>, debug: bool) {
    let _ = SINK.set(Sink {
        file,
        json: format == Some("json"),
        debug,
    });
}

/// RFC 3339 UTC time with nanoseconds, without a date library.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

pub fn log(level: Level, msg: &str) {
    let sink = SINK.get_or_init(Sink::default);
    let min = if sink.debug {
        Level::Debug as u8
    } else {
        MIN_LEVEL.load(Ordering::Relaxed)
    };
    // Errors are always written: they are the command's answer.
    if (level as u8) < min && level != Level::Error {
        return;
    }
    if SYSLOG.load(Ordering::Relaxed) {
        to_syslog(level, msg);
    }
    if let Some(path) = &sink.file {
        let line = if sink.json {
            serde_json::json!({"level": level.as_str(), "msg": msg, "time": rfc3339_now()})
                .to_string()
        } else {
            format!(
                "time=\"{}\" level={} msg={:?}",
                rfc3339_now(),
                level.as_str(),
                msg
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    if level == Level::Error
        || (sink.file.is_none() && level >= Level::Warn)
        || (sink.file.is_none() && sink.debug)
    {
        let _ = writeln!(
            std::io::stderr(),
            "urunc: {}{msg}",
            if level == Level::Error {
                String::new()
            } else {
                format!("{}: ", level.as_str())
            }
        );
    }
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_syslog_format() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("info"), Some(Level::Info));
        assert_eq!(Level::parse("loud"), None);
        let l = syslog_line(Level::Warn, "x y");
        assert_eq!(l, format!("<28>urunc[{}]: x y", std::process::id()));
    }

    #[test]
    fn time_format() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}

//! runc-compatible logging: with `--log FILE --log-format json`, one JSON
//! object per line with `level`, `msg` and `time` (containerd's runc shim
//! shows the last `"level":"error"` line to the user). Errors also go to
//! stderr. Written directly: no subscriber machinery on the hot path.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
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
    if level == Level::Debug && !sink.debug {
        return;
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
                ""
            } else {
                level.as_str()
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
    #[test]
    fn time_format() {
        let t = super::rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}

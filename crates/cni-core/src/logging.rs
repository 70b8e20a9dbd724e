//! A small `log` backend: stderr by default (never stdout), or an appended
//! file created 0600, opened without following symlinks (see
//! [`open_log_file`]). Its settings never fail a command (see [`init`]).
//!
//! Lines read `2026-11-22T07:00:00Z sbr[1234] WARN message`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::nofollow::{self, OpenError};

struct Sink {
    plugin: String,
    file: Option<File>,
}

struct Logger {
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl Logger {
    /// One line to the file, else stderr. A line that cannot be written
    /// must not fail the plugin.
    fn write(&self, level: Level, args: &std::fmt::Arguments<'_>) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let line = format!(
            "{} {}[{}] {} {}\n",
            timestamp(SystemTime::now()),
            sink.plugin,
            std::process::id(),
            level,
            args
        );
        let _ = match sink.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            self.write(record.level(), record.args());
        }
    }

    fn flush(&self) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = sink.file.as_mut() {
            let _ = f.flush();
        }
    }
}

/// The level used when the config names none, or one we do not know.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::Warn;

/// `error|warn|info|debug` (any case, also `warning`); unset or empty is
/// [`DEFAULT_LEVEL`]. Anything else is `Err` with the warning to give.
pub fn parse_level(level: Option<&str>) -> Result<LevelFilter, String> {
    let Some(level) = level.filter(|l| !l.is_empty()) else {
        return Ok(DEFAULT_LEVEL);
    };
    match level.to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        _ => Err(format!(
            "unknown logLevel {level:?}: want error, warn, info or debug; logging at {}",
            DEFAULT_LEVEL.as_str().to_ascii_lowercase()
        )),
    }
}

/// Opens `path` for appending, created 0600. The path is the config's, and
/// a plugin runs as root: no component may be a symlink, the file must be a
/// regular file with one link, and the open never waits (a FIFO without a
/// reader would hang the plugin). `Err` says why not, naming the path.
pub fn open_log_file(path: &Path) -> Result<File, String> {
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT;
    match nofollow::open_regular(path, flags, Mode::from_bits_truncate(0o600)) {
        Ok(fd) => Ok(File::from(fd)),
        Err(OpenError::Refused(why)) => Err(format!("refusing logFile {}: {why}", path.display())),
        Err(OpenError::Os(e)) => Err(format!(
            "failed to open logFile {}: {}",
            path.display(),
            crate::error::errno_text(e as i32)
        )),
    }
}

/// Installs the logger once; later calls change level, name and file.
///
/// Logging settings never fail a command: the reference plugins ignore
/// `logLevel` and `logFile`, and a log directory that is gone must not make
/// DEL fail forever. An unknown level is [`DEFAULT_LEVEL`]; a file that
/// cannot be used safely is not written at all, and logging goes to stderr.
/// Each such warning is logged whatever the level (the file's on stderr)
/// and returned.
pub fn init(plugin: &str, level: Option<&str>, file: Option<&Path>) -> Vec<String> {
    let mut warnings = Vec::new();
    let level = parse_level(level).unwrap_or_else(|w| {
        warnings.push(w);
        DEFAULT_LEVEL
    });
    let file = file.and_then(|p| {
        open_log_file(p)
            .map_err(|why| warnings.push(format!("{why}; logging to stderr")))
            .ok()
    });
    let mut fresh = false;
    let logger = LOGGER.get_or_init(|| {
        fresh = true;
        Logger {
            sink: Mutex::new(Sink {
                plugin: plugin.to_string(),
                file: None,
            }),
        }
    });
    {
        let mut sink = logger.sink.lock().unwrap_or_else(PoisonError::into_inner);
        sink.plugin = plugin.to_string();
        sink.file = file;
    }
    if fresh {
        // Fails only if another logger is installed already; then that one logs.
        let _ = log::set_logger(logger);
    }
    log::set_max_level(level);
    for w in &warnings {
        logger.write(Level::Warn, &format_args!("{w}"));
    }
    warnings
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_795_330_800)),
            "2026-11-22T07:00:00Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59Z"
        );
    }

    #[test]
    fn levels_parse_and_unknown_ones_warn() {
        assert_eq!(parse_level(None).unwrap(), LevelFilter::Warn);
        assert_eq!(parse_level(Some("")).unwrap(), LevelFilter::Warn);
        assert_eq!(parse_level(Some("DEBUG")).unwrap(), LevelFilter::Debug);
        assert_eq!(parse_level(Some("error")).unwrap(), LevelFilter::Error);
        let w = parse_level(Some("verbose")).unwrap_err();
        assert!(w.contains("\"verbose\"") && w.contains("logging at warn"), "{w}");
    }
}

//! Routes the `log` crate's records to OBS's log (`blog`), prefixed with
//! `[obs-psn-party]`, so our lines sit in the OBS log file beside OBS's own.

use std::ffi::CString;
use std::os::raw::c_int;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::sys;

struct ObsLogger;

static LOGGER: ObsLogger = ObsLogger;
static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the bridge (once per process). The level comes from the
/// `PSN_PARTY_LOG` environment variable (`debug`, `trace`; default `info`).
pub fn install() {
    INSTALLED.get_or_init(|| {
        let level = match std::env::var("PSN_PARTY_LOG").as_deref() {
            Ok("trace") => LevelFilter::Trace,
            Ok("debug") => LevelFilter::Debug,
            Ok("warn") => LevelFilter::Warn,
            _ => LevelFilter::Info,
        };
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    });
}

fn obs_level(level: Level) -> c_int {
    let level = match level {
        Level::Error => sys::LOG_ERROR,
        Level::Warn => sys::LOG_WARNING,
        Level::Info => sys::LOG_INFO,
        Level::Debug | Level::Trace => sys::LOG_DEBUG,
    };
    level as c_int
}

/// The text handed to blog: our prefix, the message with members' online ids masked
/// (src/psn/log_mask.rs), no interior NULs.
fn line(record: &Record) -> CString {
    let text = format!("[obs-psn-party] {}", record.args());
    let text = crate::psn::log_mask::mask_online_ids(&text).replace('\0', " ");
    CString::new(text).unwrap_or_default()
}

impl Log for ObsLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // Our own lines at the chosen level; the libraries' (WebRTC, HTTP)
        // only when they report an error, or the OBS log drowns in them.
        let ours = metadata.target().starts_with("obs_psn_party");
        metadata.level() <= log::max_level() && (ours || metadata.level() <= Level::Error)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = line(record);
        // SAFETY: a constant "%s" format and one NUL-terminated argument, so
        // no text of ours is ever read as a format string.
        unsafe { sys::blog(obs_level(record.level()), c"%s".as_ptr(), text.as_ptr()) };
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_and_nul_free() {
        let text = line(
            &Record::builder()
                .args(format_args!("a\0b %s"))
                .level(Level::Info)
                .build(),
        );
        assert_eq!(text.to_str().unwrap(), "[obs-psn-party] a b %s");
    }
}

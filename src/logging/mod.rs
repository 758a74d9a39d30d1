//! Tracing setup: text or JSON, level from config, adjusted by `-v`/`-q`.
//!
//! Nothing on the request path logs header values, so credentials cannot reach a log line.
//!
//! JSON lines (`log.format = "json"`) have stable field names, one object per line:
//! `timestamp` (RFC 3339), `level`, `target` (`waypost::access` for access lines), `fields`
//! (`message` and the event's own fields: access lines carry `request_id`, `client`,
//! `method`, `target`, `route`, `status`, `outcome`, `bytes_in`, `bytes_out`, `duration_ms`;
//! failure lines `request_id`, `route`, `code`, `error`), and `span` / `spans` (the
//! connection's `client`, the request's `method`, `uri` and `request_id`), so every line logged
//! while serving a request can be found by the id the client got in `X-Request-Id`.
//!
//! Lines go to stderr through [`sink`]: batched by a writer thread (at most 20 ms late;
//! warnings, errors and a terminal's lines at once), so an access line costs the serving thread
//! no system call. [`flush`] before exit; a panic flushes too.
//!
//! [`plain_text`] says whether the installed subscriber writes text lines, so that the access
//! line, written once per request, can be formatted in one pass as its message (the same text
//! as separate fields give) instead of field by field.

mod sink;

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

pub use sink::flush;

use crate::config::{LogConfig, LogFormat};

/// Set once the text subscriber is installed.
static PLAIN_TEXT: AtomicBool = AtomicBool::new(false);

/// The installed subscriber writes plain text lines (`log.format = "text"`): a line's fields
/// may be written into its message. False until [`init`], and with JSON (where fields are keys).
pub fn plain_text() -> bool {
    PLAIN_TEXT.load(Ordering::Relaxed)
}

/// Installs the global subscriber. `verbosity` > 0 raises the level, < 0 lowers it.
pub fn init(cfg: &LogConfig, verbosity: i8) {
    let level = match verbosity {
        v if v >= 2 => "trace".to_string(),
        1 => "debug".to_string(),
        -1 => "warn".to_string(),
        v if v <= -2 => "error".to_string(),
        _ => cfg.level.clone(),
    };
    let filter = EnvFilter::try_from_env("WAYPOST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink::Sink::get())
        // colours only for a person at a terminal: files and collectors get plain text
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.format {
        LogFormat::Json => {
            let _ = builder.json().try_init();
        }
        LogFormat::Text => {
            if builder.try_init().is_ok() {
                PLAIN_TEXT.store(true, Ordering::Relaxed);
            }
        }
    }
    // a panic's message (written straight to stderr) comes after the lines logged before it
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        previous(info);
    }));
}

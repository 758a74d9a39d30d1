//! Tracing setup: text or JSON, level from config, adjusted by `-v`/`-q`.
//!
//! Nothing on the request path logs header values, so credentials cannot reach a log line.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

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
        .with_writer(std::io::stderr)
        // colours only for a person at a terminal: files and collectors get plain text
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

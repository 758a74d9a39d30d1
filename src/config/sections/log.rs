//! `[log]`: the format and the level filter.

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::config::{LogConfig, LogFormat};
use crate::redact::value as shown;

/// `[log]`, each problem noted.
pub fn log(raw: &RawConfig, p: &mut Problems) -> LogConfig {
    let format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            p.add(
                "log.format",
                format!(
                    "unknown format {} (expected \"text\" or \"json\")",
                    shown("log.format", other)
                ),
            );
            LogFormat::Text
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        p.add(
            "log.level",
            format!(
                "invalid level {} (expected error, warn, info, debug, trace or a filter)",
                shown("log.level", &raw.log.level)
            ),
        );
    }

    LogConfig {
        level: raw.log.level.clone(),
        format,
        access_log: raw.log.access_log,
    }
}

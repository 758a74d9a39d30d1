//! The problems of one configuration, collected rather than stopping at the first (every bad
//! key is reported at once, each with its key path; file and line are added by the caller
//! that read the file), and the duration syntax every duration key shares.

use std::time::Duration;

use super::Problem;

/// Every problem found so far, each with its key path.
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    /// A duration that must be finite: None (and the problem noted) when it does not parse.
    pub(super) fn duration(&mut self, key: &str, v: &str) -> Option<Duration> {
        match parse_duration(v, false) {
            Ok(d) => d,
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }

    /// A duration that may be `"infinite"` (`Some(None)`); None when it does not parse.
    pub(super) fn duration_or_infinite(&mut self, key: &str, v: &str) -> Option<Option<Duration>> {
        match parse_duration(v, true) {
            Ok(d) => Some(d),
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }

    /// Notes a problem of `key`.
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            location: None,
        });
    }
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`; `"infinite"`/`"none"` give `None` when allowed.
pub fn parse_duration(s: &str, allow_infinite: bool) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if allow_infinite && (t.eq_ignore_ascii_case("infinite") || t.eq_ignore_ascii_case("none")) {
        return Ok(None);
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        format!(
            "invalid duration {s:?}: {e} (write e.g. \"30s\", \"5m\", \"250ms\"{})",
            if allow_infinite {
                " or \"infinite\""
            } else {
                ""
            }
        )
    })?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(Some(d))
}

//! How one evaluation is shown, the same in every command: as text, the script's answer or
//! `error (KIND): MESSAGE`; as JSON, one object per URL with the documented field order
//! (`url`, `host`, `result`, `proxies`, `error`, `duration_us`). A bad input line is shown as
//! an error of kind `input`. Rendering only.

use crate::{PacError, ProxyEntry};

/// What one evaluation produced: the script's answer (and its parsed entries), or why not.
pub(crate) type Shown<'a> = Result<(&'a str, &'a [ProxyEntry]), JsonError>;

/// One `--json` output line; field order is the documented order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    url: &'a str,
    host: &'a str,
    #[serde(flatten)]
    side: Side<'a>,
    duration_us: u128,
}

/// What a script made of one URL, as JSON: `result`, `proxies`, `error`.
#[derive(serde::Serialize)]
pub(crate) struct Side<'a> {
    result: Option<&'a str>,
    proxies: Vec<String>,
    error: Option<JsonError>,
}

impl<'a> From<Shown<'a>> for Side<'a> {
    fn from(shown: Shown<'a>) -> Side<'a> {
        match shown {
            Ok((raw, entries)) => Side {
                result: Some(raw),
                proxies: entries.iter().map(ToString::to_string).collect(),
                error: None,
            },
            Err(e) => Side {
                result: None,
                proxies: Vec::new(),
                error: Some(e),
            },
        }
    }
}

/// The `error` object of a JSON line.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct JsonError {
    pub kind: &'static str,
    pub message: String,
    /// Why the worker process was killed (`memory`, `deadline`, `crash`); only when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<&'static str>,
}

impl JsonError {
    /// A line of the input that could not be used.
    pub fn input(message: String) -> JsonError {
        JsonError {
            kind: "input",
            message,
            killed: None,
        }
    }
}

impl From<&PacError> for JsonError {
    fn from(e: &PacError) -> JsonError {
        JsonError {
            kind: e.kind().as_str(),
            message: e.to_string(),
            killed: match e {
                PacError::WorkerKilled(reason) => Some(reason.label()),
                _ => None,
            },
        }
    }
}

/// Writes one line to stdout. When stdout is gone (`| head` has read enough), the command
/// ends quietly with status 1 instead of panicking; its worker processes see their parent go.
pub(crate) fn emit(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        std::process::exit(super::EXIT_USAGE);
    }
}

/// `println!` through [`emit`].
macro_rules! emitln {
    ($($arg:tt)*) => {
        $crate::cli::outcome::emit(&format!($($arg)*))
    };
}
pub(crate) use emitln;

/// The text form: the answer, or `error (KIND): MESSAGE`.
pub(crate) fn text(shown: &Shown<'_>) -> String {
    match shown {
        Ok((raw, _)) => raw.to_string(),
        Err(e) => format!("error ({}): {}", e.kind, e.message),
    }
}

/// The JSON form, one line.
pub(crate) fn json(url: &str, host: &str, shown: Shown<'_>, micros: u128) -> String {
    let line = JsonLine {
        url,
        host,
        side: Side::from(shown),
        duration_us: micros,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_their_kind_and_input_lines_are_errors_of_kind_input() {
        let timeout = PacError::Timeout(std::time::Duration::from_secs(5));
        let shown: Shown<'_> = Err(JsonError::from(&timeout));
        assert_eq!(
            text(&shown),
            "error (timeout): the PAC script ran past its deadline of 5s"
        );
        let line = json("x", "", Err(JsonError::input("urls.txt:3: bad".into())), 0);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"]["kind"], "input");
        assert_eq!(v["error"]["message"], "urls.txt:3: bad");
        assert!(v["error"].get("killed").is_none());
    }
}

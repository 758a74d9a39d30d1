//! The closed set of PAC failures. Each error knows its kind (`load`, `call`, `timeout`), which
//! the CLI prints and the proxy uses to pick its fallback; messages never repeat their source.

/// Where in the script an error happened (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Line number, 1-based.
    pub line: u32,
    /// Column number, 1-based.
    pub column: u32,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a load or an evaluation failed. (Serialisable: a worker process sends it to the proxy.)
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PacError {
    /// The script is empty.
    #[error("the PAC script is empty")]
    EmptyScript,
    /// The script exceeds the size limit.
    #[error("the PAC script is {size} bytes, over the limit of {limit} bytes")]
    ScriptTooLarge { size: usize, limit: usize },
    /// Syntax error or uncaught exception while loading.
    #[error("the PAC script failed to load{}: {message}", at(.position))]
    Load {
        message: String,
        position: Option<Position>,
    },
    /// Neither `FindProxyForURLEx` nor `FindProxyForURL` is a function.
    #[error("FindProxyForURL is undefined or not a function")]
    NoEntryPoint,
    /// The call threw.
    #[error("FindProxyForURL threw{}: {message}", at(.position))]
    Call {
        message: String,
        position: Option<Position>,
    },
    /// The call returned something other than a primitive string.
    #[error("FindProxyForURL() did not return a string (got {type_name})")]
    NotAString { type_name: String },
    /// The returned string is over the result length limit.
    #[error("FindProxyForURL() returned {len} bytes, over the limit of {limit}")]
    ResultTooLong { len: usize, limit: usize },
    /// The load or the call ran past its deadline.
    #[error("the PAC script ran past its deadline of {0:?}")]
    Timeout(std::time::Duration),
    /// A loop ran past the engine's per-loop iteration limit (boa's own budget, which can fire
    /// before the deadline): the script ran too long, so it is a timeout, not a call error.
    #[error("the PAC script ran too long: a loop went past {iterations} iterations")]
    LoopLimit { iterations: u64 },
    /// The interpreter's instruction budget for one load or call is spent.
    #[error("the PAC script ran over its instruction budget ({cycles} cycles)")]
    Budget { cycles: u64 },
    /// The worker process evaluating the script was killed (or died) during the load or call;
    /// it has been replaced.
    #[error("the PAC worker process {0}; it was replaced")]
    WorkerKilled(KillReason),
    /// The URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The script (or its inputs) was replaced during each of `attempts` evaluations of one
    /// call: no verdict of the script in force could be had.
    #[error("the PAC script changed during each of {attempts} evaluations of this request")]
    Superseded { attempts: u32 },
    /// The engine has shut down (its workers are gone).
    #[error("the PAC engine is shut down")]
    Shutdown,
}

/// Why a worker process was killed or died.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KillReason {
    /// It went over its memory limit (bytes).
    Memory { limit: u64 },
    /// It ran past the deadline, and the proxy killed it.
    Deadline(std::time::Duration),
    /// It exited or was killed by a signal for another reason.
    Crash { status: String },
}

impl KillReason {
    /// The metric label: `memory`, `deadline` or `crash`.
    pub fn label(&self) -> &'static str {
        match self {
            KillReason::Memory { .. } => "memory",
            KillReason::Deadline(_) => "deadline",
            KillReason::Crash { .. } => "crash",
        }
    }
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillReason::Memory { limit } => write!(
                f,
                "died: the script went over its memory limit of {} MiB",
                limit >> 20
            ),
            KillReason::Deadline(d) => {
                write!(f, "was killed: the script ran past its deadline of {d:?}")
            }
            KillReason::Crash { status } => write!(f, "died ({status})"),
        }
    }
}

fn at(position: &Option<Position>) -> String {
    position.map(|p| format!(" at {p}")).unwrap_or_default()
}

/// Coarse class of an error, as printed by `waypost pac eval --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The script could not be loaded.
    Load,
    /// The call failed.
    Call,
    /// A deadline expired.
    Timeout,
}

impl ErrorKind {
    /// The lower-case name used in JSON output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Load => "load",
            ErrorKind::Call => "call",
            ErrorKind::Timeout => "timeout",
        }
    }
}

impl PacError {
    /// The coarse class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PacError::EmptyScript
            | PacError::ScriptTooLarge { .. }
            | PacError::Load { .. }
            | PacError::NoEntryPoint => ErrorKind::Load,
            PacError::Timeout(_)
            | PacError::Budget { .. }
            | PacError::LoopLimit { .. }
            | PacError::WorkerKilled(KillReason::Deadline(_)) => ErrorKind::Timeout,
            PacError::WorkerKilled(_) => ErrorKind::Call,
            PacError::Call { .. }
            | PacError::NotAString { .. }
            | PacError::ResultTooLong { .. }
            | PacError::BadUrl { .. }
            | PacError::Superseded { .. }
            | PacError::Shutdown => ErrorKind::Call,
        }
    }

    /// Line and column in the script, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            PacError::Load { position, .. } | PacError::Call { position, .. } => *position,
            _ => None,
        }
    }
}

/// Finds the first `:LINE:COL` or `line L, col C` in an engine message.
pub(crate) fn find_position(text: &str) -> Option<Position> {
    if let Some(i) = text.find("at line ") {
        let rest = &text[i + 8..];
        let line: u32 = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        let j = rest.find("col ")?;
        let col = rest[j + 4..].split(|c: char| !c.is_ascii_digit()).next()?;
        return Some(Position {
            line,
            column: col.parse().ok()?,
        });
    }
    let marker = "pac.js:";
    let i = text.find(marker)?;
    let mut parts = text[i + marker.len()..].splitn(3, |c: char| !c.is_ascii_digit());
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some(Position { line, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_found_in_parser_and_stack_messages() {
        assert_eq!(
            find_position("expected token ';', got 'x' at line 3, col 7"),
            Some(Position { line: 3, column: 7 })
        );
        assert_eq!(
            find_position("Error: boom\n    at FindProxyForURL (pac.js:4:11)"),
            Some(Position {
                line: 4,
                column: 11
            })
        );
        assert_eq!(find_position("no position here"), None);
    }
}

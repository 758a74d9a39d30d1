//! The seam between [`crate::PacEngine`] (URL sanitising, result cache, verdict parsing,
//! metrics) and where scripts run: worker threads in this process ([`crate::pool`]) or
//! supervised worker processes ([`crate::isolate`]). Both run [`crate::interp`], so they answer
//! alike; a backend only moves jobs and enforces deadlines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::interp::ScriptText;
use crate::PacError;

/// What a backend answers: the script's string and the generation of the script that ran
/// ([`ScriptText::generation`]), which the engine checks against the one in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluated {
    pub raw: String,
    pub generation: u64,
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a loaded script is evaluated.
pub(crate) trait Backend: Send + Sync {
    /// Validates `script` (loads it once, within the load deadline) and puts it in service;
    /// on error the old script stays.
    fn replace(&self, script: Arc<ScriptText>) -> BoxFuture<'_, Result<(), PacError>>;
    /// Runs the entry point with `url` and `host` as given, within the call deadline, with the
    /// script in service when a worker takes the job up (never an older one).
    fn eval<'a>(
        &'a self,
        url: &'a str,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Evaluated, PacError>>;
    /// Live workers (threads or processes).
    fn workers(&self) -> usize;
    /// The local addresses changed (already set in the shared DNS service): workers that
    /// keep their own copy must learn them before their next call.
    fn network_changed(&self) {}
}

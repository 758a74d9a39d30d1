//! A script loaded for the list commands (`eval --urls`, `test`, `diff`): a pool of workers
//! (`pac-worker` processes, one per core by default, or threads with `--in-process`), no result
//! cache, and — with `--coverage` — the instrumented text in place of the script, whose answers
//! are stripped of their counts before anyone sees them. A script that does not load is
//! reported from the original text, so its error positions are the user's.

use std::sync::{Arc, Mutex};

use super::coverage::{instrument, Coverage, Instrumented, Tally};
use super::lines::Request;
use super::read_script;
use crate::{parse_result, PacEngine, PacError, PacOptions, Position, ProxyEntry};

/// Bytes the counts may add to an answer, per counter (`SLOT:COUNT,`).
const BYTES_PER_SLOT: usize = 24;

/// A free worker, held through one call ([`Loaded::permit`]).
pub(crate) type Permit = tokio::sync::OwnedSemaphorePermit;

/// An answer, stripped of coverage counts.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub raw: String,
    pub entries: Vec<ProxyEntry>,
}

/// Why a script could not be made ready.
pub(crate) enum Failure {
    /// Unreadable location or bad arguments (exit 1).
    Usage(String),
    /// The script does not load (exit 2).
    Script(PacError),
}

/// A loaded script, cheap to clone into evaluation tasks.
#[derive(Clone)]
pub(crate) struct Loaded {
    engine: PacEngine,
    /// One permit per worker: never more calls in flight than workers, so a call's deadline
    /// (which counts its time in the queue, as in the proxy) is spent running, not waiting
    /// behind a neighbour that spins until it is killed.
    permits: Arc<tokio::sync::Semaphore>,
    /// With `--coverage`: the counts so far (a short lock per answer).
    tally: Option<Arc<Mutex<Tally>>>,
    instrumented: Option<Arc<Instrumented>>,
    /// The answer length limit of the script itself (the engine's is raised for the counts).
    result_limit: usize,
    name: String,
}

/// Reads and loads the script at `location` with `options`, instrumented when `coverage`.
pub(crate) async fn load(
    location: &str,
    options: PacOptions,
    coverage: bool,
) -> Result<Loaded, Failure> {
    let text = read_script(location, options.max_script_bytes)
        .await
        .map_err(Failure::Usage)?;
    let result_limit = options.max_result_bytes;
    let permits = Arc::new(tokio::sync::Semaphore::new(options.workers.max(1)));
    let instrumented = match coverage {
        true => instrument(&text).ok(),
        false => None,
    };
    let Some(instrumented) = instrumented else {
        if coverage {
            // it does not parse: load the original for the user's error message
            PacEngine::new(&text, options, None)
                .await
                .map_err(Failure::Script)?;
            return Err(Failure::Usage(format!(
                "{location}: the script loads but could not be parsed for coverage; run without --coverage"
            )));
        }
        let engine = PacEngine::new(&text, options, None)
            .await
            .map_err(Failure::Script)?;
        return Ok(Loaded {
            engine,
            permits,
            tally: None,
            instrumented: None,
            result_limit,
            name: location.to_string(),
        });
    };
    // the probes and the counts make the text and the answers longer than the user's
    let widened = PacOptions {
        max_result_bytes: result_limit + 64 + instrumented.slots * BYTES_PER_SLOT,
        max_script_bytes: options.max_script_bytes.max(instrumented.source.len()),
        ..options.clone()
    };
    let engine = match PacEngine::new(&instrumented.source, widened, None).await {
        Ok(engine) => engine,
        Err(instrumented_error) => {
            PacEngine::new(&text, options, None)
                .await
                .map_err(Failure::Script)?;
            return Err(Failure::Usage(format!(
                "{location}: the script loads, but not once instrumented for coverage ({instrumented_error}); run without --coverage"
            )));
        }
    };
    Ok(Loaded {
        engine,
        permits,
        tally: Some(Arc::new(Mutex::new(Tally::new(instrumented.slots)))),
        instrumented: Some(Arc::new(instrumented)),
        result_limit,
        name: location.to_string(),
    })
}

impl Loaded {
    /// Waits for a free worker; the permit is then given to [`Loaded::eval`]. Taken in input
    /// order, so calls start in input order (one after another with one worker).
    pub async fn permit(&self) -> Permit {
        // the semaphore lives as long as `self` and is never closed: acquiring cannot fail
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Evaluates one request (no sanitising, no cache) while holding a worker's `permit`;
    /// coverage counts stripped from the answer.
    pub async fn eval(&self, r: &Request, permit: Permit) -> Result<Answer, PacError> {
        let result = self.engine.eval_raw(&r.url, &r.host).await;
        drop(permit);
        let answer = match (result, &self.tally) {
            (Ok(answer), _) => answer,
            (Err(e), Some(tally)) => {
                tally.lock().unwrap_or_else(|p| p.into_inner()).failed += 1;
                return Err(self.original_position(e));
            }
            (Err(e), None) => return Err(e),
        };
        let Some(tally) = &self.tally else {
            return Ok(Answer {
                raw: answer.raw,
                entries: answer.entries,
            });
        };
        let raw = tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .absorb(&answer.raw);
        if raw.len() > self.result_limit {
            return Err(PacError::ResultTooLong {
                len: raw.len(),
                limit: self.result_limit,
            });
        }
        Ok(Answer {
            entries: parse_result(&raw),
            raw,
        })
    }

    /// A call error's position in the user's script, not in the instrumented one.
    fn original_position(&self, err: PacError) -> PacError {
        match (err, &self.instrumented) {
            (
                PacError::Call {
                    message,
                    position: Some(p),
                },
                Some(instrumented),
            ) => {
                let (line, column) = instrumented.original(p.line, p.column);
                PacError::Call {
                    message,
                    position: Some(Position { line, column }),
                }
            }
            (err, _) => err,
        }
    }

    /// The coverage report so far (with `--coverage`).
    pub fn coverage(&self) -> Option<Coverage> {
        let (tally, instrumented) = (self.tally.as_ref()?, self.instrumented.as_ref()?);
        let mut c = Coverage::new(&self.name, Instrumented::clone(instrumented));
        c.tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(c)
    }
}

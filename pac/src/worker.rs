//! One PAC worker: a thread that owns a boa `Context` (which is `!Send`) holding the loaded
//! script, takes jobs from the engine's shared queue and answers each on its own channel.
//!
//! Lifecycle: spawned -> loads the current script -> serves jobs, reloading when the script's
//! generation changes -> exits when the queue closes, or after its current job when the engine
//! has abandoned it (deadline expired; a replacement has been started). An abandoned worker
//! is stopped within one budget slice (see [`crate::interp`]): the evaluation is dropped and the
//! thread ends.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::backend::Evaluated;
use crate::interp::{Interp, Shared};
use crate::PacError;

/// A worker's handle as seen by the engine.
pub(crate) struct WorkerControl {
    /// Set when the engine gives up on this worker.
    pub cancel: Arc<AtomicBool>,
}

/// One evaluation request; the ticket tells the engine which worker holds it.
pub(crate) struct Job {
    pub url: String,
    pub host: String,
    pub ticket: Arc<Ticket>,
    pub reply: oneshot::Sender<Result<Evaluated, PacError>>,
}

/// Shared between the waiting caller and the worker running the job.
#[derive(Default)]
pub(crate) struct Ticket {
    /// The worker that picked the job up.
    pub worker: Mutex<Option<Arc<WorkerControl>>>,
    /// The caller stopped waiting: skip the job if not started yet.
    pub abandoned: AtomicBool,
}

/// Stack of an interpreter thread: boa recurses on the native stack for deep expressions.
pub(crate) const STACK_SIZE: usize = 32 * 1024 * 1024;

/// Starts a worker thread. `ready` receives the outcome of the first load.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    queue: crossbeam_channel::Receiver<Job>,
    ready: Option<oneshot::Sender<Result<(), PacError>>>,
) -> Arc<WorkerControl> {
    let control = Arc::new(WorkerControl {
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let theirs = control.clone();
    let spawned = std::thread::Builder::new()
        .name("waypost-pac".into())
        .stack_size(STACK_SIZE)
        .spawn(move || run(shared, theirs, queue, ready));
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start a PAC worker thread");
    }
    control
}

fn run(
    shared: Arc<Shared>,
    control: Arc<WorkerControl>,
    queue: crossbeam_channel::Receiver<Job>,
    ready: Option<oneshot::Sender<Result<(), PacError>>>,
) {
    let script = shared.current_script();
    let mut loaded = match Interp::load(&shared, &control.cancel, &script) {
        Ok(interp) => {
            if let Some(ready) = ready {
                let _ = ready.send(Ok(()));
            }
            Some(interp)
        }
        Err(err) => {
            if let Some(ready) = ready {
                let _ = ready.send(Err(err));
            }
            None
        }
    };
    while !control.cancel.load(Ordering::Relaxed) {
        let Ok(job) = next_job(&queue) else { break };
        if job.ticket.abandoned.load(Ordering::Relaxed) {
            continue;
        }
        *job.ticket.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(control.clone());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            serve(&shared, &control, &mut loaded, &job.url, &job.host)
        }));
        let answer = outcome.unwrap_or_else(|_| {
            loaded = None;
            Err(PacError::Call {
                message: "the JS engine panicked".into(),
                position: None,
            })
        });
        let _ = job.reply.send(answer);
    }
}

/// How long an idle worker polls the queue before parking. A parked thread takes tens of
/// microseconds to wake on a busy machine, more than a light script takes to run; a caller
/// sending its next request within this window finds the worker awake.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

fn next_job(queue: &crossbeam_channel::Receiver<Job>) -> Result<Job, crossbeam_channel::RecvError> {
    let started = Instant::now();
    loop {
        match queue.try_recv() {
            Ok(job) => return Ok(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(crossbeam_channel::RecvError)
            }
            Err(crossbeam_channel::TryRecvError::Empty) if started.elapsed() < SPIN => {
                std::thread::yield_now()
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return queue.recv(),
        }
    }
}

fn serve(
    shared: &Shared,
    control: &WorkerControl,
    loaded: &mut Option<Interp>,
    url: &str,
    host: &str,
) -> Result<Evaluated, PacError> {
    // the script in service now: a job taken up after a replacement never runs the old one
    let script = shared.current_script();
    if loaded
        .as_ref()
        .is_none_or(|l| l.generation != script.generation)
    {
        *loaded = None;
        *loaded = Some(Interp::load(shared, &control.cancel, &script)?);
    }
    let Some(interp) = loaded.as_mut() else {
        return Err(PacError::NoEntryPoint);
    };
    let generation = interp.generation;
    let result = interp
        .call(&shared.options, &control.cancel, url, host)
        .map(|raw| Evaluated { raw, generation });
    if matches!(
        result,
        Err(PacError::Timeout(_) | PacError::Budget { .. } | PacError::LoopLimit { .. })
    ) {
        // the evaluation was dropped mid-flight: this context is spent
        *loaded = None;
    }
    result
}

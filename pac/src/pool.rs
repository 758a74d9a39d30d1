//! The in-process backend: a pool of worker threads (each owns a boa context) fed by one shared
//! queue. A call past its deadline abandons its worker (which stops within one budget slice)
//! and starts a replacement at once. Used by the CLI, tests and embedders that choose
//! [`crate::options::Isolation::Threads`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::backend::{Backend, BoxFuture, Evaluated};
use crate::interp::{Interp, ScriptText, Shared};
use crate::metrics::Metrics;
use crate::worker::{self, Job, Ticket, WorkerControl};
use crate::PacError;

pub(crate) struct ThreadPool {
    shared: Arc<Shared>,
    queue_tx: crossbeam_channel::Sender<Job>,
    queue_rx: crossbeam_channel::Receiver<Job>,
    metrics: Metrics,
    workers: Mutex<Vec<Arc<WorkerControl>>>,
    /// Calls in flight: a lone one is waited for hot ([`crate::hot`]).
    in_flight: AtomicUsize,
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        for w in self.lock_workers().iter() {
            w.cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl ThreadPool {
    /// Starts the workers and waits (within the load deadline) until each has loaded the script.
    pub async fn start(shared: Arc<Shared>, metrics: Metrics) -> Result<ThreadPool, PacError> {
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let pool = ThreadPool {
            shared,
            queue_tx,
            queue_rx,
            metrics,
            workers: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        };
        let mut ready = Vec::new();
        for _ in 0..pool.shared.options.workers.max(1) {
            let (tx, rx) = oneshot::channel();
            let control = worker::spawn(pool.shared.clone(), pool.queue_rx.clone(), Some(tx));
            pool.lock_workers().push(control);
            ready.push(rx);
        }
        let all = async {
            for rx in ready {
                rx.await.map_err(|_| PacError::Shutdown)??;
            }
            Ok::<(), PacError>(())
        };
        let load_timeout = pool.shared.options.load_timeout;
        match tokio::time::timeout(load_timeout, all).await {
            Ok(Ok(())) => Ok(pool),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(PacError::Timeout(load_timeout)),
        }
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<WorkerControl>>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives up on a job: if a worker holds it, that worker is cancelled and replaced.
    fn abandon(&self, ticket: &Ticket) {
        ticket.abandoned.store(true, Ordering::Relaxed);
        let holder = ticket
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(wedged) = holder else { return };
        if wedged.cancel.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!("PAC evaluation ran past its deadline; replacing the worker");
        self.metrics.worker_restarts.inc();
        let replacement = worker::spawn(self.shared.clone(), self.queue_rx.clone(), None);
        let mut workers = self.lock_workers();
        workers.retain(|w| !Arc::ptr_eq(w, &wedged));
        workers.push(replacement);
    }

    async fn validate(&self, candidate: Arc<ScriptText>) -> Result<(), PacError> {
        let shared = self.shared.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let theirs = cancel.clone();
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("waypost-pac-check".into())
            .stack_size(worker::STACK_SIZE)
            .spawn(move || {
                let _ = tx.send(Interp::load(&shared, &theirs, &candidate).map(drop));
            });
        if spawned.is_err() {
            return Err(PacError::Shutdown);
        }
        let timeout = self.shared.options.load_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PacError::Shutdown),
            Err(_) => {
                cancel.store(true, Ordering::Relaxed);
                Err(PacError::Timeout(timeout))
            }
        }
    }
}

/// Marks the job abandoned when its caller stops waiting, whatever the reason; a job already
/// running ends at its interpreter's backstop.
struct SkipIfGone<'a>(&'a Ticket);

impl Drop for SkipIfGone<'_> {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::Relaxed);
    }
}

impl Backend for ThreadPool {
    fn replace(&self, candidate: Arc<ScriptText>) -> BoxFuture<'_, Result<(), PacError>> {
        Box::pin(async move {
            self.validate(candidate.clone()).await?;
            // workers reload lazily when they see the new generation
            *self
                .shared
                .script
                .write()
                .unwrap_or_else(|p| p.into_inner()) = candidate;
            Ok(())
        })
    }

    fn eval<'a>(
        &'a self,
        url: &'a str,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Evaluated, PacError>> {
        Box::pin(async move {
            let _flight = crate::hot::InFlight::enter(&self.in_flight);
            let ticket = Arc::new(Ticket::default());
            let (reply, rx) = oneshot::channel();
            let job = Job {
                url: url.to_string(),
                host: host.to_string(),
                ticket: ticket.clone(),
                reply,
            };
            self.queue_tx.send(job).map_err(|_| PacError::Shutdown)?;
            // a caller that goes away (its client hung up) leaves a job no worker should start
            let _gone = SkipIfGone(&ticket);
            let deadline = self.shared.options.call_timeout;
            match tokio::time::timeout(
                deadline,
                crate::hot::wait(rx, crate::hot::spin_for(&self.in_flight)),
            )
            .await
            {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(PacError::Shutdown),
                Err(_) => {
                    self.abandon(&ticket);
                    Err(PacError::Timeout(deadline))
                }
            }
        })
    }

    fn workers(&self) -> usize {
        self.lock_workers().len()
    }
}

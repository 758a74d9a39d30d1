//! `PacEngine`: the public face. It owns the worker pool (a shared job queue; each worker has
//! its own context), enforces deadlines by abandoning and replacing wedged workers, sanitises
//! URLs, consults the result cache and records metrics. Cheap to clone; `Send + Sync`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::cache::{CachedAnswer, ResultCache};
use crate::dns::DnsService;
use crate::metrics::Metrics;
use crate::sanitize::sanitize;
use crate::verdict::{parse_result, ProxyEntry};
use crate::worker::{self, Job, ScriptText, Shared, Ticket, WorkerControl};
use crate::{PacError, PacOptions};

/// The answer to one `find_proxy` / `eval_raw` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacAnswer {
    /// The string the script returned.
    pub raw: String,
    /// Parsed entries, in order (never empty: nothing valid means `[DIRECT]`).
    pub entries: Vec<ProxyEntry>,
    /// Whether the answer came from the result cache.
    pub cached: bool,
    /// Time spent answering.
    pub duration: Duration,
}

/// A loaded PAC script, served by a pool of worker threads.
#[derive(Clone)]
pub struct PacEngine {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    queue_tx: crossbeam_channel::Sender<Job>,
    queue_rx: crossbeam_channel::Receiver<Job>,
    cache: ResultCache,
    metrics: Metrics,
    generation: AtomicU64,
    reload: tokio::sync::Mutex<()>,
    workers: Mutex<Vec<Arc<WorkerControl>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            w.cancel.store(true, Ordering::Relaxed);
        }
    }
}

fn check_text(text: &str, options: &PacOptions) -> Result<(), PacError> {
    if text.len() > options.max_script_bytes {
        return Err(PacError::ScriptTooLarge {
            size: text.len(),
            limit: options.max_script_bytes,
        });
    }
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(PacError::EmptyScript);
    }
    Ok(())
}

impl PacEngine {
    /// Loads `script` into `options.workers` workers. Must run inside a tokio runtime (DNS
    /// lookups made by scripts run on it). Metrics go into `registry` when given.
    pub async fn new(
        script: &str,
        options: PacOptions,
        registry: Option<&prometheus::Registry>,
    ) -> Result<PacEngine, PacError> {
        check_text(script, &options)?;
        if let Some(zone) = &options.time_zone {
            crate::clock::check_time_zone(zone).map_err(|message| PacError::Load {
                message,
                position: None,
            })?;
        }
        let metrics = Metrics::new(registry);
        let dns = Arc::new(DnsService::new(&options, metrics.clone()));
        let load_timeout = options.load_timeout;
        let workers = options.workers.max(1);
        let shared = Arc::new(Shared {
            options,
            dns,
            script: std::sync::RwLock::new(Arc::new(ScriptText {
                text: script.into(),
                generation: 0,
            })),
        });
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let inner = Arc::new(Inner {
            cache: ResultCache::new(shared.options.cache_ttl, shared.options.cache_size),
            shared,
            queue_tx,
            queue_rx,
            metrics,
            generation: AtomicU64::new(0),
            reload: tokio::sync::Mutex::new(()),
            workers: Mutex::new(Vec::new()),
        });
        let mut ready = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = oneshot::channel();
            let control = worker::spawn(inner.shared.clone(), inner.queue_rx.clone(), Some(tx));
            inner.lock_workers().push(control);
            ready.push(rx);
        }
        let all = async {
            for rx in ready {
                rx.await.map_err(|_| PacError::Shutdown)??;
            }
            Ok::<(), PacError>(())
        };
        let outcome = match tokio::time::timeout(load_timeout, all).await {
            Ok(result) => result,
            Err(_) => Err(PacError::Timeout(load_timeout)),
        };
        if let Err(err) = outcome {
            inner
                .metrics
                .evaluations
                .with_label_values(&[err.kind().as_str()])
                .inc();
            return Err(err);
        }
        Ok(PacEngine { inner })
    }

    /// Loads a new script (validated first, within the load deadline), resets every worker's
    /// globals and flushes the result cache. On error the old script stays in service.
    pub async fn replace_script(&self, script: &str) -> Result<(), PacError> {
        let inner = &self.inner;
        check_text(script, &inner.shared.options)?;
        let _guard = inner.reload.lock().await;
        let generation = inner.generation.load(Ordering::SeqCst) + 1;
        let candidate = Arc::new(ScriptText {
            text: script.into(),
            generation,
        });
        let shared = inner.shared.clone();
        let control = Arc::new(WorkerControl {
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        let probe_control = control.clone();
        let probe_script = candidate.clone();
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("waypost-pac-check".into())
            .stack_size(32 * 1024 * 1024)
            .spawn(move || {
                let _ = tx.send(worker::load(&shared, &probe_control, &probe_script).map(drop));
            });
        if spawned.is_err() {
            return Err(PacError::Shutdown);
        }
        let timeout = inner.shared.options.load_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => return Err(err),
            Ok(Err(_)) => return Err(PacError::Shutdown),
            Err(_) => {
                control.cancel.store(true, Ordering::Relaxed);
                return Err(PacError::Timeout(timeout));
            }
        }
        *inner
            .shared
            .script
            .write()
            .unwrap_or_else(|p| p.into_inner()) = candidate;
        inner.generation.store(generation, Ordering::SeqCst);
        inner.cache.clear();
        Ok(())
    }

    /// Sanitises `url` (spec §5), answers from the cache when possible, else evaluates.
    pub async fn find_proxy(&self, url: &str) -> Result<PacAnswer, PacError> {
        let start = Instant::now();
        let input = sanitize(url)?;
        let inner = &self.inner;
        let generation = inner.generation.load(Ordering::SeqCst);
        if inner.cache.enabled() {
            if let Some(hit) = inner.cache.get(&input.url, generation) {
                inner.metrics.cache_hit.inc();
                return Ok(PacAnswer {
                    raw: hit.raw,
                    entries: hit.entries,
                    cached: true,
                    duration: start.elapsed(),
                });
            }
            inner.metrics.cache_miss.inc();
        }
        let answer = self.eval_raw(&input.url, &input.host).await?;
        if inner.generation.load(Ordering::SeqCst) == generation {
            let cached = CachedAnswer {
                raw: answer.raw.clone(),
                entries: answer.entries.clone(),
            };
            inner.cache.insert(input.url, generation, cached);
        }
        Ok(PacAnswer {
            duration: start.elapsed(),
            ..answer
        })
    }

    /// Calls the script with `url` and `host` exactly as given (no sanitising, no cache).
    pub async fn eval_raw(&self, url: &str, host: &str) -> Result<PacAnswer, PacError> {
        let start = Instant::now();
        let inner = &self.inner;
        let ticket = Arc::new(Ticket::default());
        let (reply, rx) = oneshot::channel();
        let job = Job {
            url: url.to_string(),
            host: host.to_string(),
            ticket: ticket.clone(),
            reply,
        };
        inner.queue_tx.send(job).map_err(|_| PacError::Shutdown)?;
        let deadline = inner.shared.options.call_timeout;
        let result = match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PacError::Shutdown),
            Err(_) => {
                inner.abandon(&ticket);
                Err(PacError::Timeout(deadline))
            }
        };
        let duration = start.elapsed();
        match &result {
            Ok(_) => inner.metrics.evaluations_ok.inc(),
            Err(e) => inner
                .metrics
                .evaluations
                .with_label_values(&[e.kind().as_str()])
                .inc(),
        }
        inner.metrics.duration.observe(duration.as_secs_f64());
        let raw = result?;
        Ok(PacAnswer {
            entries: parse_result(&raw),
            raw,
            cached: false,
            duration,
        })
    }

    /// Number of live workers (abandoned ones excluded).
    pub fn workers(&self) -> usize {
        self.inner.lock_workers().len()
    }
}

impl Inner {
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
}

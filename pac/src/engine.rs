//! `PacEngine`: the public face. It sanitises URLs, consults the result cache, hands uncached
//! calls to its backend (worker threads in this process, or supervised worker processes — see
//! [`crate::options::Isolation`]), parses verdicts and records metrics. Cheap to clone;
//! `Send + Sync`. A cached answer never reaches the backend.
//!
//! Invariant: no stale verdicts. The engine keeps one generation counter, bumped by every
//! change of the script or of its inputs (a replaced script, a network change: new local
//! addresses, forgotten DNS answers), after the change is in service and before the result
//! cache is flushed for it. Every [`PacAnswer`] carries the generation it was produced under.
//! [`PacEngine::find_proxy`] reads the counter before it asks (one atomic load) and again when
//! the verdict comes back: a verdict whose script or inputs were replaced while it was in
//! flight (or that ran a script newer than the generation read) is neither returned nor
//! cached; the call is evaluated again with what is in service now, at most [`ATTEMPTS`]
//! times, then fails with [`PacError::Superseded`] (the caller's usual PAC fallback). The
//! backends guarantee their half: a job taken up after a script was put in service runs that
//! script (or a newer one) and reports which one ran. The cache refuses inserts from a
//! generation older than its last flush ([`crate::cache`]), so a late insert cannot bring an
//! old answer back. A verdict handed over before a change completes may still be acted on
//! just after it: the guarantee is for every call that is answered after the change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Backend, Evaluated};
use crate::bindings::log_alerts;
use crate::cache::{CachedAnswer, ResultCache};
use crate::dns::DnsService;
use crate::interp::{ScriptText, Shared};
use crate::metrics::Metrics;
use crate::options::Isolation;
use crate::sanitize::sanitize;
use crate::verdict::{parse_result, ProxyEntry};
use crate::{ErrorKind, PacError, PacOptions};

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
    /// The generation (script and its inputs, see the module comment) this answer was
    /// produced under: from `find_proxy`, the one in force when the evaluation ended; from
    /// `eval_raw`, the generation at which the script that ran was installed.
    pub generation: u64,
}

/// How many times `find_proxy` evaluates one call whose script keeps being replaced under it.
pub const ATTEMPTS: u32 = 3;

/// A loaded PAC script, served by a pool of workers (threads or processes).
#[derive(Clone)]
pub struct PacEngine {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    /// The DNS service shared with the workers (local addresses, DNS cache).
    dns: Arc<DnsService>,
    options: PacOptions,
    cache: ResultCache,
    metrics: Metrics,
    generation: AtomicU64,
    /// The current script never reads `url`: the cache is keyed by host ([`crate::analysis`]).
    per_host: std::sync::atomic::AtomicBool,
    reload: tokio::sync::Mutex<()>,
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
    /// Loads `script` into `options.workers` workers (threads or processes, per
    /// `options.isolation`). Must run inside a tokio runtime (DNS lookups made by scripts run
    /// on it). Metrics go into `registry` when given.
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
        let shared = Arc::new(Shared {
            options: options.clone(),
            dns: dns.clone(),
            script: std::sync::RwLock::new(Arc::new(ScriptText {
                text: script.into(),
                generation: 0,
            })),
            alerts: log_alerts(),
        });
        let started = match &options.isolation {
            Isolation::Threads => crate::pool::ThreadPool::start(shared, metrics.clone())
                .await
                .map(|p| Box::new(p) as Box<dyn Backend>),
            Isolation::Process(process) => {
                crate::isolate::ProcessPool::start(shared, process.clone(), metrics.clone())
                    .await
                    .map(|p| Box::new(p) as Box<dyn Backend>)
            }
        };
        let backend = match started {
            Ok(backend) => backend,
            Err(err) => {
                metrics
                    .evaluations
                    .with_label_values(&[err.kind().as_str()])
                    .inc();
                return Err(err);
            }
        };
        Ok(PacEngine {
            inner: Arc::new(Inner {
                backend,
                dns,
                cache: ResultCache::new(options.cache_ttl, options.cache_size),
                options,
                metrics,
                generation: AtomicU64::new(0),
                per_host: std::sync::atomic::AtomicBool::new(!crate::analysis::reads_url(script)),
                reload: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Loads a new script (validated first, within the load deadline), resets every worker's
    /// globals and flushes the result cache. On error the old script stays in service.
    pub async fn replace_script(&self, script: &str) -> Result<(), PacError> {
        let inner = &self.inner;
        check_text(script, &inner.options)?;
        let _guard = inner.reload.lock().await;
        let generation = inner.generation.load(Ordering::SeqCst) + 1;
        let candidate = Arc::new(ScriptText {
            text: script.into(),
            generation,
        });
        inner.backend.replace(candidate).await?;
        inner
            .per_host
            .store(!crate::analysis::reads_url(script), Ordering::SeqCst);
        // in service first, then the generation: a call that reads the new generation runs
        // the new script; then the flush, which refuses late inserts of the old generation
        inner.generation.store(generation, Ordering::SeqCst);
        inner.cache.flush(generation);
        Ok(())
    }

    /// Sanitises `url` (spec §5), answers from the cache when possible, else evaluates. The
    /// cache key is the sanitised URL, or only the host when the script provably never reads
    /// `url`. The answer comes from the script and inputs in force when it is returned (see
    /// the module comment): a verdict overtaken by a replacement is evaluated again.
    pub async fn find_proxy(&self, url: &str) -> Result<PacAnswer, PacError> {
        let start = Instant::now();
        let input = sanitize(url)?;
        let inner = &self.inner;
        for _ in 0..ATTEMPTS {
            let generation = inner.generation.load(Ordering::SeqCst);
            // a script that never reads `url` answers alike for every URL of a host
            let key = if inner.per_host.load(Ordering::SeqCst) {
                format!("host {}", input.host)
            } else {
                input.url.clone()
            };
            if inner.cache.enabled() {
                if let Some(hit) = inner.cache.get(&key, generation) {
                    inner.metrics.cache_hit.inc();
                    return Ok(PacAnswer {
                        raw: hit.raw,
                        entries: hit.entries,
                        cached: true,
                        duration: start.elapsed(),
                        generation,
                    });
                }
                inner.metrics.cache_miss.inc();
            }
            let answer = self.eval_raw(&input.url, &input.host).await?;
            // the script that ran is the one in force at `generation` (it is not newer, and
            // the backend never runs an older one), and nothing was replaced since
            let current = answer.generation <= generation
                && inner.generation.load(Ordering::SeqCst) == generation;
            if !current {
                tracing::debug!(
                    generation,
                    "the PAC script or its inputs changed during the evaluation; evaluating again"
                );
                continue;
            }
            let cached = CachedAnswer {
                raw: answer.raw.clone(),
                entries: answer.entries.clone(),
            };
            inner.cache.insert(key, generation, cached);
            return Ok(PacAnswer {
                duration: start.elapsed(),
                generation,
                ..answer
            });
        }
        inner
            .metrics
            .evaluations
            .with_label_values(&[ErrorKind::Call.as_str()])
            .inc();
        Err(PacError::Superseded { attempts: ATTEMPTS })
    }

    /// Calls the script with `url` and `host` exactly as given (no sanitising, no cache).
    pub async fn eval_raw(&self, url: &str, host: &str) -> Result<PacAnswer, PacError> {
        let start = Instant::now();
        let inner = &self.inner;
        let result = inner.backend.eval(url, host).await;
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
        let Evaluated { raw, generation } = result?;
        Ok(PacAnswer {
            entries: parse_result(&raw),
            raw,
            cached: false,
            duration,
            generation,
        })
    }

    /// The network changed: `myIpAddress()`/`myIpAddressEx()` are probed again (unless
    /// pinned; worker processes are told before their next call), cached DNS answers are
    /// forgotten and the result cache is flushed (answers may depend on the address).
    /// Returns the local addresses now in force.
    pub fn network_changed(&self) -> Vec<std::net::IpAddr> {
        let inner = &self.inner;
        let ips = inner.dns.network_changed();
        inner.backend.network_changed();
        // answers computed before this point are neither used nor cached after it
        let generation = inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        inner.cache.flush(generation);
        ips
    }

    /// The generation in force now (see the module comment).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// The local addresses scripts see now.
    pub fn my_ips(&self) -> Vec<std::net::IpAddr> {
        self.inner.dns.my_ips()
    }

    /// Number of live workers (threads or processes; abandoned ones excluded).
    pub fn workers(&self) -> usize {
        self.inner.backend.workers()
    }
}

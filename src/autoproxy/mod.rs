//! Autoproxy in the running proxy: where the PAC script comes from, keeping it fresh, and
//! asking it (WinHTTP's WINHTTP_AUTOPROXY_OPTIONS).
//!
//! A refresh task owns the script: it loads it from the configured sources, tried in order
//! (file, URL, or WPAD discovery by DHCP then DNS; the first that gives a loadable script
//! wins), installs it in one [`PacEngine`] (a new script resets globals and flushes the result
//! cache), keeps the last good copy on disk, and reloads on an interval and when the network
//! changes. Requests that arrive before the first load wait for it, bounded.
//!
//! A script found by WPAD is bound to the network it was found on ([`NetworkId::wpad_binding`]):
//! its copy on disk is used at start-up only on that network, and when no source gives a
//! script on another network it is dropped (the request then goes to `route.upstream`, DIRECT,
//! or is refused under `pac.mandatory`: see [`crate::router`]). A script from an explicit file
//! or URL keeps being used when a refresh fails.
//! Lifecycle: Loading -> Ready(script) -> (refresh) Ready(new script) | Ready(kept script);
//! Loading -> Failed (no script: DIRECT or 502 per `pac.mandatory`) -> Ready on a later refresh.
//!
//! No stale verdicts: a verdict is used only if the script that gave it, and the inputs it
//! saw (the network's local addresses), are still in force when it comes back. The engine
//! keeps that for a replaced script and a network change (its generation counter, see
//! [`waypost_pac::engine`]); this module adds the one change the engine does not see, a script
//! taken out of service ([`AutoProxy::drop_script`]): [`AutoProxy::find`] reads a counter of
//! drops before asking and again after (an atomic load each), and asks again when it moved.

pub mod badproxy;
pub mod fetch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use waypost_pac::{DnsLookup, PacAnswer, PacEngine, PacError, PacOptions};

pub use crate::config::{PacIsolation, PacSettings};
use crate::metrics::Metrics;
use crate::net::NetworkId;
use crate::upstream::client::HttpClient;

/// The script in use and where it came from.
pub struct Loaded {
    /// The URL or path it was read from.
    pub source: String,
    /// `file`, `url`, `dhcp`, `dns` or `disk` (the last good copy, at start-up).
    pub method: &'static str,
    pub loaded_at: SystemTime,
    /// The `pac.source` entry it came from (`auto`, a URL or a path).
    pub entry: String,
    /// For a WPAD script: the network it was found on ([`NetworkId::wpad_binding`]).
    pub network: Option<String>,
}

/// What happened to one `pac.source` entry in the last refresh, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAttempt {
    /// The entry, redacted (it is shown by `explain` and `/status`).
    pub entry: String,
    /// `used`, `failed` or `not tried` (an earlier entry won).
    pub outcome: &'static str,
    /// Why it failed (empty otherwise).
    pub reason: String,
}

pub struct AutoProxy {
    pub settings: PacSettings,
    engine: tokio::sync::OnceCell<PacEngine>,
    state: watch::Sender<Option<Arc<Loaded>>>,
    /// Becomes true after the first load attempt (success or not).
    attempted: watch::Sender<bool>,
    /// The last load error, for `explain`.
    last_error: std::sync::Mutex<Option<String>>,
    /// The text of the installed script (to skip reinstalling an unchanged one).
    installed_text: std::sync::Mutex<String>,
    /// Each source's outcome in the last refresh.
    attempts: std::sync::Mutex<Vec<SourceAttempt>>,
    /// The PAC engine's metrics (exposed while this autoproxy is the one in use).
    pub registry: prometheus::Registry,
    /// Wakes the refresh task for a reload now (the PAC file changed, SIGHUP).
    reload_now: tokio::sync::Notify,
    /// Ends the refresh task when a reload replaces this autoproxy.
    retired: tokio_util::sync::CancellationToken,
    /// Bumped each time the script in use is taken out of service: a verdict evaluated
    /// across a drop is not used.
    drops: AtomicU64,
}

impl AutoProxy {
    pub fn new(settings: PacSettings) -> Arc<AutoProxy> {
        Arc::new(AutoProxy {
            settings,
            engine: tokio::sync::OnceCell::new(),
            state: watch::channel(None).0,
            attempted: watch::channel(false).0,
            last_error: std::sync::Mutex::new(None),
            installed_text: std::sync::Mutex::new(String::new()),
            attempts: std::sync::Mutex::new(Vec::new()),
            registry: prometheus::Registry::new(),
            reload_now: tokio::sync::Notify::new(),
            retired: tokio_util::sync::CancellationToken::new(),
            drops: AtomicU64::new(0),
        })
    }

    /// Whether a first load attempt has finished (success or not).
    pub fn attempted(&self) -> bool {
        *self.attempted.borrow()
    }

    /// The script in use now, without waiting.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.state.borrow().clone()
    }

    /// Asks the refresh task to load the script again now (a changed PAC file, SIGHUP).
    pub fn reload(&self) {
        self.reload_now.notify_one();
    }

    /// Stops the refresh task: a reload replaced this autoproxy (requests still holding it
    /// keep evaluating its script).
    pub fn retire(&self) {
        self.retired.cancel();
    }

    /// Waits (bounded by `pac.first_load_wait`) for the first load attempt to finish.
    pub async fn first_attempt(&self) {
        let mut rx = self.attempted.subscribe();
        let _ =
            tokio::time::timeout(self.settings.first_load_wait, rx.wait_for(|done| *done)).await;
    }

    /// The script in use, after waiting (bounded) for the first load.
    pub async fn loaded(&self) -> Option<Arc<Loaded>> {
        let mut rx = self.attempted.subscribe();
        let _ =
            tokio::time::timeout(self.settings.first_load_wait, rx.wait_for(|done| *done)).await;
        self.state.borrow().clone()
    }

    /// Each `pac.source` entry's outcome in the last refresh, in order.
    pub fn attempts(&self) -> Vec<SourceAttempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Evaluates the script for `url`. Err = no script, or the script failed. The answer comes
    /// from the script in use when it is returned (see the module comment).
    pub async fn find(&self, url: &str) -> Result<(Arc<Loaded>, PacAnswer), FindError> {
        // a drop sets the state to None first: the second round then finds no script
        for _ in 0..2 {
            let drops = self.drops.load(Ordering::SeqCst);
            let found = self.find_once(url).await?;
            if self.drops.load(Ordering::SeqCst) == drops {
                return Ok(found);
            }
            tracing::debug!("the PAC script was dropped during the evaluation; asking again");
        }
        Err(FindError::plain(
            "the PAC script was taken out of service during the evaluation".into(),
        ))
    }

    async fn find_once(&self, url: &str) -> Result<(Arc<Loaded>, PacAnswer), FindError> {
        let loaded = self.loaded().await.ok_or_else(|| {
            FindError::plain(
                self.last_error()
                    .unwrap_or_else(|| "no PAC script loaded yet".into()),
            )
        })?;
        let engine = self
            .engine
            .get()
            .ok_or_else(|| FindError::plain("no PAC engine".into()))?;
        let answer = engine.find_proxy(url).await.map_err(|e| FindError {
            message: e.to_string(),
            worker_killed: match &e {
                PacError::WorkerKilled(reason) => Some(reason.label()),
                _ => None,
            },
        })?;
        Ok((loaded, answer))
    }

    /// Starts the refresh task: the script is fetched with `client` (waypost's own requests);
    /// the task ends when `stop` is cancelled.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        client: HttpClient,
        dns: Arc<dyn DnsLookup>,
        network: watch::Receiver<Arc<NetworkId>>,
        metrics: Arc<Metrics>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let me = self.clone();
        let parts = Parts {
            client,
            metrics,
            dns,
            network,
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = me.refresh_loop(&parts) => {}
                _ = stop.cancelled() => {}
                _ = me.retired.cancelled() => {}
            }
        });
    }

    async fn refresh_loop(&self, app: &Parts) {
        let mut network = app.network.clone();
        network.borrow_and_update();
        // requests still wait for the first fetch below; if it fails they get this copy
        self.load_last_good(app).await;
        loop {
            self.refresh_once(app).await;
            self.attempted.send_replace(true);
            tokio::select! {
                _ = tokio::time::sleep(self.settings.refresh) => {}
                _ = self.reload_now.notified() => {
                    tracing::info!("reloading the PAC script");
                }
                r = network.changed() => {
                    if r.is_err() {
                        tokio::time::sleep(self.settings.refresh).await;
                    } else {
                        tracing::info!("network changed: reloading the PAC script");
                    }
                }
            }
        }
    }

    /// The network changed: the engine's local addresses are probed again and its caches
    /// flushed at once (before rediscovery, which may take seconds; called by
    /// the app's network follower (`app.rs`) after the resolver was rebuilt, so no answer of the old
    /// resolver is cached again).
    pub fn network_changed(&self) {
        if let Some(engine) = self.engine.get() {
            let ips = engine.network_changed();
            tracing::info!(my_ip = ?ips, "network changed: PAC local addresses probed again, result cache flushed");
        }
    }

    /// Tries each source in order until one gives a script that loads. When none does, the
    /// installed script stays, unless it is a WPAD script of another network (dropped).
    async fn refresh_once(&self, app: &Parts) {
        let started = tokio::time::Instant::now();
        let binding = app.network.borrow().wpad_binding();
        let m = &app.metrics;
        let mut attempts = Vec::new();
        let mut won = false;
        for entry in &self.settings.sources {
            if won {
                attempts.push(SourceAttempt {
                    entry: crate::redact::url(entry),
                    outcome: "not tried",
                    reason: String::new(),
                });
                continue;
            }
            let reason = match self.obtain(app, entry).await {
                Ok((text, source, method)) => {
                    m.pac_fetches.with_label_values(&[method, "ok"]).inc();
                    let network = (entry == "auto").then(|| binding.clone());
                    let origin = Origin {
                        source: source.clone(),
                        method,
                        entry: entry.clone(),
                        network: network.clone(),
                    };
                    match self.install(app, &text, origin, SystemTime::now()).await {
                        Ok(()) => {
                            self.save_last_good(&text, entry, network.as_deref());
                            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                            won = true;
                            attempts.push(SourceAttempt {
                                entry: crate::redact::url(entry),
                                outcome: "used",
                                reason: String::new(),
                            });
                            continue;
                        }
                        Err(e) => format!("PAC script from {source} does not load: {e}"),
                    }
                }
                Err((method, e)) => {
                    m.pac_fetches.with_label_values(&[method, "error"]).inc();
                    e
                }
            };
            attempts.push(SourceAttempt {
                entry: crate::redact::url(entry),
                outcome: "failed",
                reason,
            });
        }
        if !won {
            let mut why = attempts
                .iter()
                .map(|a| format!("{}: {}", a.entry, a.reason))
                .collect::<Vec<_>>()
                .join("; ");
            let foreign = self
                .current()
                .and_then(|l| l.network.clone())
                .is_some_and(|n| n != binding);
            if foreign {
                self.drop_script();
                why.push_str(" (the WPAD script of the previous network is no longer used)");
            }
            self.failed(why);
        }
        *self.attempts.lock().unwrap_or_else(|p| p.into_inner()) = attempts;
        m.pac_discovery_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Takes the installed script out of service (requests then fall back as without one).
    fn drop_script(&self) {
        tracing::info!("dropping the WPAD-discovered PAC script: it belongs to another network");
        self.state.send_replace(None);
        // after the state: a call that sees the new count finds no script
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.installed_text
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn failed(&self, why: String) {
        let why = crate::redact::text(&why);
        tracing::warn!(error = %why, "cannot obtain a PAC script; keeping the last good one if any");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Fetches the script of one `pac.source` entry: (script, source, method) or
    /// (method, error).
    async fn obtain(
        &self,
        app: &Parts,
        entry: &str,
    ) -> Result<(String, String, &'static str), (&'static str, String)> {
        let s = &self.settings;
        let (url, method) = if entry == "auto" {
            match crate::net::wpad::discover(&self.settings.wpad).await {
                Ok(found) => {
                    let method = match found.method {
                        crate::net::wpad::Method::Dhcp => "dhcp",
                        crate::net::wpad::Method::Dns => "dns",
                    };
                    tracing::info!(url = %crate::redact::url(&found.url), method, source = %found.source, "WPAD discovery found a PAC URL");
                    (found.url, method)
                }
                Err(e) => return Err(("dns", format!("WPAD discovery: {e}"))),
            }
        } else if entry.starts_with("http://") || entry.starts_with("https://") {
            (entry.to_string(), "url")
        } else {
            (entry.to_string(), "file")
        };
        let text = fetch::fetch(&app.client, &url, s.fetch_timeout, s.max_script_size)
            .await
            .map_err(|e| (method, e))?;
        // the source as shown (logs, /explain, status): no userinfo or query
        Ok((text, crate::redact::url(&url), method))
    }

    async fn install(
        &self,
        app: &Parts,
        text: &str,
        origin: Origin,
        loaded_at: SystemTime,
    ) -> Result<(), String> {
        let Origin {
            source,
            method,
            entry,
            network,
        } = origin;
        if let Some(engine) = self.engine.get() {
            let unchanged = *self
                .installed_text
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                == text;
            if !unchanged {
                engine
                    .replace_script(text)
                    .await
                    .map_err(shown_load_error)?;
                tracing::info!(source = %source, method, "new PAC script installed; result cache flushed");
            }
        } else {
            let options = self.options(app).map_err(|e| e.to_string())?;
            // the autoproxy's own registry: a reload's new autoproxy registers afresh
            let engine = PacEngine::new(text, options, Some(&self.registry))
                .await
                .map_err(shown_load_error)?;
            let _ = self.engine.set(engine);
            tracing::info!(source = %source, method, "PAC script loaded");
        }
        *self
            .installed_text
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = text.to_string();
        app.metrics.pac_loaded_timestamp.set(
            loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        self.state.send_replace(Some(Arc::new(Loaded {
            source,
            method,
            loaded_at,
            entry,
            network,
        })));
        Ok(())
    }

    fn options(&self, app: &Parts) -> Result<PacOptions, String> {
        let s = &self.settings;
        let mut o = PacOptions::default();
        if s.workers > 0 {
            o.workers = s.workers;
        }
        o.call_timeout = s.call_timeout;
        o.max_script_bytes = s.max_script_size;
        o.cache_ttl = s.result_cache_ttl;
        o.my_ip = s.my_ip.clone();
        o.dns_backend = Some(app.dns.clone());
        o.isolation = match &s.isolation {
            PacIsolation::Threads => waypost_pac::Isolation::Threads,
            PacIsolation::Process { exe, memory_limit } => {
                let program = match exe {
                    Some(path) => path.clone(),
                    None => std::env::current_exe().map_err(|e| {
                        format!("pac.worker_exe: cannot find this executable ({e}); set it")
                    })?,
                };
                waypost_pac::Isolation::Process(waypost_pac::WorkerProcess {
                    program,
                    args: vec!["pac-worker".into()],
                    memory_limit: *memory_limit,
                })
            }
        };
        Ok(o)
    }

    /// Keeps `text` on disk with the entry it came from and, for WPAD, the network.
    fn save_last_good(&self, text: &str, entry: &str, network: Option<&str>) {
        let Some(path) = &self.settings.cache_file else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // the source entry goes beside it (as a redacted mark: a copy kept for another source is
        // not used), and the network a WPAD script was found on (it is used only there). Every
        // file is the user's alone (0600).
        let tmp = path.with_extension("tmp");
        let written = write_private(&tmp, text.as_bytes())
            .and_then(|_| std::fs::rename(&tmp, path))
            .and_then(|_| write_private(&source_file(path), source_mark(entry).as_bytes()))
            .and_then(|_| match network {
                Some(n) => write_private(&network_file(path), n.as_bytes()),
                None => match std::fs::remove_file(network_file(path)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            });
        if let Err(e) = written {
            tracing::debug!(error = %e, path = %path.display(), "cannot keep the last good PAC script on disk");
        }
    }

    /// At start-up, before the first fetch: the last good script from disk, if it was kept
    /// for one of the configured sources (and, found by WPAD, on this network). Its age is the
    /// file's.
    async fn load_last_good(&self, app: &Parts) {
        let Some(path) = &self.settings.cache_file else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let mark = std::fs::read_to_string(source_file(path)).unwrap_or_default();
        let Some(kept_for) = self
            .settings
            .sources
            .iter()
            .find(|entry| source_mark(entry) == mark)
            .cloned()
        else {
            tracing::info!(path = %path.display(), kept_for = %mark, "not using the PAC script on disk: it was kept for another source");
            return;
        };
        let network = std::fs::read_to_string(network_file(path)).ok();
        if kept_for == "auto" {
            let here = app.network.borrow().wpad_binding();
            if network.as_deref() != Some(here.as_str()) {
                tracing::info!(path = %path.display(), "not using the WPAD script on disk: it was found on another network");
                return;
            }
        }
        let saved = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let origin = Origin {
            source: path.display().to_string(),
            method: "disk",
            entry: kept_for,
            network,
        };
        match self.install(app, &text, origin, saved).await {
            Ok(()) => {
                tracing::info!(path = %path.display(), "using the last good PAC script until a fresh one is fetched")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the PAC script on disk does not load")
            }
        }
    }
}

/// Why there is no PAC answer for a request.
#[derive(Debug, Clone)]
pub struct FindError {
    pub message: String,
    /// Set when the worker process evaluating it was killed (`memory`, `deadline`, `crash`).
    pub worker_killed: Option<&'static str>,
}

impl FindError {
    fn plain(message: String) -> FindError {
        FindError {
            message,
            worker_killed: None,
        }
    }
}

impl std::fmt::Display for FindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the refresh task needs of the proxy.
struct Parts {
    client: HttpClient,
    metrics: Arc<Metrics>,
    /// The proxy's resolver, for the script's DNS functions (PAC DNS = proxy DNS).
    dns: Arc<dyn DnsLookup>,
    /// The network identity and its changes.
    network: watch::Receiver<Arc<NetworkId>>,
}

/// What `<cache file>.source` holds for `source`: the redacted URL (readable) and a hash of
/// the full one (so a changed token still counts as another source), never the URL itself.
fn source_mark(source: &str) -> String {
    use std::hash::{Hash, Hasher};
    // fixed keys: the same mark across runs (a Rust upgrade may change it: one refetch)
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    source.hash(&mut h);
    format!("{} #{:016x}", crate::redact::url(source), h.finish())
}

/// Writes `bytes` to `path` readable by the owner alone (a PAC script names internal hosts).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let mut f = o.open(path)?;
        // an existing file keeps its mode on open: narrow it
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        return f.write_all(bytes);
    }
    #[allow(unreachable_code)]
    o.open(path)?.write_all(bytes)
}

/// Where an installed script came from.
struct Origin {
    source: String,
    method: &'static str,
    entry: String,
    network: Option<String>,
}

/// `<cache file>.network`: the network a kept WPAD script was found on.
fn network_file(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".network");
    PathBuf::from(name)
}

/// `<cache file>.source`: the `pac.source` entry the kept script was fetched for.
fn source_file(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".source");
    PathBuf::from(name)
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A script's load error as waypost shows it (status, `/explain`, readiness, logs): the
/// engine's message is cut to its error class ([`crate::redact::script_message`]), since a file
/// that does not load may not be a script at all and the message quotes its text.
fn shown_load_error(e: PacError) -> String {
    match e {
        PacError::Load { message, position } => PacError::Load {
            message: crate::redact::script_message(&message),
            position,
        }
        .to_string(),
        other => other.to_string(),
    }
}

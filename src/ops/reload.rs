//! Hot reload: the current configuration generation ([`Live`]) and how it is replaced — on
//! SIGHUP, and when the config file or a file PAC changes (checked every [`WATCH_EVERY`]).
//!
//! A reload loads and validates the new config with the same loader as start-up. An invalid one
//! is refused: every problem logged (start-up's format), `waypost_config_reloads_total{outcome=
//! "invalid"}` bumped, and the current generation keeps serving. A valid one becomes the next
//! [`App`] generation, which new requests get; requests and tunnels already running keep theirs.
//! A new request on an open connection is admitted again under it ([`crate::admission`]): a
//! client the reload revoked is cut at its next request.
//! Settings bound at start-up (listen addresses, connection caps, logging, the pool's limits)
//! cannot change without a restart: a change to one is logged as such and the running value kept.
//! When only a file PAC changed, the autoproxy reloads its script (keeping the old script if
//! the new one does not load).
//!
//! Watching polls metadata rather than using inotify: it also sees editors that replace the
//! file, config maps whose symlinks are swapped, and files on network mounts, at the price of
//! up to [`WATCH_EVERY`] of delay; no new dependency.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::app::{lock, App};
use crate::config::Config;

/// How often the watched files' metadata is compared.
pub const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Loads and validates the configuration the way start-up did (file, environment, flags).
/// Err is the report of every problem, formatted as at start-up.
pub type Loader = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// The generation new requests get, and how to make the next one.
pub struct Live {
    current: RwLock<Arc<App>>,
    loader: Option<Loader>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(app: Arc<App>, loader: Option<Loader>) -> Live {
        Live {
            current: RwLock::new(app),
            loader,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The generation in use now (the lock is held only to clone the `Arc`).
    pub fn current(&self) -> Arc<App> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads the configuration (`trigger`: `sighup`, `file`, ...). Returns the new generation
    /// number, or every problem of a refused config.
    pub async fn reload(&self, trigger: &'static str) -> Result<u64, String> {
        let _one = self.reloading.lock().await;
        let old = self.current();
        let result = match &self.loader {
            None => Err("waypost was started without a configuration loader; restart it to change its configuration".to_string()),
            Some(load) => load(),
        };
        let result = match result {
            Ok(cfg) => {
                let cfg = keep_restart_only(&old.cfg, cfg);
                old.next(cfg)
            }
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(new) => {
                if let Some(ap) = &new.router.autoproxy {
                    // the new script (if any) is in place before requests are sent to it
                    ap.first_attempt().await;
                }
                new.expose_metrics();
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                old.retire(&new);
                tracing::info!(
                    trigger,
                    generation = new.generation,
                    "configuration reloaded: new requests use it; open tunnels and requests in flight finish on the previous one"
                );
                old.metrics
                    .reloads
                    .with_label_values(&[trigger, "ok"])
                    .inc();
                Ok(new.generation)
            }
            Err(problems) => {
                tracing::error!(trigger, "configuration reload refused; still serving the previous configuration: {problems}");
                old.metrics
                    .reloads
                    .with_label_values(&[trigger, "invalid"])
                    .inc();
                Err(problems)
            }
        };
        *lock(&old.ops.last_reload) = Some((SystemTime::now(), trigger, outcome.clone()));
        outcome
    }

    /// Reloads when a watched file changes, until shutdown: the config file (`config_file`)
    /// reloads everything; a file PAC of the current configuration reloads the script.
    pub fn spawn_watch(self: &Arc<Self>, config_file: Option<PathBuf>) {
        let me = self.clone();
        let stop = self.current().shutdown.clone();
        // the versions in use now: a change made before the task first runs is still seen
        let mut cfg_seen = config_file.as_deref().map(stamp);
        let mut pac_seen = pac_file(&me.current()).map(|p| (stamp(&p), p));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => {}
                }
                if let Some(path) = &config_file {
                    let now = stamp(path);
                    if cfg_seen.as_ref() != Some(&now) {
                        cfg_seen = Some(now);
                        tracing::info!(file = %path.display(), "configuration file changed: reloading");
                        let _ = me.reload("file").await;
                        pac_seen = pac_file(&me.current()).map(|p| (stamp(&p), p));
                        continue;
                    }
                }
                let pac_now = pac_file(&me.current()).map(|p| (stamp(&p), p));
                if pac_now != pac_seen {
                    if let (Some((_, path)), Some(ap)) = (&pac_now, &me.current().router.autoproxy)
                    {
                        tracing::info!(file = %path.display(), "PAC file changed: reloading the script");
                        ap.reload();
                    }
                    pac_seen = pac_now;
                }
            }
        });
    }

    /// Reloads on every SIGHUP, until shutdown.
    #[cfg(unix)]
    pub fn spawn_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let me = self.clone();
        let stop = self.current().shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = hup.recv() => if r.is_none() { return },
                }
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = me.reload("sighup").await;
            }
        });
        Ok(())
    }
}

/// What identifies a version of a file: modification time, size, inode (None: unreadable).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    })
}

/// The PAC script's path when the configuration names a file (not a URL or `auto`).
fn pac_file(app: &App) -> Option<PathBuf> {
    let src = &app.cfg.pac.as_ref()?.source;
    if src == "auto" || src.starts_with("http://") || src.starts_with("https://") {
        return None;
    }
    Some(PathBuf::from(src.strip_prefix("file://").unwrap_or(src)))
}

/// `new` with the settings bound at start-up set back to the running values; each one that
/// differs is logged as needing a restart.
fn keep_restart_only(old: &Config, mut new: Config) -> Config {
    macro_rules! restart_only {
        ($($key:literal => $($field:ident).+),* $(,)?) => {$(
            if old.$($field).+ != new.$($field).+ {
                tracing::warn!(
                    key = $key,
                    running = ?old.$($field).+,
                    configured = ?new.$($field).+,
                    "this setting changes only after a restart; keeping the running value"
                );
                new.$($field).+ = old.$($field).+.clone();
            }
        )*};
    }
    restart_only!(
        "listen" => listen,
        "admin_listen" => admin_listen,
        "socks_listen" => socks_listen,
        "max_client_connections" => max_client_connections,
        "admin_max_connections" => admin_max_connections,
        "log.level" => log.level,
        "log.format" => log.format,
        "limits.max_idle_per_server" => limits.max_idle_per_server,
        "timeouts.pool_idle" => timeouts.pool_idle,
    );
    new
}

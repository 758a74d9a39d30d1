//! CRLs for revocation checks: those loaded from `tls.crl_files`, and those fetched from the
//! `http://` distribution points named in certificates, cached by URL until the CRL's
//! nextUpdate or `crl_fetch.max_age`, whichever comes first; a failed download is
//! remembered for `crl_fetch.retry_after` so a dead server is not hammered.
//!
//! The verifier runs inside the synchronous handshake and must not block, so it only reads
//! the cache ([`CrlStore::for_cert`]). Downloads are async ([`CrlStore::fetch`]): `connect`
//! awaits them after the handshake and checks again before handing out the stream; for
//! configs used elsewhere, a miss starts a background download and the handshake is decided
//! on what is cached (status unknown -> `revocation_unknown`).
//!
//! This crate opens no HTTP connection itself: the download is a [`CrlFetch`] the proxy
//! installs ([`crate::TlsPolicy::set_crl_fetcher`]), its own HTTP client, so CRL downloads share
//! its resolver, timeouts and connect rules. Until one is installed, every download fails
//! (status unknown). The per-URL budget (`crl_fetch.timeout`) and the size cap
//! (`crl_fetch.max_bytes`) are applied here, whatever the fetcher.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use webpki::{CertRevocationList, OwnedCertRevocationList};

use crate::certinfo;
use crate::config::CrlFetchConfig;
use crate::metrics::Metrics;

type Crl = Arc<CertRevocationList<'static>>;

enum Entry {
    Ready { crl: Crl, until: Instant },
    Failed { until: Instant },
    Pending,
}

/// The answer of one [`CrlFetch::get`].
pub type CrlDownload = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Downloads a CRL: the seam where the proxy plugs in its HTTP client.
pub trait CrlFetch: Send + Sync {
    /// GET `url` (an `http://` distribution point): the body of a 200 answer, at most `max`
    /// bytes; anything else is an error whose message names what went wrong. The caller
    /// bounds the whole download by `crl_fetch.timeout`.
    fn get(&self, url: String, max: usize) -> CrlDownload;
}

/// Known CRLs: from files, and fetched ones by URL.
pub(crate) struct CrlStore {
    files: Vec<Crl>,
    fetched: Mutex<HashMap<String, Entry>>,
    fetch: Option<CrlFetchConfig>,
    /// Installed after the policy is built (the proxy's client needs the policy first); the
    /// latest installation wins.
    fetcher: Mutex<Option<Arc<dyn CrlFetch>>>,
    metrics: Metrics,
}

/// Parses a CRL in DER or PEM.
pub(crate) fn parse_crl(bytes: &[u8]) -> Result<OwnedCertRevocationList, String> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateRevocationListDer::from_pem_slice(bytes)
            .map_err(|e| format!("not a PEM CRL: {e}"))?
            .as_ref()
            .to_vec()
    } else {
        bytes.to_vec()
    };
    OwnedCertRevocationList::from_der(&der).map_err(|e| format!("not a valid CRL: {e}"))
}

impl CrlStore {
    pub(crate) fn new(
        files: Vec<OwnedCertRevocationList>,
        fetch: Option<CrlFetchConfig>,
        metrics: Metrics,
    ) -> Self {
        CrlStore {
            files: files
                .into_iter()
                .map(|c| Arc::new(CertRevocationList::from(c)))
                .collect(),
            fetched: Mutex::new(HashMap::new()),
            fetch,
            fetcher: Mutex::new(None),
            metrics,
        }
    }

    /// Routes every later download through `fetcher`.
    pub(crate) fn set_fetcher(&self, fetcher: Arc<dyn CrlFetch>) {
        *self.fetcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(fetcher);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.fetched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Distribution points of `cert_der` that have neither a fresh CRL nor a recent failure.
    pub(crate) fn missing(&self, cert_der: &[u8]) -> Vec<String> {
        if self.fetch.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
        let map = self.lock();
        certinfo::crl_urls(cert_der)
            .into_iter()
            .filter(|u| match map.get(u) {
                Some(Entry::Ready { until, .. }) | Some(Entry::Failed { until }) => *until <= now,
                Some(Entry::Pending) | None => true,
            })
            .collect()
    }

    /// The CRLs to check `cert_der` against. With `defer`, `None` when some distribution point
    /// is not cached yet (the caller checks later); without, a miss starts a background fetch.
    pub(crate) fn for_cert(self: &Arc<Self>, cert_der: &[u8], defer: bool) -> Option<Vec<Crl>> {
        let missing = self.missing(cert_der);
        if !missing.is_empty() {
            if defer {
                return None;
            }
            self.spawn_fetch(missing);
        }
        let now = Instant::now();
        let map = self.lock();
        let fetched = map.values().filter_map(|e| match e {
            Entry::Ready { crl, until } if *until > now => Some(crl.clone()),
            _ => None,
        });
        Some(self.files.iter().cloned().chain(fetched).collect())
    }

    fn spawn_fetch(self: &Arc<Self>, urls: Vec<String>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut todo = Vec::new();
        {
            let mut map = self.lock();
            for u in urls {
                if !matches!(map.get(&u), Some(Entry::Pending)) {
                    map.insert(u.clone(), Entry::Pending);
                    todo.push(u);
                }
            }
        }
        if !todo.is_empty() {
            let me = self.clone();
            rt.spawn(async move { me.fetch(&todo).await });
        }
    }

    /// Downloads `urls` concurrently (each within the configured timeout) into the cache.
    pub(crate) async fn fetch(&self, urls: &[String]) {
        let Some(cfg) = self.fetch.clone() else {
            return;
        };
        let fetcher = self
            .fetcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut tasks = tokio::task::JoinSet::new();
        for url in urls.iter().cloned() {
            let download = fetcher.as_ref().map(|f| f.get(url.clone(), cfg.max_bytes));
            let (timeout, max) = (cfg.timeout, cfg.max_bytes);
            tasks.spawn(async move {
                let res = match download {
                    None => Err("no CRL downloader is installed".to_string()),
                    Some(d) => match tokio::time::timeout(timeout, d).await {
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                        Ok(Ok(body)) if body.len() > max => {
                            Err(format!("CRL larger than {max} bytes"))
                        }
                        Ok(r) => r,
                    },
                };
                (
                    url,
                    res.and_then(|b| parse_crl(&b).map(|c| (c, certinfo::crl_next_update(&b)))),
                )
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok((url, res)) = joined else { continue };
            let now = Instant::now();
            let entry = match res {
                Ok((crl, next_update)) => {
                    self.metrics.crl_fetch("ok");
                    let mut ttl = cfg.max_age;
                    if let Some(next) = next_update {
                        let left = next - unix_now();
                        ttl = ttl.min(Duration::from_secs(u64::try_from(left).unwrap_or(0)));
                    }
                    Entry::Ready {
                        crl: Arc::new(CertRevocationList::from(crl)),
                        until: now + ttl,
                    }
                }
                Err(e) => {
                    self.metrics.crl_fetch("error");
                    tracing::warn!(url = %url, error = %e, "CRL download failed");
                    Entry::Failed {
                        until: now + cfg.retry_after,
                    }
                }
            };
            self.lock().insert(url, entry);
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

//! `TlsPolicy`: the validated TLS configuration turned into rustls client configs, plus the
//! tunnel rules (SNI, CONNECT ports) and the interception CA. Built once at start; cheap to
//! clone and share.
//!
//! The settings of one connection ([`ConnSettings`]: version, accepted defects, client
//! certificate, revocation) are the caller's, decided per destination; [`TlsPolicy::settings_for`]
//! reads the `[tls]` lists alone (first matching entry) for callers without scopes. Client
//! configs are cached per distinct (settings, ALPN, CRL mode), not per host, so every host with
//! the same treatment shares one config and one session-resumption cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::Registry;
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};

use crate::config::{self, DefectSet, MinVersion, Problems, Settings, TlsConfig, TlsConfigError};
use crate::intercept::Ca;
use crate::material::{self, ClientCert};
use crate::metrics::Metrics;
use crate::pattern::any_matches;
use crate::revocation::{CrlFetch, CrlStore};
use crate::settings::ConnSettings;
use crate::verifier::{CrlMode, PolicyVerifier, VerifyCore};

/// Distinct client configs kept before the cache is reset (ALPN lists come from clients).
const MAX_CONFIGS: usize = 256;

type ConfigKey = (ConnSettings, Vec<Vec<u8>>, CrlMode);

/// The TLS policy for every connection waypost originates.
#[derive(Clone, Debug)]
pub struct TlsPolicy {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    core: Arc<VerifyCore>,
    /// TLS 1.2 and 1.3, and TLS 1.3 alone.
    base: ClientConfig,
    base13: ClientConfig,
    global: ConnSettings,
    client_certs: Vec<Option<ClientCert>>,
    configs: Mutex<HashMap<ConfigKey, Arc<ClientConfig>>>,
    intercept: Option<Arc<Ca>>,
    intercept_enabled: bool,
    connect_ports: Vec<u16>,
    require_sni: bool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Presents one fixed certificate whenever the server asks.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl TlsPolicy {
    /// Validates `cfg`, reads every file it names and registers metrics into `registry`.
    /// Every problem is reported at once, each under its key path.
    pub fn new(cfg: &TlsConfig, registry: Option<&Registry>) -> Result<TlsPolicy, TlsConfigError> {
        let mut problems = Problems::default();
        let settings = config::validate(cfg, &mut problems);
        let metrics = match registry.map(Metrics::register) {
            None => Metrics::detached(),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                problems.push(
                    "metrics",
                    format!("cannot register the waypost_tls_* metrics: {e}"),
                );
                Metrics::detached()
            }
        };
        let roots = material::trust_anchors(cfg, &mut problems);
        let crl_files = material::crl_files(cfg, &mut problems);
        let client_certs = material::client_certs(cfg, &mut problems);
        let intercept = match cfg.intercept.enabled && !cfg.intercept.ca_dir.as_os_str().is_empty()
        {
            false => None,
            true => match Ca::load_with(
                &cfg.intercept.ca_dir,
                cfg.intercept.cert_ttl,
                cfg.intercept.cache_size,
                metrics.clone(),
            ) {
                Ok(ca) => Some(Arc::new(ca)),
                Err(e) => {
                    let mut msg = e.to_string();
                    if let Some(src) = std::error::Error::source(&e) {
                        msg = format!("{msg}: {src}");
                    }
                    problems.push(
                        "tls.intercept.ca_dir",
                        format!(
                            "{msg} (create the CA with `waypost ca init --dir {}`)",
                            cfg.intercept.ca_dir.display()
                        ),
                    );
                    None
                }
            },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let core = Arc::new(VerifyCore {
            roots,
            crls: Arc::new(CrlStore::new(
                crl_files,
                cfg.crl_fetch.enabled.then(|| cfg.crl_fetch.clone()),
                metrics.clone(),
            )),
            check_revocation: cfg.check_revocation,
            unknown_passes: settings.revocation_unknown_passes,
            metrics,
            provider: provider.clone(),
        });
        let both: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        let base = base_config(provider.clone(), both, &core);
        let base13 = base_config(provider, &[&rustls::version::TLS13], &core);
        if !problems.0.is_empty() {
            return Err(TlsConfigError {
                problems: problems.0,
            });
        }
        let bad_version = |e: rustls::Error| TlsConfigError {
            problems: vec![config::Problem {
                path: "tls.min_version".into(),
                message: e.to_string(),
            }],
        };
        let (base, base13) = (base.map_err(bad_version)?, base13.map_err(bad_version)?);
        let global = ConnSettings {
            min_version: settings.min_version,
            allow: Arc::new(DefectSet::new()),
            client_cert: None,
            check_revocation: cfg.check_revocation,
        };
        for (i, c) in client_certs.iter().enumerate() {
            if let Some(na) = c.as_ref().and_then(|c| c.not_after) {
                core.metrics
                    .client_cert_expiry(i, crate::verifier::days_until(na));
            }
        }
        Ok(TlsPolicy {
            inner: Arc::new(Inner {
                settings,
                core,
                base,
                base13,
                global,
                client_certs,
                configs: Mutex::new(HashMap::new()),
                intercept,
                intercept_enabled: cfg.intercept.enabled,
                connect_ports: cfg.connect_ports.clone(),
                require_sni: cfg.sni_rules.require_sni,
            }),
        })
    }

    /// The settings of `[tls]` alone, for any host.
    pub fn global_settings(&self) -> &ConnSettings {
        &self.inner.global
    }

    /// The settings for `host` from the `[tls]` lists read alone: the first matching
    /// `tls.exceptions` entry, the first matching `tls.client_certs` entry. (The proxy loads
    /// those lists as scopes instead and decides per option; this is for callers without.)
    pub fn settings_for(&self, host: &str) -> ConnSettings {
        let s = &self.inner.settings;
        let mut out = self.inner.global.clone();
        if let Some((_, allow)) = s.exceptions.iter().find(|(h, _)| any_matches(h, host)) {
            out.allow = allow.clone();
        }
        out.client_cert = s
            .client_cert_hosts
            .iter()
            .position(|hosts| any_matches(hosts, host));
        out
    }

    /// The rustls client config for connections to `host` offering `alpn`, under
    /// [`TlsPolicy::settings_for`]. Revocation is decided on cached CRLs (a miss starts a
    /// background download); prefer [`crate::connect`], which waits for missing CRLs.
    pub fn client_config(&self, host: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        self.config_for(&self.settings_for(host), alpn, CrlMode::Inline)
    }

    pub(crate) fn config_for(
        &self,
        settings: &ConnSettings,
        alpn: &[&[u8]],
        mode: CrlMode,
    ) -> Arc<ClientConfig> {
        let key: ConfigKey = (
            settings.clone(),
            alpn.iter().map(|p| p.to_vec()).collect(),
            mode,
        );
        let mut map = self
            .inner
            .configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        if map.len() >= MAX_CONFIGS {
            map.clear();
        }
        let mut cfg = match settings.min_version {
            MinVersion::Tls12 => self.inner.base.clone(),
            MinVersion::Tls13 => self.inner.base13.clone(),
        };
        cfg.dangerous()
            .set_certificate_verifier(Arc::new(self.verifier(settings, mode)));
        if let Some(Some(cc)) = settings
            .client_cert
            .and_then(|i| self.inner.client_certs.get(i))
        {
            cfg.client_auth_cert_resolver = Arc::new(FixedCert(cc.key.clone()));
        }
        cfg.alpn_protocols = key.1.clone();
        let cfg = Arc::new(cfg);
        map.insert(key, cfg.clone());
        cfg
    }

    pub(crate) fn verifier(&self, settings: &ConnSettings, mode: CrlMode) -> PolicyVerifier {
        PolicyVerifier::new(
            self.inner.core.clone(),
            (*settings.allow).clone(),
            settings.check_revocation,
            mode,
        )
    }

    /// How many client certificates were loaded (`tls.client_certs`, then the scopes').
    pub fn client_cert_count(&self) -> usize {
        self.inner.client_certs.len()
    }

    /// Routes CRL downloads through `fetcher` (the proxy's HTTP client), for this policy and
    /// every clone of it; the latest call wins. Until then, downloads fail (status unknown).
    /// `fetcher` must not own this policy (e.g. hold a `Weak` to what does), or neither is freed.
    pub fn set_crl_fetcher(&self, fetcher: Arc<dyn CrlFetch>) {
        self.inner.core.crls.set_fetcher(fetcher);
    }

    /// Downloads the CRLs named by `cert_der` that are not cached (no-op when fetching is off).
    pub async fn prefetch_crls(&self, cert_der: &[u8]) {
        let missing = self.inner.core.crls.missing(cert_der);
        if !missing.is_empty() {
            self.inner.core.crls.fetch(&missing).await;
        }
    }

    /// Whether a tunnel whose ClientHello carried `sni` may pass (tunnels not intercepted).
    pub fn sni_allowed(&self, sni: Option<&str>) -> bool {
        let s = &self.inner.settings;
        match sni {
            None => !self.inner.require_sni && s.sni_allow.is_empty(),
            Some(name) => {
                !any_matches(&s.sni_deny, name)
                    && (s.sni_allow.is_empty() || any_matches(&s.sni_allow, name))
            }
        }
    }

    /// Whether a CONNECT to `port` is allowed (`tls.connect_ports`, empty = any).
    pub fn port_allowed(&self, port: u16) -> bool {
        self.inner.connect_ports.is_empty() || self.inner.connect_ports.contains(&port)
    }

    /// Whether CONNECT tunnels to `host` are intercepted.
    pub fn intercepts(&self, host: &str) -> bool {
        self.inner.intercept_enabled
            && self.inner.intercept.is_some()
            && any_matches(&self.inner.settings.intercept_hosts, host)
    }

    /// The interception CA, when interception is enabled.
    pub fn intercept_ca(&self) -> Option<&Arc<Ca>> {
        self.inner.intercept.as_ref()
    }

    /// The TLS metrics (for counting handshakes made outside [`crate::connect`]).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.core.metrics
    }
}

fn base_config(
    provider: Arc<CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    core: &Arc<VerifyCore>,
) -> Result<ClientConfig, rustls::Error> {
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PolicyVerifier::new(
            core.clone(),
            DefectSet::new(),
            core.check_revocation,
            CrlMode::Inline,
        )))
        .with_no_client_auth();
    cfg.resumption = Resumption::in_memory_sessions(1024);
    Ok(cfg)
}

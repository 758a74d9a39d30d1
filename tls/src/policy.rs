//! `TlsPolicy`: the validated TLS configuration turned into rustls client configs, plus the
//! tunnel rules (SNI, CONNECT ports) and the interception CA. Built once at start; cheap to
//! clone and share.
//!
//! Client configs are cached per distinct (accepted defects, client certificate, ALPN, CRL
//! mode), not per host, so every host with the same treatment shares one config and one
//! session-resumption cache.

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
use crate::verifier::{CrlMode, PolicyVerifier, VerifyCore};

/// Distinct client configs kept before the cache is reset (ALPN lists come from clients).
const MAX_CONFIGS: usize = 256;

type ConfigKey = (DefectSet, Option<usize>, Vec<Vec<u8>>, CrlMode);

/// The TLS policy for every connection waypost originates.
#[derive(Clone, Debug)]
pub struct TlsPolicy {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    core: Arc<VerifyCore>,
    base: ClientConfig,
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
        let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
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
        let base = base_config(provider, versions, &core);
        if !problems.0.is_empty() {
            return Err(TlsConfigError {
                problems: problems.0,
            });
        }
        let base = base.map_err(|e| TlsConfigError {
            problems: vec![config::Problem {
                path: "tls.min_version".into(),
                message: e.to_string(),
            }],
        })?;
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
                client_certs,
                configs: Mutex::new(HashMap::new()),
                intercept,
                intercept_enabled: cfg.intercept.enabled,
                connect_ports: cfg.connect_ports.clone(),
                require_sni: cfg.sni_rules.require_sni,
            }),
        })
    }

    /// The defects accepted for `host` (union of every matching exception).
    pub fn exceptions_for(&self, host: &str) -> DefectSet {
        let mut set = DefectSet::new();
        for (hosts, allow) in &self.inner.settings.exceptions {
            if any_matches(hosts, host) {
                set.extend(allow.iter().copied());
            }
        }
        set
    }

    /// Index of the `tls.client_certs` entry presented to `host`, if any (first match).
    pub fn client_cert_for(&self, host: &str) -> Option<usize> {
        self.inner
            .settings
            .client_cert_hosts
            .iter()
            .position(|hosts| any_matches(hosts, host))
    }

    /// The rustls client config for connections to `host` offering `alpn`. Revocation is
    /// decided on cached CRLs (a miss starts a background download); prefer [`crate::connect`],
    /// which waits for missing CRLs.
    pub fn client_config(&self, host: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        self.config_for(host, alpn, CrlMode::Inline)
    }

    pub(crate) fn config_for(
        &self,
        host: &str,
        alpn: &[&[u8]],
        mode: CrlMode,
    ) -> Arc<ClientConfig> {
        let key: ConfigKey = (
            self.exceptions_for(host),
            self.client_cert_for(host),
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
        let mut cfg = self.inner.base.clone();
        cfg.dangerous()
            .set_certificate_verifier(Arc::new(PolicyVerifier::new(
                self.inner.core.clone(),
                key.0.clone(),
                mode,
            )));
        // The index comes from client_cert_hosts, built from the same config list.
        if let Some(Some(cc)) = key.1.and_then(|i| self.inner.client_certs.get(i)) {
            cfg.client_auth_cert_resolver = Arc::new(FixedCert(cc.key.clone()));
        }
        cfg.alpn_protocols = key.2.clone();
        let cfg = Arc::new(cfg);
        map.insert(key, cfg.clone());
        cfg
    }

    pub(crate) fn verifier(&self, host: &str) -> PolicyVerifier {
        PolicyVerifier::new(
            self.inner.core.clone(),
            self.exceptions_for(host),
            CrlMode::Inline,
        )
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

    pub(crate) fn checks_revocation(&self) -> bool {
        self.inner.core.check_revocation
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
            CrlMode::Inline,
        )))
        .with_no_client_auth();
    cfg.resumption = Resumption::in_memory_sessions(1024);
    Ok(cfg)
}

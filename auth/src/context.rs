//! The shared [`Authenticator`] (credentials, policy, lockout, scheme memory, metrics,
//! mechanism factory: one per proxy process or per identity) and the per-request
//! [`AuthContext`] that names the upstream proxy and carries a handshake across a
//! reconnect. Decides up front whether credentials may go to a proxy at all.

use std::sync::{Arc, Mutex};

use prometheus::Registry;
use tokio::time::Instant;

use crate::config::{AuthConfig, ConfigErrors, ConfigProblem, SchemeChoice};
use crate::credentials::Credentials;
use crate::handshake::{Handshake, HandshakeParams, RejectReason};
use crate::live::LiveCredentials;
use crate::mech::{CredentialMechanisms, MechanismFactory};
use crate::metrics::AuthMetrics;
use crate::policy::{Grant, Lockout, Policy, Speaker, Withheld};
use crate::scheme::{SchemeMemory, Usable};
use crate::spn::{host_is_ip, SpnRule};

/// An upstream proxy as configured (or as chosen by PAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Host name as configured: the policy and the pool use it, never a resolved address.
    pub host: String,
    pub port: u16,
    /// The host's canonical name as DNS gave it (CNAMEs followed), when the caller looked it
    /// up: the SPN's host when `canonicalize_spn` is on.
    pub canonical: Option<String>,
    /// DER of the proxy's TLS end-entity certificate when we speak TLS to the proxy
    /// (channel bindings); `None` for plain-HTTP proxies.
    pub tls_cert_der: Option<Vec<u8>>,
    /// What the caller decided may go to this proxy ([`crate::policy::Policy::grant`]);
    /// `None`: the autologon policy's level alone decides (the proxy as the user named it).
    pub grant: Option<Grant>,
}

impl ProxyTarget {
    pub fn new(host: &str, port: u16) -> Self {
        ProxyTarget {
            host: host.to_string(),
            port,
            canonical: None,
            tls_cert_der: None,
            grant: None,
        }
    }

    /// With the caller's decision of what may be sent.
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = Some(grant);
        self
    }

    /// With the host's canonical name (see [`Authenticator::wants_canonical_name`]).
    pub fn with_canonical_name(mut self, name: String) -> Self {
        self.canonical = Some(name);
        self
    }

    pub fn with_tls_cert(mut self, der: Vec<u8>) -> Self {
        self.tls_cert_der = Some(der);
        self
    }

    /// `host:port`, the key of per-proxy state.
    pub fn key(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Everything authentication shares across requests.
pub struct Authenticator {
    scheme: SchemeChoice,
    max_attempts: u32,
    credentials: Arc<LiveCredentials>,
    policy: Policy,
    spn: SpnRule,
    lockout: Arc<Lockout>,
    memory: Arc<SchemeMemory>,
    factory: Arc<dyn MechanismFactory>,
    metrics: Option<AuthMetrics>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("identity", &self.identity())
            .field("scheme", &self.scheme)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Authenticator {
    /// From a config and the process environment; every problem is reported at once.
    pub fn from_config(
        cfg: &AuthConfig,
        registry: Option<&Registry>,
    ) -> Result<Self, ConfigErrors> {
        cfg.validate()?;
        let creds = Credentials::load(cfg, &|k| std::env::var(k).ok()).map_err(|errs| {
            ConfigErrors(
                errs.into_iter()
                    .map(|e| ConfigProblem {
                        key: e.key.to_string(),
                        message: e.message,
                    })
                    .collect(),
            )
        })?;
        Ok(Self::new(creds, cfg, registry)?.follow_password_file(cfg))
    }

    /// The config's password file, re-read before a handshake when it changed.
    fn follow_password_file(mut self, cfg: &AuthConfig) -> Self {
        if cfg.password_file.is_some() {
            let creds = self.credentials.current();
            let live = Arc::new(LiveCredentials::new(
                (*creds).clone(),
                cfg.password_file.clone(),
            ));
            self.factory = Arc::new(CredentialMechanisms::new(live.clone()));
            self.credentials = live;
        }
        self
    }

    /// With credentials gathered elsewhere (CLI flags, tests).
    pub fn new(
        credentials: Credentials,
        cfg: &AuthConfig,
        registry: Option<&Registry>,
    ) -> Result<Self, ConfigErrors> {
        let metrics = match registry {
            Some(r) => Some(AuthMetrics::new(r).map_err(|e| {
                ConfigErrors(vec![ConfigProblem {
                    key: "metrics".into(),
                    message: e.to_string(),
                }])
            })?),
            None => None,
        };
        let credentials = Arc::new(LiveCredentials::new(credentials, None));
        Ok(Authenticator {
            scheme: cfg.scheme,
            max_attempts: cfg.max_attempts.max(1),
            factory: Arc::new(CredentialMechanisms::new(credentials.clone())),
            credentials,
            policy: Policy {
                level: cfg.policy,
                allow_proxies: cfg.allow_proxies.clone(),
                intranet_suffixes: cfg.intranet_suffixes.clone(),
                network_trust: cfg.network_trust,
            },
            spn: SpnRule {
                include_port: cfg.spn_include_port,
                override_spn: cfg.spn_override.clone(),
                canonicalize: cfg.canonicalize_spn,
            },
            lockout: Arc::new(Lockout::new(cfg.lockout_after, cfg.lockout_for)),
            memory: Arc::new(SchemeMemory::new()),
            metrics,
        })
    }

    /// Counts into `metrics` (those of the authenticator this one replaces on a reload).
    pub fn with_metrics(mut self, metrics: AuthMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces the mechanisms (tests, other backends).
    pub fn with_factory(mut self, factory: Arc<dyn MechanismFactory>) -> Self {
        self.factory = factory;
        self
    }

    /// Whether the SPN for a proxy named `host` would use its canonical name, so the caller
    /// should look it up (canonicalisation on, no override, not an address).
    pub fn wants_canonical_name(&self, host: &str) -> bool {
        self.spn.wants_canonical_name(host)
    }

    /// The non-secret identity for pool keys (`EXAMPLE\user`, `kerberos:ccache:default`).
    pub fn identity(&self) -> String {
        self.credentials.current().identity()
    }

    /// The credentials as they are now.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials.current()
    }

    /// The password file the password is re-read from, if any.
    pub fn password_file(&self) -> Option<&std::path::Path> {
        self.credentials.password_file()
    }

    pub fn metrics(&self) -> Option<&AuthMetrics> {
        self.metrics.as_ref()
    }

    pub fn memory(&self) -> &SchemeMemory {
        &self.memory
    }

    pub fn lockout(&self) -> &Lockout {
        &self.lockout
    }

    /// The proxy sent a request on an authenticated pooled connection (no handshake).
    pub fn connection_reused(&self) {
        if let Some(m) = &self.metrics {
            m.reused.inc();
        }
    }

    /// May credentials go to this proxy host at all?
    pub fn allows(&self, host: &str) -> bool {
        self.policy.allows(host)
    }

    /// What may go to the proxy `host` named by `speaker` on a `proven` network (or not).
    pub fn grant(&self, host: &str, speaker: Speaker, proven: bool) -> Grant {
        self.policy.grant(host, speaker, proven)
    }

    /// Whether trust in proxies the network names depends on the network's proof.
    pub fn needs_network_proof(&self) -> bool {
        self.policy.network_trust == crate::policy::NetworkTrust::Proof
            && self.policy.level != crate::policy::AutologonPolicy::Low
    }

    /// The ticket cache the network proof reads: this identity's (`Some(None)`: the default
    /// cache); `None` when the identity has no ticket cache (password, keytab without SSO).
    pub fn proof_ccache(&self) -> Option<Option<String>> {
        match self.credentials().kerberos_source()? {
            crate::credentials::KerberosSource::TicketCache(c) => Some(c),
            _ => None,
        }
    }

    pub fn spn(&self, proxy: &ProxyTarget) -> String {
        self.spn
            .spn(&proxy.host, proxy.canonical.as_deref(), proxy.port)
    }

    /// Mechanisms usable for `proxy` with our credentials and the configured scheme. Basic
    /// under `scheme = "auto"` only over TLS to the proxy (an HTTPS proxy): over plain HTTP it
    /// must be chosen explicitly with `scheme = "basic"`.
    pub fn usable(&self, proxy: &ProxyTarget) -> Usable {
        let c = self.credentials.current();
        let s = self.scheme;
        let tls = proxy.tls_cert_der.is_some();
        let kerberos_only = proxy.grant == Some(Grant::KerberosOnly);
        Usable {
            kerberos: matches!(s, SchemeChoice::Auto | SchemeChoice::Negotiate)
                && c.can_kerberos()
                && (self.spn.override_spn.is_some() || !host_is_ip(&proxy.host)),
            ntlm: !kerberos_only
                && matches!(
                    s,
                    SchemeChoice::Auto | SchemeChoice::Negotiate | SchemeChoice::Ntlm
                )
                && c.can_ntlm(),
            basic: !kerberos_only
                && c.can_basic()
                && (s == SchemeChoice::Basic || (s == SchemeChoice::Auto && tls)),
            negotiate_only: s == SchemeChoice::Negotiate,
            basic_needs_tls: !kerberos_only && c.can_basic() && s == SchemeChoice::Auto && !tls,
        }
    }

    /// A new handshake for one request to `proxy`.
    pub fn handshake(&self, proxy: &ProxyTarget, preemptive: bool) -> Handshake {
        let identity = self.identity();
        if self.credentials.refresh() {
            // a new password deserves a try at once, not after the lockout's cool-down
            self.lockout.record_success(&identity);
        }
        let allowed = match proxy.grant {
            Some(g) => g.allows_any(),
            None => self.policy.allows(&proxy.host),
        };
        let refuse = if proxy.grant == Some(Grant::Withheld(Withheld::UnprovenNetwork)) {
            Some(RejectReason::UntrustedNetwork)
        } else if !allowed {
            Some(RejectReason::PolicyRefused)
        } else if self.lockout.locked(&identity).is_some() {
            Some(RejectReason::LockedOut)
        } else {
            None
        };
        let params = HandshakeParams {
            proxy_key: proxy.key(),
            usable: self.usable(proxy),
            spn: self.spn(proxy),
            channel_bindings: proxy
                .tls_cert_der
                .as_deref()
                .map(crate::cbt::tls_server_end_point),
            max_attempts: self.max_attempts,
            identity,
            preemptive,
            refuse,
        };
        Handshake::new(
            params,
            self.factory.clone(),
            self.memory.clone(),
            self.lockout.clone(),
        )
    }
}

/// One request's view: which proxy, and a handshake carried over a reconnect.
#[derive(Debug)]
pub struct AuthContext {
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) proxy: ProxyTarget,
    pub(crate) reused_connection: bool,
    pub(crate) carried: Mutex<Option<(Handshake, Instant)>>,
}

impl AuthContext {
    pub fn new(auth: Arc<Authenticator>, proxy: ProxyTarget) -> Self {
        AuthContext {
            auth,
            proxy,
            reused_connection: false,
            carried: Mutex::new(None),
        }
    }

    /// The connection is a pooled, already authenticated one: send no pre-emptive
    /// connection-bound token (Basic is still sent; it is per request).
    pub fn on_reused_connection(mut self) -> Self {
        self.reused_connection = true;
        self
    }

    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    pub fn proxy(&self) -> &ProxyTarget {
        &self.proxy
    }

    /// Whether a handshake waits for the caller's reconnect.
    pub fn has_carried_handshake(&self) -> bool {
        self.carried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Grant, Withheld};

    fn with_password(scheme: SchemeChoice) -> Authenticator {
        let cfg = AuthConfig {
            scheme,
            ..AuthConfig::default()
        };
        let creds = Credentials::with_password("EXAMPLE\\alice", "pw");
        Authenticator::new(creds, &cfg, None).unwrap()
    }

    #[test]
    fn a_kerberos_only_grant_leaves_ntlm_and_basic_unusable_and_a_withheld_one_refuses() {
        let proxy = ProxyTarget::new("proxy.corp.example", 8080);
        for scheme in [SchemeChoice::Ntlm, SchemeChoice::Basic] {
            let auth = with_password(scheme);
            let all = auth.usable(&proxy.clone().with_grant(Grant::All));
            assert!(all.ntlm || all.basic, "{scheme:?}: {all:?}");
            let kerberos = auth.usable(&proxy.clone().with_grant(Grant::KerberosOnly));
            assert!(
                !kerberos.ntlm && !kerberos.basic && !kerberos.basic_needs_tls,
                "{kerberos:?}"
            );
        }
        let auth = with_password(SchemeChoice::Auto);
        let hs = auth.handshake(
            &proxy
                .clone()
                .with_grant(Grant::Withheld(Withheld::UnprovenNetwork)),
            true,
        );
        assert_eq!(hs.refused(), Some(&RejectReason::UntrustedNetwork));
        assert_eq!(
            RejectReason::UntrustedNetwork.code(),
            "auth-untrusted-proxy"
        );
        let hs = auth.handshake(&proxy.with_grant(Grant::Withheld(Withheld::Policy)), true);
        assert_eq!(hs.refused(), Some(&RejectReason::PolicyRefused));
    }
}

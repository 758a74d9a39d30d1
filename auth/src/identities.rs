//! Which identity authenticates to which proxy: the global `[auth]` identity and the
//! `[[auth.proxies]]` entries, each an [`Authenticator`] of its own (credentials, scheme
//! memory, lockout), chosen by the proxy's host and port as configured or given by PAC.
//!
//! Matching: the entries are tried in file order and the first whose [`ProxyPattern`] fits
//! wins; no fit means the global identity. The autologon policy is the same for all of
//! them and is asked first: a proxy it refuses gets no credentials whichever entry fits.
//! This module decides; it does no I/O beyond what building the authenticators reads.

use std::sync::Arc;

use prometheus::Registry;

use crate::config::{AuthConfig, ConfigErrors, ConfigProblem};
use crate::context::Authenticator;
use crate::metrics::AuthMetrics;

pub use crate::pattern::ProxyPattern;

/// Every identity of one configuration: the default and the per-proxy ones, in order.
#[derive(Debug)]
pub struct Authenticators {
    default: Arc<Authenticator>,
    proxies: Vec<(ProxyPattern, Arc<Authenticator>)>,
}

impl Authenticators {
    /// From the `[auth]` table and the process environment (which fills the default
    /// identity only); every problem of every entry is reported at once. The metrics are
    /// registered into `registry` once and shared by all identities.
    pub fn from_config(
        cfg: &AuthConfig,
        registry: Option<&Registry>,
    ) -> Result<Self, ConfigErrors> {
        cfg.validate()?;
        let default = Authenticator::from_config(cfg, registry)?;
        let metrics = default.metrics().cloned();
        let mut problems = Vec::new();
        let mut proxies = Vec::new();
        for (i, entry) in cfg.proxies.iter().enumerate() {
            let entry_cfg = entry.as_auth_config(cfg);
            let built = ProxyPattern::parse(&entry.matches)
                .map_err(|e| vec![("match".to_string(), e)])
                .and_then(|pattern| {
                    let creds = crate::credentials::Credentials::load(&entry_cfg, &|_| None)
                        .map_err(|errs| {
                            errs.into_iter()
                                .map(|e| (e.key.to_string(), e.message))
                                .collect::<Vec<_>>()
                        })?;
                    Authenticator::new(creds, &entry_cfg, None)
                        .map(|a| (pattern, a))
                        .map_err(|e| e.0.into_iter().map(|p| (p.key, p.message)).collect())
                });
            match built {
                Ok((pattern, auth)) => {
                    let auth = match &metrics {
                        Some(m) => auth.with_metrics(m.clone()),
                        None => auth,
                    };
                    proxies.push((pattern, Arc::new(auth)));
                }
                Err(errs) => {
                    problems.extend(errs.into_iter().map(|(key, message)| ConfigProblem {
                        key: format!("proxies[{i}].{key}"),
                        message,
                    }))
                }
            }
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Authenticators {
            default: Arc::new(default),
            proxies,
        })
    }

    /// One identity for every proxy (tests, `auth test`).
    pub fn single(auth: Arc<Authenticator>) -> Self {
        Authenticators {
            default: auth,
            proxies: Vec::new(),
        }
    }

    /// Counts into `metrics` (those of the set this one replaces on a reload).
    pub fn with_metrics(mut self, metrics: AuthMetrics) -> Self {
        let swap = |a: Arc<Authenticator>| match Arc::try_unwrap(a) {
            Ok(a) => Arc::new(a.with_metrics(metrics.clone())),
            Err(shared) => shared,
        };
        self.default = swap(self.default);
        self.proxies = self
            .proxies
            .into_iter()
            .map(|(p, a)| (p, swap(a)))
            .collect();
        self
    }

    /// The identity for the proxy `host:port`: the first fitting entry's, else the default.
    pub fn for_proxy(&self, host: &str, port: u16) -> &Arc<Authenticator> {
        self.proxies
            .iter()
            .find(|(p, _)| p.matches(host, port))
            .map_or(&self.default, |(_, a)| a)
    }

    /// The identity for the proxy `host:port` named by `speaker`, on a network that has
    /// (`proven`) or has not proven itself, and what may be sent to it: the identity is `None`
    /// when nothing may (the pool key's identity).
    pub fn grant_for(
        &self,
        host: &str,
        port: u16,
        speaker: crate::policy::Speaker,
        proven: bool,
    ) -> (Option<String>, crate::policy::Grant) {
        let auth = self.for_proxy(host, port);
        let grant = auth.grant(host, speaker, proven);
        (grant.allows_any().then(|| auth.identity()), grant)
    }

    /// The global `[auth]` identity.
    pub fn default_identity(&self) -> &Arc<Authenticator> {
        &self.default
    }

    /// `(match pattern, authenticator)` for each `[[auth.proxies]]` entry, in order.
    pub fn per_proxy(&self) -> impl Iterator<Item = (&str, &Arc<Authenticator>)> {
        self.proxies.iter().map(|(p, a)| (p.as_str(), a))
    }

    /// Every authenticator: the default first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Authenticator>> {
        std::iter::once(&self.default).chain(self.proxies.iter().map(|(_, a)| a))
    }

    // What the rest of the proxy asks of "the" authenticator, answered for the default
    // identity (readiness, doctor, status) or shared by all (policy, metrics).

    /// The default identity's non-secret name.
    pub fn identity(&self) -> String {
        self.default.identity()
    }

    /// The default identity's credentials.
    pub fn credentials(&self) -> Arc<crate::Credentials> {
        self.default.credentials()
    }

    /// May credentials go to this proxy host at all (the policy is global)?
    pub fn allows(&self, host: &str) -> bool {
        self.default.allows(host)
    }

    /// The metrics all identities count into.
    pub fn metrics(&self) -> Option<&AuthMetrics> {
        self.default.metrics()
    }

    pub fn connection_reused(&self) {
        self.default.connection_reused();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, host: &str, port: u16) -> bool {
        ProxyPattern::parse(p).unwrap().matches(host, port)
    }

    #[test]
    fn patterns_match_host_and_port_as_documented() {
        assert!(m("proxy-a.corp:8080", "PROXY-A.corp.", 8080));
        assert!(!m("proxy-a.corp:8080", "proxy-a.corp", 3128));
        assert!(m("proxy-a.corp", "proxy-a.corp", 3128));
        assert!(m("*.corp", "a.b.corp", 1));
        assert!(!m("*.corp", "corp", 1));
        assert!(!m("*.corp", "evilcorp", 1));
        assert!(m("*:3128", "anything.example", 3128));
        assert!(!m("*:3128", "anything.example", 3129));
        assert!(m("*", "x", 9));
        assert!(m("[::1]:3128", "[::1]", 3128));
        assert!(m("::1", "::1", 1));
        assert!(m("10.1.2.3:*", "10.1.2.3", 80));
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_form_to_write() {
        for bad in [
            "",
            "proxy:0",
            "proxy:http",
            "a*b",
            "*.",
            "[::1",
            "http://proxy:1",
        ] {
            let e = ProxyPattern::parse(bad).unwrap_err();
            assert!(e.contains("host[:port]"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_first_fitting_entry_wins_and_the_default_takes_the_rest() {
        let cfg: AuthConfig = toml::from_str(
            r#"
            user = "default-user"
            password = "p0"
            policy = "low"
            [[proxies]]
            match = "a.corp:8080"
            user = "alice"
            password = "p1"
            [[proxies]]
            match = "*.corp"
            user = "bob"
            password = "p2"
            "#,
        )
        .unwrap();
        let set = Authenticators::from_config(&cfg, None).unwrap();
        assert_eq!(set.for_proxy("a.corp", 8080).identity(), "alice");
        assert_eq!(set.for_proxy("a.corp", 3128).identity(), "bob");
        assert_eq!(set.for_proxy("b.corp", 1).identity(), "bob");
        assert_eq!(set.for_proxy("elsewhere", 1).identity(), "default-user");
        assert_eq!(
            set.grant_for("a.corp", 8080, crate::policy::Speaker::User, false)
                .0
                .as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn the_policy_still_decides_who_gets_an_entry_s_credentials() {
        let cfg: AuthConfig = toml::from_str(
            r#"
            policy = "high"
            allow_proxies = ["ok.corp"]
            [[proxies]]
            match = "*.corp"
            user = "alice"
            password = "p1"
            "#,
        )
        .unwrap();
        let set = Authenticators::from_config(&cfg, None).unwrap();
        assert_eq!(
            set.grant_for("ok.corp", 1, crate::policy::Speaker::User, false)
                .0
                .as_deref(),
            Some("alice")
        );
        let other = set.grant_for("other.corp", 1, crate::policy::Speaker::User, false);
        assert_eq!(other.0, None);
    }

    #[test]
    fn an_entry_s_problems_name_its_index_and_key() {
        let cfg: AuthConfig = toml::from_str(
            r#"
            [[proxies]]
            match = "ok.corp"
            user = "a"
            password = "p"
            [[proxies]]
            match = "bad:port"
            password_file = "/nonexistent/pw"
            user = "b"
            "#,
        )
        .unwrap();
        let e = Authenticators::from_config(&cfg, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.proxies[1].match:"), "{e}");
        assert!(e.contains("auth.proxies[1].password_file:"), "{e}");
        assert!(!e.contains("proxies[0]"), "{e}");
    }

    #[test]
    fn an_entry_inherits_no_global_secret() {
        let cfg: AuthConfig = toml::from_str(
            r#"
            user = "default-user"
            password = "p0"
            [[proxies]]
            match = "a.corp"
            user = "alice"
            "#,
        )
        .unwrap();
        let set = Authenticators::from_config(&cfg, None).unwrap();
        let alice = set.for_proxy("a.corp", 1).credentials();
        assert_eq!(alice.password(), None);
    }
}

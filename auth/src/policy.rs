//! Who gets credentials, and when to stop trying. [`Policy`] is WinHTTP's autologon
//! policy for proxies: `low` sends credentials to any proxy, `medium` (default) only to
//! allow-listed proxies or intranet ones (configured suffixes, plain host names), `high`
//! only to allow-listed ones (never "automatically"). So a PAC script from the network
//! cannot route our credentials to an attacker's proxy; a script *discovered* through
//! WPAD cannot even use the plain-host-name rule ([`Policy::allows_discovered`]). [`Lockout`] stops trying an
//! identity after N consecutive rejections for a cool-down, so a wrong password in a
//! config cannot lock an Active Directory account. Uses tokio time (pausable in tests).
//!
//! [`Policy::grant`] is the whole rule for one proxy: who named it ([`Speaker`]: the user, or
//! the network through a WPAD or `http://` script) and whether the network the machine is on
//! has proven itself ([`crate::proof`]). A proxy the network named gets nothing on an unproven
//! network; on a proven one Kerberos with no configuration (a Kerberos exchange gives an
//! impostor nothing to crack), NTLM and Basic only when the name is also listed
//! (`allow_proxies`, `intranet_suffixes`). `network_trust = "names"` restores the name-only
//! rule of earlier versions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// WinHTTP-style autologon policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutologonPolicy {
    Low,
    #[default]
    Medium,
    High,
}

/// How proxies named by the network are trusted (`auth.network_trust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkTrust {
    /// Only on a network that proved itself (the realm's KDC, or the configured probe).
    #[default]
    Proof,
    /// By name alone, as before: a listed name is trusted on any network. A hostile network
    /// that answers for the name gets the credentials.
    Names,
}

/// Who named a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The configuration, a PAC file on local disk, a PAC fetched over verified `https://`.
    User,
    /// A script found by WPAD (DHCP, DNS) or fetched over plain `http://`.
    Network,
}

/// What may be sent to one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Any mechanism the identity has.
    All,
    /// Kerberos only (Negotiate without the NTLM fallback; no Basic).
    KerberosOnly,
    /// Nothing, and why.
    Withheld(Withheld),
}

/// Why no credential goes to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The autologon policy does not allow the proxy.
    Policy,
    /// The network named the proxy and has not proven itself.
    UnprovenNetwork,
}

impl Grant {
    pub fn allows_any(self) -> bool {
        !matches!(self, Grant::Withheld(_))
    }

    /// Nothing may be sent because the network named the proxy and has not proven itself.
    pub fn withheld_by_network(self) -> bool {
        self == Grant::Withheld(Withheld::UnprovenNetwork)
    }
}

impl Withheld {
    /// The `X-Waypost-Error` code of a 407 answered without credentials for this reason.
    pub fn code(self) -> &'static str {
        match self {
            Withheld::Policy => "auth-policy-refused",
            Withheld::UnprovenNetwork => "auth-untrusted-proxy",
        }
    }
}

/// The credential policy: the level plus the allow list and intranet definition.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub level: AutologonPolicy,
    /// How proxies named by the network are trusted.
    pub network_trust: NetworkTrust,
    /// Host patterns: `proxy.example.test`, `*.corp.example` (any depth), `10.1.2.3`.
    pub allow_proxies: Vec<String>,
    /// Domain suffixes counted as intranet: `corp.example` matches `proxy.corp.example`.
    pub intranet_suffixes: Vec<String>,
}

/// `pattern` is a host, `*.suffix`, or `.suffix`; case-insensitive; no ports.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(suffix) = pattern
        .strip_prefix("*.")
        .or_else(|| pattern.strip_prefix('.'))
    {
        return host.ends_with(&format!(".{suffix}"));
    }
    pattern == host
}

/// Whether `pattern` is acceptable in `allow_proxies`.
pub fn valid_pattern(pattern: &str) -> bool {
    let p = pattern
        .strip_prefix("*.")
        .or_else(|| pattern.strip_prefix('.'))
        .unwrap_or(pattern);
    !p.is_empty() && !p.contains('*') && !p.contains('/') && !p.contains(' ')
}

impl Policy {
    /// Plain host names (no dot, not an IP) and configured suffixes are intranet.
    pub fn is_intranet(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            return false;
        }
        !bare.trim_end_matches('.').contains('.')
            || self
                .intranet_suffixes
                .iter()
                .any(|s| host_matches(&format!("*.{}", s.trim_start_matches('.')), bare))
    }

    /// Configured suffixes only: the implicit "plain host name is intranet" rule left out.
    fn listed_intranet(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.intranet_suffixes
            .iter()
            .any(|s| host_matches(&format!("*.{}", s.trim_start_matches('.')), bare))
    }

    fn allow_listed(&self, host: &str) -> bool {
        self.allow_proxies.iter().any(|p| host_matches(p, host))
    }

    /// May credentials be sent to the proxy `host` (as configured or chosen by PAC)?
    pub fn allows(&self, host: &str) -> bool {
        match self.level {
            AutologonPolicy::Low => true,
            AutologonPolicy::Medium => self.allow_listed(host) || self.is_intranet(host),
            AutologonPolicy::High => self.allow_listed(host),
        }
    }

    /// As [`Policy::allows`] for a proxy named by a *discovered* script (WPAD: any host on the
    /// LAN can answer DHCP or serve `wpad.<domain>`): such a script cannot widen who gets
    /// credentials, so under `medium` a plain host name (which the attacker's `evil` resolves
    /// through the search domain) is not intranet; allow-listed proxies and configured
    /// intranet suffixes still are. Scripts from an explicit `pac.source` keep the rule.
    pub fn allows_discovered(&self, host: &str) -> bool {
        match self.level {
            AutologonPolicy::Low => true,
            AutologonPolicy::Medium => self.allow_listed(host) || self.listed_intranet(host),
            AutologonPolicy::High => self.allow_listed(host),
        }
    }
}

impl Policy {
    /// What may go to the proxy `host`, named by `speaker`, on a network that has (`proven`)
    /// or has not proven itself. The user's own proxies follow the level as always.
    pub fn grant(&self, host: &str, speaker: Speaker, proven: bool) -> Grant {
        let by_level = |allowed: bool| match allowed {
            true => Grant::All,
            false => Grant::Withheld(Withheld::Policy),
        };
        match (speaker, self.level, self.network_trust) {
            (Speaker::User, _, _) => by_level(self.allows(host)),
            (Speaker::Network, AutologonPolicy::Low, _) => Grant::All,
            (Speaker::Network, _, NetworkTrust::Names) => by_level(self.allows_discovered(host)),
            (Speaker::Network, _, NetworkTrust::Proof) if !proven => {
                Grant::Withheld(Withheld::UnprovenNetwork)
            }
            (Speaker::Network, AutologonPolicy::High, NetworkTrust::Proof) => {
                by_level(self.allow_listed(host))
            }
            (Speaker::Network, AutologonPolicy::Medium, NetworkTrust::Proof) => {
                if self.allow_listed(host) || self.listed_intranet(host) {
                    Grant::All
                } else {
                    Grant::KerberosOnly
                }
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    consecutive: u32,
    until: Option<Instant>,
}

/// Consecutive-rejection lockout per identity.
#[derive(Debug)]
pub struct Lockout {
    after: u32,
    cool_down: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Lockout {
    /// `after` = 0 disables the lockout.
    pub fn new(after: u32, cool_down: Duration) -> Self {
        Lockout {
            after,
            cool_down,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(remaining)` while `identity` is locked out.
    pub fn locked(&self, identity: &str) -> Option<Duration> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get_mut(identity)?;
        let until = entry.until?;
        let now = Instant::now();
        if now >= until {
            // Cool-down over: one more try is allowed; its failure locks again at once.
            entry.until = None;
            entry.consecutive = self.after.saturating_sub(1);
            return None;
        }
        Some(until - now)
    }

    /// A rejection; returns true when it started a lockout.
    pub fn record_rejection(&self, identity: &str) -> bool {
        if self.after == 0 {
            return false;
        }
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(identity.to_string()).or_default();
        entry.consecutive += 1;
        if entry.consecutive >= self.after && entry.until.is_none() {
            entry.until = Some(Instant::now() + self.cool_down);
            return true;
        }
        false
    }

    pub fn record_success(&self, identity: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity);
    }

    /// How many identities are locked out right now (metrics).
    pub fn locked_count(&self) -> usize {
        let now = Instant::now();
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|e| e.until.is_some_and(|u| u > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_script_cannot_make_a_plain_host_name_intranet() {
        let mut p = policy(AutologonPolicy::Medium);
        assert!(p.allows("evil"));
        assert!(!p.allows_discovered("evil"));
        p.intranet_suffixes = vec!["corp.example".into()];
        p.allow_proxies = vec!["gw".into()];
        assert!(p.allows_discovered("proxy.corp.example"));
        assert!(p.allows_discovered("gw"));
        assert!(!p.allows_discovered("evil.attacker.example"));
        assert!(policy(AutologonPolicy::Low).allows_discovered("evil"));
    }

    #[test]
    fn a_proxy_the_network_named_gets_nothing_until_the_network_proves_itself() {
        let mut p = policy(AutologonPolicy::Medium);
        (p.allow_proxies, p.intranet_suffixes) = (Vec::new(), Vec::new());
        let n = Speaker::Network;
        for host in ["proxy.corp.example", "proxy", "10.0.0.1"] {
            assert_eq!(
                p.grant(host, n, false),
                Grant::Withheld(Withheld::UnprovenNetwork)
            );
            assert_eq!(p.grant(host, n, true), Grant::KerberosOnly, "{host}");
        }
        p.intranet_suffixes = vec!["corp.example".into()];
        assert_eq!(p.grant("proxy.corp.example", n, true), Grant::All);
        assert_eq!(
            p.grant("proxy.corp.example", n, false),
            Grant::Withheld(Withheld::UnprovenNetwork)
        );
        assert_eq!(p.grant("evil.example.net", n, true), Grant::KerberosOnly);
        // high: only the allow list, and only on a proven network
        let mut h = policy(AutologonPolicy::High);
        h.intranet_suffixes = Vec::new();
        h.allow_proxies = vec!["gw.corp.example".into()];
        assert_eq!(h.grant("gw.corp.example", n, true), Grant::All);
        assert_eq!(
            h.grant("gw.corp.example", n, false),
            Grant::Withheld(Withheld::UnprovenNetwork)
        );
        assert_eq!(
            h.grant("other.corp.example", n, true),
            Grant::Withheld(Withheld::Policy)
        );
    }

    #[test]
    fn the_users_own_proxies_and_the_names_rule_do_not_depend_on_the_network() {
        let mut p = policy(AutologonPolicy::Medium);
        p.intranet_suffixes = vec!["corp.example".into()];
        for proven in [false, true] {
            assert_eq!(
                p.grant("proxy.corp.example", Speaker::User, proven),
                Grant::All
            );
            assert_eq!(p.grant("proxy", Speaker::User, proven), Grant::All);
            assert_eq!(
                p.grant("evil.example.net", Speaker::User, proven),
                Grant::Withheld(Withheld::Policy)
            );
        }
        p.network_trust = NetworkTrust::Names;
        assert_eq!(
            p.grant("proxy.corp.example", Speaker::Network, false),
            Grant::All
        );
        assert_eq!(
            p.grant("proxy", Speaker::Network, false),
            Grant::Withheld(Withheld::Policy)
        );
        assert_eq!(
            policy(AutologonPolicy::Low).grant("x.example", Speaker::Network, false),
            Grant::All
        );
        assert_eq!(Withheld::UnprovenNetwork.code(), "auth-untrusted-proxy");
    }

    fn policy(level: AutologonPolicy) -> Policy {
        Policy {
            level,
            allow_proxies: vec!["proxy.partner.example".into(), "*.proxies.example".into()],
            intranet_suffixes: vec!["corp.example".into()],
            network_trust: NetworkTrust::Proof,
        }
    }

    #[test]
    fn low_sends_credentials_to_any_proxy() {
        assert!(policy(AutologonPolicy::Low).allows("evil.example.net"));
    }

    #[test]
    fn medium_sends_credentials_only_to_allow_listed_or_intranet_proxies() {
        let p = policy(AutologonPolicy::Medium);
        assert!(p.allows("proxy.corp.example"));
        assert!(p.allows("PROXY.CORP.EXAMPLE."));
        assert!(p.allows("proxy"));
        assert!(p.allows("a.b.proxies.example"));
        assert!(p.allows("proxy.partner.example"));
        assert!(!p.allows("evil.example.net"));
        assert!(!p.allows("corp.example.evil.net"));
        assert!(!p.allows("notcorp.example"));
        assert!(!p.allows("10.0.0.1"));
    }

    #[test]
    fn high_sends_credentials_only_to_allow_listed_proxies() {
        let p = policy(AutologonPolicy::High);
        assert!(!p.allows("proxy.corp.example"));
        assert!(!p.allows("proxy"));
        assert!(p.allows("proxy.partner.example"));
    }

    #[test]
    fn allow_list_patterns_are_validated() {
        assert!(valid_pattern("*.example.test"));
        assert!(valid_pattern("127.0.0.1"));
        assert!(!valid_pattern("*"));
        assert!(!valid_pattern("a*.b"));
        assert!(!valid_pattern("http://x"));
    }

    #[tokio::test(start_paused = true)]
    async fn lockout_starts_after_n_rejections_and_ends_after_the_cool_down() {
        let l = Lockout::new(3, Duration::from_secs(60));
        assert!(!l.record_rejection("EXAMPLE\\user"));
        assert!(!l.record_rejection("EXAMPLE\\user"));
        assert!(l.locked("EXAMPLE\\user").is_none());
        assert!(l.record_rejection("EXAMPLE\\user"));
        assert_eq!(l.locked("EXAMPLE\\user"), Some(Duration::from_secs(60)));
        assert!(l.locked("other").is_none());
        assert_eq!(l.locked_count(), 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(l.locked("EXAMPLE\\user").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(l.locked("EXAMPLE\\user").is_none());
        assert_eq!(l.locked_count(), 0);
        // the one retry after the cool-down fails: locked again at once
        assert!(l.record_rejection("EXAMPLE\\user"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_rejection_count() {
        let l = Lockout::new(2, Duration::from_secs(60));
        l.record_rejection("u");
        l.record_success("u");
        assert!(!l.record_rejection("u"));
        assert!(l.locked("u").is_none());
    }
}

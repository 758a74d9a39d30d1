//! `[auth]` configuration: the raw serde form (`deny_unknown_fields`, every key
//! defaulted) and its validation, which reports every problem at once with its key
//! path (`auth.password_file: ...`). Secrets deserialise straight into
//! [`SecretString`], so a `Debug` of the config never shows them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::policy::{valid_pattern, AutologonPolicy, NetworkTrust};
use crate::secret::{parse_nt_hash, read_private_file, SecretString};

/// Which scheme to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SchemeChoice {
    /// Negotiate > NTLM > Basic, whatever the proxy offers and the credentials allow.
    #[default]
    Auto,
    /// Negotiate only (Kerberos, or raw NTLM inside Negotiate when Kerberos is impossible).
    Negotiate,
    /// NTLM only (also raw NTLM inside Negotiate when the proxy offers only that).
    Ntlm,
    /// Basic only.
    Basic,
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString::new)
    }
}

fn default_lockout_after() -> u32 {
    3
}
fn default_lockout_for() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_attempts() -> u32 {
    5
}

/// The `[auth]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub scheme: SchemeChoice,
    /// `user`, `DOMAIN\user` or `user@REALM` (env `WAYPOST_AUTH_USER`).
    pub user: Option<String>,
    /// NTLM (NetBIOS) domain; overrides one written in `user`.
    pub domain: Option<String>,
    /// Prefer `password_file` or env `WAYPOST_AUTH_PASSWORD`.
    pub password: Option<SecretString>,
    /// First line is the password; refused if group/other can read it.
    pub password_file: Option<PathBuf>,
    /// NT hash (32 hex digits) instead of a password (NTLM only).
    pub ntlm_hash: Option<SecretString>,
    /// Keytab with the key of `user@REALM` (Kerberos through sspi).
    pub keytab: Option<PathBuf>,
    /// Ticket cache for single sign-on (`FILE:/tmp/krb5cc_1000`); default: the system's.
    pub ccache: Option<String>,
    /// KDC for password/keytab Kerberos (`host:port`); default: `$KRB5_CONFIG`, DNS.
    pub kdc: Option<String>,
    pub spn_include_port: bool,
    pub spn_override: Option<String>,
    /// SPN from the proxy's canonical name (CNAMEs followed), as Chromium does; `false` =
    /// Chromium's `DisableAuthNegotiateCnameLookup`. Global: every identity follows it.
    pub canonicalize_spn: bool,
    pub policy: AutologonPolicy,
    pub allow_proxies: Vec<String>,
    pub intranet_suffixes: Vec<String>,
    /// Proxies named by a WPAD or `http://` script: trusted on a proven network (`proof`) or
    /// by name alone (`names`, the earlier rule).
    pub network_trust: NetworkTrust,
    /// An `https://` URL whose fetch, with full certificate verification, proves the network
    /// (for sites without Kerberos); tried besides the KDC.
    pub trust_probe: Option<String>,
    #[serde(default = "default_lockout_after")]
    pub lockout_after: u32,
    #[serde(with = "humantime_serde", default = "default_lockout_for")]
    pub lockout_for: Duration,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// `[[auth.proxies]]`: identities for particular proxies; the first entry whose `match`
    /// fits the proxy wins, the keys above are the identity for every other proxy.
    pub proxies: Vec<ProxyAuthConfig>,
}

/// One `[[auth.proxies]]` entry: an identity for the proxies its `match` pattern fits.
///
/// An entry is a whole identity: it inherits none of the global identity keys (user,
/// domain, secrets, keytab, ccache, kdc, scheme, SPN settings); an omitted key has its
/// default. The policy, the allow list, intranet suffixes, lockout, `max_attempts` and
/// `canonicalize_spn` are global and apply to every identity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuthConfig {
    /// `host[:port]`: `proxy-a.corp:8080`, `*.corp` (any subdomain), `*:3128`, `[::1]:3128`.
    #[serde(rename = "match")]
    pub matches: String,
    #[serde(default)]
    pub scheme: SchemeChoice,
    pub user: Option<String>,
    pub domain: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
    pub ntlm_hash: Option<SecretString>,
    pub keytab: Option<PathBuf>,
    pub ccache: Option<String>,
    pub kdc: Option<String>,
    #[serde(default)]
    pub spn_include_port: bool,
    pub spn_override: Option<String>,
}

impl ProxyAuthConfig {
    /// This entry as a complete `[auth]` table: its identity keys, the global policy keys.
    pub fn as_auth_config(&self, global: &AuthConfig) -> AuthConfig {
        AuthConfig {
            scheme: self.scheme,
            user: self.user.clone(),
            domain: self.domain.clone(),
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            ntlm_hash: self.ntlm_hash.clone(),
            keytab: self.keytab.clone(),
            ccache: self.ccache.clone(),
            kdc: self.kdc.clone(),
            spn_include_port: self.spn_include_port,
            spn_override: self.spn_override.clone(),
            canonicalize_spn: global.canonicalize_spn,
            policy: global.policy,
            allow_proxies: global.allow_proxies.clone(),
            intranet_suffixes: global.intranet_suffixes.clone(),
            network_trust: global.network_trust,
            trust_probe: global.trust_probe.clone(),
            lockout_after: global.lockout_after,
            lockout_for: global.lockout_for,
            max_attempts: global.max_attempts,
            proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            scheme: SchemeChoice::Auto,
            user: None,
            domain: None,
            password: None,
            password_file: None,
            ntlm_hash: None,
            keytab: None,
            ccache: None,
            kdc: None,
            spn_include_port: false,
            spn_override: None,
            canonicalize_spn: true,
            policy: AutologonPolicy::Medium,
            allow_proxies: Vec::new(),
            intranet_suffixes: Vec::new(),
            network_trust: NetworkTrust::Proof,
            trust_probe: None,
            lockout_after: default_lockout_after(),
            lockout_for: default_lockout_for(),
            max_attempts: default_max_attempts(),
            proxies: Vec::new(),
        }
    }
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth.{key}: {message}")]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// All invalid settings, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl AuthConfig {
    /// Every problem of this config (empty = valid). Reads `password_file` and `keytab`
    /// metadata; never echoes a secret.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut out = self.validate_identity(true);
        for (i, entry) in self.proxies.iter().enumerate() {
            let key = |k: &str| format!("proxies[{i}].{k}");
            if let Err(e) = crate::pattern::ProxyPattern::parse(&entry.matches) {
                out.push(ConfigProblem {
                    key: key("match"),
                    message: e,
                });
            }
            for p in entry.as_auth_config(self).validate_identity(false) {
                out.push(ConfigProblem {
                    key: key(&p.key),
                    message: p.message,
                });
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(out))
        }
    }

    /// The problems of this table's identity (and, when `global`, of its global keys);
    /// `global` is false for a `[[auth.proxies]]` entry, which the environment does not fill.
    fn validate_identity(&self, global: bool) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: key.to_string(),
                message,
            })
        };
        let secrets = [
            self.password.is_some(),
            self.password_file.is_some(),
            self.ntlm_hash.is_some(),
        ];
        if secrets.iter().filter(|s| **s).count() > 1 {
            bad(
                "password",
                "set only one of password, password_file and ntlm_hash".into(),
            );
        }
        if let Some(p) = &self.password_file {
            if let Err(e) = read_private_file(p) {
                bad("password_file", e);
            }
        }
        if let Some(h) = &self.ntlm_hash {
            if parse_nt_hash(h.expose()).is_none() {
                bad(
                    "ntlm_hash",
                    "expected 32 hexadecimal digits (the NT hash, not the password)".into(),
                );
            }
            if self.scheme == SchemeChoice::Basic {
                bad(
                    "scheme",
                    "basic needs a password; an NTLM hash cannot be used for Basic".into(),
                );
            }
        }
        if let Some(k) = &self.keytab {
            if let Err(e) = std::fs::metadata(k) {
                bad("keytab", format!("{}: {e}", k.display()));
            }
            if !self.user.as_deref().is_some_and(|u| u.contains('@')) {
                bad(
                    "user",
                    "a keytab needs the client principal as user@REALM".into(),
                );
            }
        }
        if let Some(u) = &self.user {
            if u.trim().is_empty() || u.contains(':') && self.scheme == SchemeChoice::Basic {
                bad(
                    "user",
                    "must be non-empty (and without ':' for Basic)".into(),
                );
            }
        }
        if let Some(spn) = &self.spn_override {
            if !spn.contains('/') {
                bad(
                    "spn_override",
                    format!("{spn:?} is not a service principal name like HTTP/proxy.example.com"),
                );
            }
        }
        if global {
            self.validate_global(&mut bad);
        }
        if self.scheme == SchemeChoice::Basic
            && self.password.is_none()
            && self.password_file.is_none()
        {
            // The environment may still supply one; say so rather than fail later silently.
            if !global || std::env::var_os("WAYPOST_AUTH_PASSWORD").is_none() {
                bad("scheme", "basic needs an explicit password (password, password_file or WAYPOST_AUTH_PASSWORD)".into());
            }
        }
        out
    }

    /// The keys shared by every identity (policy, lockout).
    fn validate_global(&self, bad: &mut impl FnMut(&str, String)) {
        for (i, p) in self.allow_proxies.iter().enumerate() {
            if !valid_pattern(p) {
                bad(
                    &format!("allow_proxies[{i}]"),
                    format!("{p:?} is not a host name, IP or *.suffix"),
                );
            }
        }
        for (i, s) in self.intranet_suffixes.iter().enumerate() {
            if s.trim_start_matches('.').is_empty() || s.contains('*') {
                bad(
                    &format!("intranet_suffixes[{i}]"),
                    format!("{s:?} is not a domain suffix like corp.example"),
                );
            }
        }
        if let Some(u) = &self.trust_probe {
            if !u.starts_with("https://")
                || url::Url::parse(u).map_or(true, |u| u.host_str().is_none())
            {
                bad(
                    "trust_probe",
                    format!("{u:?} is not an https:// URL (only a verified certificate proves a network)"),
                );
            }
        }
        if self.max_attempts == 0 || self.max_attempts > 20 {
            bad(
                "max_attempts",
                format!("{} is out of range 1..=20", self.max_attempts),
            );
        }
        if self.lockout_after > 0 && self.lockout_for.is_zero() {
            bad(
                "lockout_for",
                "must be positive while lockout_after is set (0 disables the lockout)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<AuthConfig, String> {
        toml::from_str::<AuthConfig>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_table_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.scheme, SchemeChoice::Auto);
        assert_eq!(c.policy, AutologonPolicy::Medium);
        assert_eq!(c.lockout_after, 3);
        assert_eq!(c.lockout_for, Duration::from_secs(900));
        assert_eq!(c.max_attempts, 5);
        c.validate().unwrap();
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"
            scheme = "ntlm"
            user = 'EXAMPLE\user'
            domain = "EXAMPLE"
            ntlm_hash = "a4f49c406510bdcab6824ee7c30fd852"
            ccache = "FILE:/tmp/cc"
            kdc = "127.0.0.1:88"
            spn_include_port = true
            spn_override = "HTTP/proxy.example.test"
            canonicalize_spn = true
            policy = "high"
            allow_proxies = ["proxy.example.test", "*.corp.example"]
            intranet_suffixes = ["corp.example"]
            lockout_after = 5
            lockout_for = "2m"
            max_attempts = 4
            "#,
        )
        .unwrap();
        assert_eq!(c.scheme, SchemeChoice::Ntlm);
        assert_eq!(c.policy, AutologonPolicy::High);
        assert_eq!(c.lockout_for, Duration::from_secs(120));
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("passwd = \"x\"")
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn debug_of_a_config_hides_the_password() {
        let c = parse("user = \"u\"\npassword = \"Secret-Pass-1\"").unwrap();
        assert!(!format!("{c:?}").contains("Secret-Pass-1"));
    }

    #[test]
    fn validation_lists_every_problem_with_its_key_path() {
        let c = parse(
            r#"
            password = "p"
            password_file = "/nonexistent/pw"
            ntlm_hash = "zz"
            spn_override = "proxy"
            allow_proxies = ["ok.example", "*"]
            max_attempts = 0
            "#,
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        for key in [
            "auth.password:",
            "auth.password_file:",
            "auth.ntlm_hash:",
            "auth.spn_override:",
            "auth.allow_proxies[1]:",
            "auth.max_attempts:",
        ] {
            assert!(e.contains(key), "missing {key} in:\n{e}");
        }
        assert!(!e.contains("allow_proxies[0]"));
        assert!(!e.contains("\"p\""));
    }
}

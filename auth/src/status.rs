//! `waypost auth status`: every identity of an `[auth]` table (the default, then each
//! `[[auth.proxies]]` entry), where its credentials come from (password file, config,
//! environment, kernel keyring, NT hash, keytab, ticket cache) and, for Kerberos, the
//! ticket and its expiry. Reads files' metadata and ticket caches; never a secret: a
//! password is reported as present, never shown, and a keytab's keys are not read out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::ccache::{self, TicketState};
use crate::config::AuthConfig;
use crate::credentials::{Credentials, KerberosSource, Secret};

/// One identity's state.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityStatus {
    /// `default`, or the entry's `match` pattern.
    #[serde(rename = "match")]
    pub matches: String,
    /// The non-secret identity (as in pool keys and logs); empty when it cannot be loaded.
    pub identity: String,
    pub scheme: String,
    /// Where the secret comes from: `password_file <path>`, `config password`,
    /// `environment WAYPOST_AUTH_PASSWORD`, `kernel keyring`, `config ntlm_hash`, or none.
    pub secret: Option<String>,
    /// Kerberos: how tickets are obtained, and the ticket when one is held.
    pub kerberos: Option<KerberosStatus>,
    /// Why this identity cannot work as configured.
    pub problem: Option<String>,
}

/// Kerberos state of one identity.
#[derive(Debug, Clone, Serialize)]
pub struct KerberosStatus {
    /// `ccache <name>`, `keytab <path>` or `password`.
    pub source: String,
    /// The ticket-granting ticket's client principal, when a ticket is held.
    pub principal: Option<String>,
    /// `valid`, `expired`, `missing`, `not-inspectable` (a ticket cache), `renewed-by-waypost`
    /// (a keytab: the running waypost obtains and renews its ticket, see its log), or
    /// `per-handshake` (a password, or a keytab without the `gssapi` feature).
    pub ticket: String,
    /// Expiry of the ticket-granting ticket (RFC 3339, UTC) and seconds left (negative when
    /// expired).
    pub expires: Option<String>,
    pub expires_in_seconds: Option<i64>,
    pub detail: Option<String>,
    /// The SPN asked for: `HTTP/<canonical name of the proxy>` (CNAMEs followed, the
    /// default), `HTTP/<proxy name as given>`, with `:<port>` when asked, or the override.
    pub spn: String,
}

/// The status of every identity of `cfg`; `env` reads the environment (the default
/// identity's `WAYPOST_AUTH_USER` / `WAYPOST_AUTH_PASSWORD`).
pub fn report(
    cfg: &AuthConfig,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Vec<IdentityStatus> {
    let mut out = vec![identity("default", cfg, env, now)];
    for entry in &cfg.proxies {
        out.push(identity(
            &entry.matches,
            &entry.as_auth_config(cfg),
            &|_| None,
            now,
        ));
    }
    out
}

fn identity(
    name: &str,
    cfg: &AuthConfig,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> IdentityStatus {
    let scheme = format!("{:?}", cfg.scheme).to_ascii_lowercase();
    let creds = match Credentials::load(cfg, env) {
        Ok(c) => c,
        Err(errs) => {
            return IdentityStatus {
                matches: name.to_string(),
                identity: String::new(),
                scheme,
                secret: None,
                kerberos: None,
                problem: Some(
                    errs.iter()
                        .map(|e| format!("{}: {}", e.key, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        }
    };
    let secret = match creds.secret() {
        None => None,
        Some(Secret::NtHash(_)) => Some("config ntlm_hash".to_string()),
        Some(Secret::Password(_)) => Some(if let Some(p) = &cfg.password_file {
            format!("password_file {}", p.display())
        } else if cfg.password.is_some() {
            "config password".to_string()
        } else if env("WAYPOST_AUTH_PASSWORD").is_some() {
            "environment WAYPOST_AUTH_PASSWORD".to_string()
        } else {
            "kernel keyring".to_string()
        }),
    };
    let mut problem = None;
    let kerberos = creds.kerberos_source().map(|source| match source {
        KerberosSource::TicketCache(name) => {
            let cache = ccache::cache_name(name.as_deref());
            ticket_cache(&cache, ccache::inspect(Some(&cache), now), now)
        }
        KerberosSource::Keytab { path, user, realm } => {
            let detail = match crate::keytab::find_key(&path, &user, &realm) {
                Ok(_) => format!("has a key for {user}@{realm}"),
                Err(e) => {
                    problem = Some(e.clone());
                    e
                }
            };
            KerberosStatus {
                source: format!("keytab {}", path.display()),
                principal: Some(format!("{user}@{realm}")),
                ticket: if cfg!(feature = "gssapi") {
                    "renewed-by-waypost".into()
                } else {
                    "per-handshake".into()
                },
                expires: None,
                expires_in_seconds: None,
                detail: Some(detail),
                spn: String::new(),
            }
        }
        KerberosSource::Password { user, realm, .. } => KerberosStatus {
            source: "password".into(),
            principal: Some(format!("{user}@{realm}")),
            ticket: "per-handshake".into(),
            expires: None,
            expires_in_seconds: None,
            detail: None,
            spn: String::new(),
        },
    });
    let rule = crate::spn::SpnRule {
        include_port: cfg.spn_include_port,
        override_spn: cfg.spn_override.clone(),
        canonicalize: cfg.canonicalize_spn,
    };
    let kerberos = kerberos.map(|k| KerberosStatus {
        spn: rule.describe(),
        ..k
    });
    IdentityStatus {
        matches: name.to_string(),
        identity: creds.identity(),
        scheme,
        secret,
        kerberos,
        problem,
    }
}

fn ticket_cache(cache: &str, state: TicketState, now: SystemTime) -> KerberosStatus {
    let expiry = |at: SystemTime| {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs() as i64
        };
        (
            Some(humantime::format_rfc3339_seconds(at).to_string()),
            Some(secs(at) - secs(now)),
        )
    };
    let (principal, ticket, (expires, expires_in_seconds), detail) = match state {
        TicketState::Valid { principal, expires } => {
            (Some(principal), "valid", expiry(expires), None)
        }
        TicketState::Expired { principal, expired } => {
            (Some(principal), "expired", expiry(expired), None)
        }
        TicketState::Missing { why, .. } => (None, "missing", (None, None), Some(why)),
        TicketState::NotInspectable { .. } => (None, "not-inspectable", (None, None), None),
    };
    KerberosStatus {
        source: format!("ccache {cache}"),
        principal,
        ticket: ticket.into(),
        expires,
        expires_in_seconds,
        detail,
        spn: String::new(),
    }
}

/// The report as text, one block per identity.
pub fn render(report: &[IdentityStatus]) -> String {
    let mut out = String::new();
    for s in report {
        let name = if s.matches == "default" {
            "default identity".to_string()
        } else {
            format!("proxies matching {}", s.matches)
        };
        out.push_str(&format!("{name}\n"));
        if !s.identity.is_empty() {
            out.push_str(&format!("  identity  {}\n", s.identity));
        }
        out.push_str(&format!("  scheme    {}\n", s.scheme));
        out.push_str(&format!(
            "  secret    {}\n",
            s.secret.as_deref().unwrap_or("none")
        ));
        if let Some(k) = &s.kerberos {
            let mut line = format!("  kerberos  {}: ticket {}", k.source, k.ticket);
            if let Some(p) = &k.principal {
                line.push_str(&format!(" for {p}"));
            }
            if let (Some(at), Some(left)) = (&k.expires, k.expires_in_seconds) {
                let d = humantime::format_duration(Duration::from_secs(left.unsigned_abs()));
                if left >= 0 {
                    line.push_str(&format!(", expires {at} (in {d})"));
                } else {
                    line.push_str(&format!(", expired {at} ({d} ago)"));
                }
            }
            if let Some(d) = &k.detail {
                line.push_str(&format!(" ({d})"));
            }
            out.push_str(&line);
            out.push('\n');
            out.push_str(&format!("  spn       {}\n", k.spn));
        }
        if let Some(p) = &s.problem {
            out.push_str(&format!("  problem   {p}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_is_listed_with_its_source_and_no_secret() {
        let cfg: AuthConfig = toml::from_str(
            r#"
            user = "EXAMPLE\\user"
            password = "Secret-Pass-1"
            [[proxies]]
            match = "*:3128"
            user = "alice"
            ntlm_hash = "a4f49c406510bdcab6824ee7c30fd852"
            [[proxies]]
            match = "sso.corp"
            ccache = "FILE:/nonexistent/cc"
            "#,
        )
        .unwrap();
        let r = report(&cfg, &|_| None, SystemTime::now());
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].identity, "EXAMPLE\\user");
        assert_eq!(r[0].secret.as_deref(), Some("config password"));
        assert_eq!(r[1].matches, "*:3128");
        assert_eq!(r[1].secret.as_deref(), Some("config ntlm_hash"));
        let k = r[2].kerberos.as_ref().unwrap();
        assert_eq!(
            (k.source.as_str(), k.ticket.as_str()),
            ("ccache FILE:/nonexistent/cc", "missing")
        );
        let text = render(&r);
        assert!(text.contains("proxies matching *:3128"), "{text}");
        assert!(
            text.contains("spn       HTTP/<canonical name of the proxy>"),
            "{text}"
        );
        assert!(
            !text.contains("Secret-Pass-1") && !text.contains("a4f49c"),
            "{text}"
        );
    }
}

//! Readiness: whether this instance can serve requests as configured, with the reason for each
//! check — behind `/readyz`, `waypost ready`, the status page and `waypost doctor`.
//!
//! Ready means: every listener bound; the PAC script loaded when a PAC is configured; and the
//! credentials usable when authentication is configured (a keytab readable with the user's key,
//! a ticket-granting ticket present and not expired in the ticket cache). Liveness (`/healthz`)
//! is not this: a live proxy may be waiting for its PAC. It reads state only; it opens no
//! connection and never prints a secret.

use std::time::SystemTime;

use waypost_auth::ccache::{self, TicketState};
use waypost_auth::config::SchemeChoice;
use waypost_auth::credentials::KerberosSource;

use crate::app::{lock, App};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    /// One line per check, `ok`/`NOT READY`, for `/readyz` and `waypost ready`.
    pub fn render(&self) -> String {
        let mut out = String::from(if self.ready { "ready\n" } else { "not ready\n" });
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
        }
        out
    }
}

pub fn check(app: &App) -> Readiness {
    let checks = vec![
        listening(app),
        pac(app),
        credentials(app, SystemTime::now()),
    ];
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn listening(app: &App) -> Check {
    let addrs = lock(&app.ops.listening).clone();
    Check {
        name: "listening",
        ok: !addrs.is_empty(),
        detail: if addrs.is_empty() {
            "not yet listening".into()
        } else {
            format!(
                "on {}",
                addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    }
}

fn pac(app: &App) -> Check {
    let Some(ap) = &app.router.autoproxy else {
        return Check {
            name: "pac",
            ok: true,
            detail: "no PAC configured (static routing)".into(),
        };
    };
    match ap.current() {
        Some(l) => Check {
            name: "pac",
            ok: true,
            detail: format!(
                "loaded from {} (via {}, {} s ago)",
                l.source,
                l.method,
                l.loaded_at.elapsed().map(|d| d.as_secs()).unwrap_or(0)
            ),
        },
        None => Check {
            name: "pac",
            ok: false,
            detail: match ap.last_error() {
                Some(e) => format!(
                    "no PAC script loaded from {}: {e}",
                    crate::redact::url(&ap.settings.source)
                ),
                None => format!(
                    "PAC script from {} not loaded yet",
                    crate::redact::url(&ap.settings.source)
                ),
            },
        },
    }
}

/// Whether authentication is configured: credentials or a scheme chosen, a ticket cache named.
pub fn auth_configured(cfg: &waypost_auth::AuthConfig) -> bool {
    cfg.scheme != SchemeChoice::Auto
        || cfg.user.is_some()
        || cfg.keytab.is_some()
        || cfg.ccache.is_some()
}

/// The state of the credentials for upstream proxy authentication (`ok` false only when
/// authentication is configured and its credentials cannot work).
pub fn credentials(app: &App, now: SystemTime) -> Check {
    let auth = &app.upstream.dialer.auth;
    let creds = auth.credentials();
    let configured = auth_configured(&app.cfg.auth);
    let (ok, detail) = match creds.kerberos_source() {
        Some(KerberosSource::Keytab { path, user, realm }) => {
            match waypost_auth::keytab::find_key(&path, &user, &realm) {
                Ok(_) => (
                    true,
                    format!("keytab {} has a key for {user}@{realm}", path.display()),
                ),
                Err(e) => (
                    false,
                    format!("keytab {} unusable for {user}@{realm}: {e}", path.display()),
                ),
            }
        }
        Some(KerberosSource::Password { user, realm, .. }) => {
            (true, format!("password configured for {user}@{realm}"))
        }
        _ if creds.secret().is_some() => {
            (true, format!("password configured for {}", auth.identity()))
        }
        Some(KerberosSource::TicketCache(name)) => {
            let state = ccache::inspect(name.as_deref(), now);
            let needs_ticket = configured;
            match state {
                TicketState::Valid { principal, expires } => (
                    true,
                    format!(
                        "Kerberos ticket for {principal}, expires in {}",
                        human(expires.duration_since(now).unwrap_or_default())
                    ),
                ),
                TicketState::Expired { principal, expired } => (
                    !needs_ticket,
                    format!(
                        "the Kerberos ticket for {principal} expired {} ago: run kinit",
                        human(now.duration_since(expired).unwrap_or_default())
                    ),
                ),
                TicketState::Missing { cache, why } => (
                    !needs_ticket,
                    if needs_ticket {
                        format!("no Kerberos ticket in {cache} ({why}): run kinit, or configure a password or keytab")
                    } else {
                        "no credentials configured (requests go unauthenticated; a Kerberos ticket is used if one appears)".into()
                    },
                ),
                TicketState::NotInspectable { cache } => (
                    true,
                    format!("ticket cache {cache} cannot be inspected; assumed usable"),
                ),
            }
        }
        None => (true, "no credentials configured".into()),
    };
    Check {
        name: "credentials",
        ok,
        detail,
    }
}

/// `1h 5m`, `42s`.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

//! The checks that talk to the network beyond the config: authentication to a proxy with a
//! real request, TLS to the sample origin through the chain, and clock skew against a proxy's
//! `Date` and the KDC. Each returns a [`Verdict`] with the fix when it fails.

use std::time::SystemTime;

use http::{header, HeaderMap, Method};

use super::{kdc, verdict, Status, Verdict};
use crate::app::App;
use crate::error::{self, ErrorKind, ProxyError};
use crate::ops::ready;
use crate::route::{Hop, Purpose};
use crate::target::{Scheme, Target};
use crate::upstream::auth::{proxy_target, send_replay, Replay};

/// Authentication to one proxy with a real request (GET for an http URL, CONNECT for https).
/// Returns the verdict and the proxy's `Date` header when it sent one.
pub(super) async fn authenticate(
    app: &App,
    hop: &Hop,
    target: &Target,
    url: &str,
    cred: &ready::Check,
    speaker: waypost_auth::Speaker,
) -> (Verdict, Option<String>) {
    let Hop::Proxy(p) = hop else {
        return (verdict("auth", Status::Skip, "DIRECT"), None);
    };
    let check = format!("auth {}", p.label());
    let auth = app
        .upstream
        .dialer
        .auth
        .for_proxy(&p.host.to_string(), p.port);
    let https = target.scheme == Scheme::Https;
    let purpose = if https {
        Purpose::Tunnel
    } else {
        Purpose::Request
    };
    let plan = app.plan(hop, target, purpose, speaker);
    let result: Result<(u16, HeaderMap), ProxyError> = if https {
        app.upstream
            .tunnel(&plan)
            .await
            .map(|_| (200, HeaderMap::new()))
    } else {
        match (app.upstream.connection(&plan).await, url.parse()) {
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(ProxyError::bad_request(format!(
                "{}: {e}",
                crate::redact::url(url)
            ))),
            (Ok(conn), Ok(uri)) => {
                let mut headers = HeaderMap::new();
                if let Ok(h) = target.host_header().parse() {
                    headers.insert(header::HOST, h);
                }
                let replay = Replay {
                    method: Method::GET,
                    uri,
                    headers,
                    body: bytes::Bytes::new(),
                };
                send_replay(&app.upstream, &plan, conn, &replay)
                    .await
                    .map(|r| (r.status().as_u16(), r.headers().clone()))
            }
        }
    };
    let host = p.host.to_string();
    let (_, proxy) = proxy_target(&app.upstream.dialer, &p.host, p.port).await;
    let spn = auth.spn(&proxy);
    let identity = plan.identity.clone();
    let date = result
        .as_ref()
        .ok()
        .and_then(|(_, h)| h.get(header::DATE))
        .and_then(|d| d.to_str().ok())
        .map(str::to_string);
    let v = match result {
        Ok((407, _)) => {
            let fix = match &identity {
                None => format!(
                    "the proxy wants credentials, but none are sent to {host}: configure [auth] \
                     (user + password_file, a keytab, or kinit) and allow it (auth.policy / auth.allow_proxies)"
                ),
                Some(_) => "check the credentials in [auth]".into(),
            };
            verdict(
                &check,
                Status::Fail,
                "the proxy answered 407 Proxy Authentication Required",
            )
            .fix(fix)
        }
        Ok((status, _)) => {
            let scheme = auth.memory().get(&p.label()).map(|s| s.to_string());
            let detail = match (&identity, scheme) {
                (Some(id), Some(s)) => {
                    let kerberos = s.to_ascii_lowercase().contains("kerberos");
                    let mut d = format!("{s} as {id} works (HTTP {status})");
                    if kerberos {
                        d.push_str(&format!("; SPN {spn}; {}", cred.detail));
                    }
                    d
                }
                (Some(id), None) => {
                    format!("no authentication asked (HTTP {status}); {id} would be used")
                }
                (None, _) => format!("no authentication asked, none sent (HTTP {status})"),
            };
            verdict(&check, Status::Ok, detail)
        }
        Err(e) => {
            let auth_failure = matches!(
                e.kind,
                ErrorKind::AuthRejected | ErrorKind::ProxyConnect(407)
            );
            let mut v = verdict(&check, Status::Fail, error::chain(&e));
            if auth_failure {
                let who = identity.clone().unwrap_or_else(|| "no identity".into());
                let fix = if !cred.ok {
                    super::cred_fix(&cred.detail)
                } else if auth.credentials().secret().is_some() {
                    format!("the proxy rejected the password of {who}: correct auth.password_file (or WAYPOST_AUTH_PASSWORD); repeated failures can lock the account")
                } else {
                    format!("the proxy rejected {who}: check the ticket (`klist`, SPN {spn}) or configure a password or keytab")
                };
                v = v.fix(fix);
            } else {
                v = v.fix("see the error: the proxy was reachable, the request through it failed");
            }
            v
        }
    };
    (v, date)
}

/// Clock skew against the KDC, when Kerberos credentials name a realm whose KDC is configured.
pub(super) async fn kdc_clock(app: &App) -> Option<Verdict> {
    use waypost_auth::ccache::{self, TicketState};
    use waypost_auth::credentials::KerberosSource;
    let who = match app.upstream.dialer.auth.credentials().kerberos_source()? {
        KerberosSource::Keytab { user, realm, .. }
        | KerberosSource::Password { user, realm, .. } => Some((user, realm)),
        KerberosSource::TicketCache(name) => {
            match ccache::inspect(name.as_deref(), SystemTime::now()) {
                TicketState::Valid { principal, .. } | TicketState::Expired { principal, .. } => {
                    principal
                        .rsplit_once('@')
                        .map(|(u, r)| (u.to_string(), r.to_string()))
                }
                _ => None,
            }
        }
    };
    let (user, realm) = who?;
    let check = format!("clock kdc {realm}");
    let Some(server) = kdc::kdc_for(&realm) else {
        return Some(verdict(
            check,
            Status::Skip,
            format!(
                "no kdc for {realm} in the Kerberos configuration (found by DNS): not measured"
            ),
        ));
    };
    let asked = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || kdc::kdc_time(&server, &user, &realm)).await
    };
    let theirs = match asked {
        Ok(Ok(t)) => t,
        Ok(Err(why)) => return Some(verdict(check, Status::Skip, format!("not measured: {why}"))),
        Err(e) => return Some(verdict(check, Status::Skip, format!("not measured: {e}"))),
    };
    Some(skew(check, &format!("the KDC {server}"), theirs))
}

/// A skew verdict: ok under a minute, a warning under 5, a failure beyond (Kerberos refuses).
fn skew(check: String, whose: &str, theirs: SystemTime) -> Verdict {
    let (skew, ahead) = match theirs.duration_since(SystemTime::now()) {
        Ok(d) => (d, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    let s = skew.as_secs();
    let detail = format!("{whose}'s clock is {s}s {ahead} this machine's");
    match s {
        0..=59 => verdict(check, Status::Ok, detail),
        60..=299 => verdict(check, Status::Warn, detail)
            .fix("synchronise the clock (timedatectl set-ntp true)"),
        _ => verdict(check, Status::Fail, detail).fix(
            "synchronise the clock (timedatectl set-ntp true): Kerberos refuses more than 5 minutes of skew",
        ),
    }
}

/// Clock skew against a proxy's `Date` header (Kerberos refuses more than 5 minutes).
pub(super) fn clock(name: &str, date: &str) -> Option<Verdict> {
    let theirs = httpdate_parse(date)?;
    Some(skew(
        format!("clock {name}"),
        &format!("{name} (its Date header)"),
        theirs,
    ))
}

fn httpdate_parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(&{
        // "Sun, 29 Nov 2026 14:02:03 GMT" -> "2026-11-29 14:02:03"
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() != 6 {
            return None;
        }
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|m| *m == parts[2])?
            + 1;
        format!("{}-{month:02}-{:0>2} {}", parts[3], parts[1], parts[4])
    })
    .ok()
}

/// TLS to the sample origin through `hop` under the configured TLS policy.
pub(super) async fn tls(
    app: &App,
    hop: &Hop,
    target: &Target,
    speaker: waypost_auth::Speaker,
) -> Verdict {
    let check = format!("tls {}", target.host_header());
    let plan = app.plan(hop, target, Purpose::Tunnel, speaker);
    let tunnel = match app.upstream.tunnel(&plan).await {
        Ok(t) => t,
        Err(e) => {
            let fix = match e.kind {
                ErrorKind::Dns | ErrorKind::DnsTimeout => "the sample host does not resolve from here: check the URL, or the DNS servers ([dns])",
                _ => "the origin is not reachable through this route: check the URL; `waypost explain URL` shows the route",
            };
            return verdict(check, Status::Fail, error::chain(&e)).fix(fix);
        }
    };
    match app
        .upstream
        .dialer
        .tls_handshake(
            &target.host,
            tunnel.io,
            &[b"http/1.1"],
            &plan.options.tls,
            plan.options.connect,
        )
        .await
    {
        Ok(s) => {
            let version = s
                .get_ref()
                .1
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            verdict(
                check,
                Status::Ok,
                format!(
                    "{version} handshake with {} through {hop}, certificate trusted",
                    target.host
                ),
            )
        }
        Err(e) => {
            let fix = match e.kind {
                ErrorKind::Tls("tls-unknown-ca") => "the certificate chain ends in a CA this machine does not trust: if the network intercepts TLS, add its CA to the system store or [tls]",
                ErrorKind::Tls("tls-cert-expired") => "the server's certificate has expired: tell its owner, or add an exception for this host in [tls]",
                ErrorKind::Tls("tls-name-mismatch") => "the certificate is for another name: check the URL, or whether something intercepts TLS",
                _ => "see the error; `waypost explain URL` shows the route",
            };
            verdict(check, Status::Fail, error::chain(&e)).fix(fix)
        }
    }
}

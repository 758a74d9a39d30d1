//! "Why does this URL go where it goes?": the explain report behind `GET /explain?url=...` and
//! `waypost explain URL`.
//!
//! Read-only: it asks the same decision function requests use, plus the PAC source, its age,
//! the raw answer, cache hit or miss, and the proxies marked bad; and the effective option of
//! every per-destination key for the target with where it came from (`global` or the scope,
//! [`options`]). URLs it shows (the one asked
//! about, PAC sources, errors) go through [`crate::redact`]: no userinfo, no query.

use serde_json::{json, Value};

use crate::app::App;
use crate::route::{self, Hop};
use crate::target::{Scheme, Target};

/// The explain report for `url` as JSON.
pub async fn report(app: &App, url: &str) -> Result<Value, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {:?}: {e}", crate::redact::url(url)))?;
    let target = Target::from_absolute(&uri, false).map_err(|e| e.detail)?;
    let bad: Vec<Value> = app
        .router
        .bad
        .snapshot()
        .into_iter()
        .map(|(p, left)| json!({"proxy": p.to_string(), "retry_in_seconds": left.as_secs()}))
        .collect();
    let mut pac = Value::Null;
    let mut raw = Value::Null;
    let mut proxies = Value::Null;
    let mut cached = Value::Null;
    let mut pac_error = Value::Null;
    let mut pac_sources = Value::Null;
    if let Some(ap) = &app.router.autoproxy {
        if let Some(loaded) = ap.loaded().await {
            let age = loaded.loaded_at.elapsed().map(|d| d.as_secs()).unwrap_or(0);
            pac = json!({"source": loaded.source, "method": loaded.method, "age_seconds": age,
                         "entry": crate::redact::url(&loaded.entry), "network": loaded.network});
        }
        // each configured source in order: which one won, why the earlier ones did not
        pac_sources = json!(ap
            .attempts()
            .into_iter()
            .map(|a| json!({"source": a.entry, "outcome": a.outcome, "reason": a.reason}))
            .collect::<Vec<_>>());
        match route::static_bypass(&target, app.router.routes()) {
            Some(_) => {}
            None => match ap.find(url).await {
                Ok((_, answer)) => {
                    raw = json!(answer.raw);
                    proxies = json!(answer
                        .entries
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>());
                    cached = json!(answer.cached);
                }
                Err(e) => pac_error = json!(crate::redact::text(&e.message)),
            },
        }
    }
    let pac_url = match target.scheme {
        Scheme::Https => format!("https://{}/", target.host_header()),
        Scheme::Http => url.to_string(),
    };
    let (decision_hops, reason, error, credentials) =
        match app.router.decide(&target, || pac_url.clone()).await {
            Ok(d) => {
                let credentials = credentials(app, &d, &target).await;
                (d.hops, d.reason, Value::Null, credentials)
            }
            Err(e) => (vec![], "refused", json!(e.to_string()), json!([])),
        };
    let decision = decision_hops.iter().map(Hop::to_string).collect::<Vec<_>>();
    let spn = match decision_hops.first() {
        Some(Hop::Proxy(p)) => {
            let (auth, proxy) =
                crate::upstream::auth::proxy_target(&app.upstream.dialer, &p.host, p.port).await;
            json!(auth.spn(&proxy))
        }
        _ => Value::Null,
    };
    Ok(json!({
        "url": crate::redact::url(url),
        "target": target.to_string(),
        "pac": pac,
        "pac_error": pac_error,
        "pac_sources": pac_sources,
        "raw": raw,
        "proxies": proxies,
        "cached": cached,
        "bad_proxies": bad,
        "decision": decision,
        "reason": reason,
        "hop_now": decision.first(),
        "spn": spn,
        "credentials": credentials,
        "options": options(app, &target),
        "network_trust": app.trust.verdict().describe(),
        "error": error,
    }))
}

/// Every per-destination option for `target`: its effective value and its source (`global`,
/// or the scope that set it: `scopes[2]`, `tls.exceptions[0]`), first match winning per option.
fn options(app: &App, target: &Target) -> Value {
    use crate::config::{Opt, ScopeRoute};
    let scopes = &app.cfg.scopes;
    let o = scopes.resolve(&target.host, target.port);
    let mut out: Vec<Value> = Opt::ALL
        .into_iter()
        .filter(|opt| *opt != Opt::Route)
        .map(|opt| {
            json!({"key": opt.key(), "value": o.show(opt), "source": scopes.source_name(&o, opt)})
        })
        .collect();
    let (value, source) = match scopes.route_for(&target.host, target.port) {
        Some((i, ScopeRoute::Direct)) => ("DIRECT".to_string(), scopes.list[i].name.as_str()),
        Some((i, ScopeRoute::Via(p))) => (p.to_string(), scopes.list[i].name.as_str()),
        None => ("bypass list, then PAC or upstream".to_string(), "global"),
    };
    out.push(json!({"key": "route", "value": value, "source": source}));
    json!(out)
}

/// Per proxy hop of `decision`: whether credentials would be sent, and why.
async fn credentials(app: &App, decision: &crate::route::Decision, target: &Target) -> Value {
    use waypost_auth::{Grant, Speaker, Withheld};
    let speaker = app.await_trust(decision).await;
    let named_by = match speaker {
        Speaker::User => "named by the user (configuration, local or https:// PAC)",
        Speaker::Network => "named by the network (WPAD or http:// PAC)",
    };
    let trust = app.trust.verdict().describe();
    let mut out = Vec::new();
    for hop in &decision.hops {
        let plan = app.plan(hop, target, crate::route::Purpose::Request, speaker);
        let (Some(proxy), Some(grant)) = (plan.proxy(), plan.grant) else {
            continue;
        };
        let (sent, why) = match grant {
            Grant::All => ("yes", format!("{named_by}; allowed by the policy")),
            Grant::KerberosOnly => (
                "kerberos only",
                format!("{named_by}; network {trust}; NTLM and Basic only to allow_proxies / intranet_suffixes"),
            ),
            Grant::Withheld(Withheld::UnprovenNetwork) => {
                ("withheld", format!("{named_by}; network {trust}"))
            }
            Grant::Withheld(Withheld::Policy) => (
                "withheld",
                format!("{named_by}; the autologon policy does not allow it"),
            ),
        };
        out.push(json!({ "proxy": proxy.label(), "sent": sent, "why": why }));
    }
    json!(out)
}

/// Human-readable rendering of a report.
pub fn render_text(v: &Value) -> String {
    let s = |k: &str| {
        v.get(k)
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_default()
    };
    let mut out = format!("url:        {}\n", s("url"));
    match v.get("pac") {
        Some(Value::Object(p)) => out.push_str(&format!(
            "pac:        {} (via {}, {} s old)\n",
            p.get("source").and_then(Value::as_str).unwrap_or("?"),
            p.get("method").and_then(Value::as_str).unwrap_or("?"),
            p.get("age_seconds").and_then(Value::as_u64).unwrap_or(0)
        )),
        _ => out.push_str("pac:        none\n"),
    }
    for a in v["pac_sources"].as_array().into_iter().flatten() {
        let reason = a["reason"].as_str().unwrap_or("");
        out.push_str(&format!(
            "source:     {} {}{}\n",
            a["source"].as_str().unwrap_or("?"),
            a["outcome"].as_str().unwrap_or("?"),
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        ));
    }
    if !v["pac_error"].is_null() {
        out.push_str(&format!("pac error:  {}\n", s("pac_error")));
    }
    if !v["raw"].is_null() {
        out.push_str(&format!(
            "pac result: {}  ({})\n",
            s("raw"),
            if v["cached"] == json!(true) {
                "cache hit"
            } else {
                "cache miss"
            }
        ));
    }
    if let Some(bad) = v["bad_proxies"].as_array() {
        for b in bad {
            out.push_str(&format!(
                "marked bad: {} (retried first again in {} s)\n",
                b["proxy"].as_str().unwrap_or("?"),
                b["retry_in_seconds"]
            ));
        }
    }
    let decision: Vec<String> = v["decision"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "decision:   {} [{}]\n",
        decision.join(" -> "),
        s("reason")
    ));
    for c in v["credentials"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "credentials: {} {} ({})\n",
            c["proxy"].as_str().unwrap_or("?"),
            c["sent"].as_str().unwrap_or("?"),
            c["why"].as_str().unwrap_or("")
        ));
    }
    for o in v["options"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "option:     {} = {} ({})\n",
            o["key"].as_str().unwrap_or("?"),
            o["value"].as_str().unwrap_or("?"),
            o["source"].as_str().unwrap_or("?")
        ));
    }
    if !v["error"].is_null() {
        out.push_str(&format!("error:      {}\n", s("error")));
    }
    out
}

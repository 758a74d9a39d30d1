//! The status page: `/status` (a self-contained HTML page: no external asset, no script; it
//! refreshes itself every few seconds) and `/status.json` (the same data) on the admin surface.
//!
//! It shows version and uptime, listeners, the configuration generation and last reload,
//! readiness, the PAC source, method, age and last error, per upstream (`direct` or a proxy):
//! pool connections idle/active, requests, failures, bad-proxy mark and its expiry, and the
//! authentication scheme and identity state (never a secret); the recent requests; and charts
//! of request rate, errors and pool use over the last minutes drawn as inline SVG from the
//! in-process samples of [`crate::activity`]. Pool numbers are read from the same gauges
//! `/metrics` exports, so the two always agree.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use prometheus::core::Collector;
use serde_json::{json, Value};

use crate::activity::{self, Sample, Totals};
use crate::app::{lock, App};

/// Seconds between two automatic refreshes of the page.
pub const REFRESH_SECONDS: u32 = 5;

/// Every series of a metric vector: (labels, value).
fn series(c: &impl Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for mf in c.collect() {
        for m in mf.get_metric() {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let v = if mf.get_field_type() == prometheus::proto::MetricType::GAUGE {
                m.get_gauge().get_value()
            } else {
                m.get_counter().get_value()
            };
            out.push((labels, v));
        }
    }
    out
}

#[derive(Default, Debug, Clone, serde::Serialize)]
struct UpstreamRow {
    upstream: String,
    pool_idle: i64,
    pool_active: i64,
    requests: u64,
    failures: u64,
    bad: bool,
    bad_retry_in_seconds: Option<u64>,
    auth: Option<Value>,
}

/// The data behind the page.
pub fn data(app: &App) -> Value {
    let m = &app.metrics;
    let now = SystemTime::now();
    let uptime = now.duration_since(app.ops.started).unwrap_or_default();
    let mut rows: BTreeMap<String, UpstreamRow> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<String, UpstreamRow>, name: &str) -> &'a mut UpstreamRow {
        rows.entry(name.to_string()).or_insert_with(|| UpstreamRow {
            upstream: name.to_string(),
            ..UpstreamRow::default()
        })
    }
    for p in [
        &app.cfg.routes.http_upstream,
        &app.cfg.routes.https_upstream,
    ]
    .into_iter()
    .flatten()
    {
        row(&mut rows, &p.label());
    }
    for (l, v) in series(&m.pool_connections) {
        let r = row(&mut rows, &l["upstream"]);
        match l["state"].as_str() {
            "idle" => r.pool_idle = v as i64,
            _ => r.pool_active = v as i64,
        }
    }
    for (l, v) in series(&m.upstream_requests) {
        let r = row(&mut rows, &l["upstream"]);
        r.requests += v as u64;
        if l["outcome"] != "ok" {
            r.failures += v as u64;
        }
    }
    for (p, left) in app.router.bad.snapshot() {
        let r = row(&mut rows, &p.label());
        r.bad = true;
        r.bad_retry_in_seconds = Some(left.as_secs());
    }
    let auth = &app.upstream.dialer.auth;
    let cred = crate::ops::ready::credentials(app, now);
    let configured = crate::ops::ready::auth_configured(&app.cfg.auth);
    for r in rows.values_mut().filter(|r| r.upstream != "direct") {
        let (host, port) = r.upstream.rsplit_once(':').unwrap_or(("", ""));
        let auth = auth.for_proxy(host, port.parse().unwrap_or(0));
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        // the proxies the PAC names speak with the network's voice when the script does
        let speaker = match app.router.autoproxy.as_ref().and_then(|ap| ap.current()) {
            Some(l) if !static_upstream(app, bare) => {
                crate::app::script_speaker(&l.entry, l.method)
            }
            _ => waypost_auth::Speaker::User,
        };
        let allowed = auth.grant(bare, speaker, app.trust.proven()).allows_any();
        r.auth = Some(json!({
            "configured": configured,
            "credentials_sent": allowed,
            "scheme": auth.memory().get(&r.upstream).map(|p| p.to_string()),
            "identity": allowed.then(|| auth.identity()),
            "locked_out": auth.lockout().locked_count() > 0,
            "network_trust": app.trust.verdict().describe(),
        }));
    }
    let pac = app.router.autoproxy.as_ref().map(|ap| {
        let loaded = ap.current();
        json!({
            "configured": crate::redact::url(&ap.settings.source),
            "source": loaded.as_ref().map(|l| l.source.clone()),
            "method": loaded.as_ref().map(|l| l.method),
            "age_seconds": loaded.as_ref().map(|l| l.loaded_at.elapsed().map(|d| d.as_secs()).unwrap_or(0)),
            "last_error": ap.last_error(),
        })
    });
    let last_reload = lock(&app.ops.last_reload).clone().map(|(at, trigger, r)| {
        json!({
            "at": activity::unix(at),
            "trigger": trigger,
            "ok": r.is_ok(),
            "problems": r.err(),
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime.as_secs(),
        "started_at": activity::unix(app.ops.started),
        "generation": app.generation,
        "config_file": lock(&app.ops.config_file).as_ref().map(|p| p.display().to_string()),
        "last_reload": last_reload,
        "listeners": {
            "proxy": lock(&app.ops.listening).iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "admin": lock(&app.ops.admin_listening).iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "socks": lock(&app.ops.socks_listening).iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        },
        "readiness": crate::ops::ready::check(app),
        "pac": pac,
        "network_trust": app.trust.verdict().describe(),
        "auth": {
            "scheme": format!("{:?}", app.cfg.auth.scheme).to_lowercase(),
            "identity": auth.identity(),
            "credentials": cred,
        },
        "tunnels_active": m.tunnels_active.get(),
        "client_connections_active": m.client_connections_active.get(),
        "upstreams": rows.into_values().collect::<Vec<_>>(),
        "recent": m.activity.recent(),
        "samples": m.activity.samples(),
        "sample_seconds": activity::SAMPLE_EVERY.as_secs(),
    })
}

/// Samples the running totals into the activity rings every [`activity::SAMPLE_EVERY`], until
/// shutdown (metrics are shared by every generation, so one sampler serves them all).
pub fn spawn_sampler(app: &App) {
    let metrics = app.metrics.clone();
    let stop = app.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(activity::SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut t = Totals {
                tunnels: metrics.tunnels_active.get(),
                ..Totals::default()
            };
            for (l, v) in series(&metrics.requests) {
                t.requests += v as u64;
                if l["outcome"] != "ok" {
                    t.errors += v as u64;
                }
            }
            for (l, v) in series(&metrics.pool_connections) {
                match l["state"].as_str() {
                    "idle" => t.pool_idle += v as i64,
                    _ => t.pool_active += v as i64,
                }
            }
            metrics.activity.sample(SystemTime::now(), t);
        }
    });
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A small line chart as inline SVG: one polyline per series, scaled to the largest value.
fn chart(
    title: &str,
    id: &str,
    samples: &[Sample],
    lines: &[(&str, &str, fn(&Sample) -> f64)],
) -> String {
    let (w, h) = (360.0, 80.0);
    let max = samples
        .iter()
        .flat_map(|s| lines.iter().map(move |(_, _, f)| f(s)))
        .fold(1.0_f64, f64::max);
    let n = samples.len().max(2) as f64 - 1.0;
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{} <span class=\"max\">max {max:.0}</span></figcaption>\
         <svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" class=\"bg\"/>",
        esc(title),
        esc(title)
    );
    for (name, color, f) in lines {
        let pts: Vec<String> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 / n * w,
                    h - 2.0 - f(s) / max * (h - 4.0)
                )
            })
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
            pts.join(" "),
            esc(name)
        ));
    }
    if samples.len() < 2 {
        svg.push_str(&format!(
            "<text x=\"8\" y=\"{:.0}\" class=\"note\">collecting: a point every {}s</text>",
            h / 2.0,
            activity::SAMPLE_EVERY.as_secs()
        ));
    }
    svg.push_str("</svg><div class=\"legend\">");
    for (name, color, _) in lines {
        svg.push_str(&format!(
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(name)
        ));
    }
    svg.push_str("</div></figure>");
    svg
}

/// The HTML page for `data` (from [`data`]).
pub fn html(d: &Value) -> String {
    let mut b = String::new();
    b.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>waypost status</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head><body>"
    ));
    let ready = d["readiness"]["ready"] == json!(true);
    b.push_str(&format!(
        "<header><h1>waypost <span id=\"version\">{}</span></h1>\
         <span id=\"ready\" class=\"badge {}\">{}</span>\
         <span>up <b id=\"uptime\">{}</b></span><span>config generation <b id=\"generation\">{}</b>{}</span></header>",
        esc(&text(&d["version"])),
        if ready { "ok" } else { "bad" },
        if ready { "ready" } else { "not ready" },
        esc(&crate::ops::ready::human(Duration::from_secs(d["uptime_seconds"].as_u64().unwrap_or(0)))),
        esc(&text(&d["generation"])),
        match d["config_file"].as_str() {
            Some(f) => format!(" from <code>{}</code>", esc(f)),
            None => String::new(),
        }
    ));
    b.push_str("<section><h2>Readiness</h2><ul id=\"checks\">");
    for c in d["readiness"]["checks"].as_array().into_iter().flatten() {
        let ok = c["ok"] == json!(true);
        b.push_str(&format!(
            "<li class=\"{}\"><b>{}</b> {}</li>",
            if ok { "ok" } else { "bad" },
            esc(&text(&c["name"])),
            esc(&text(&c["detail"]))
        ));
    }
    b.push_str("</ul>");
    if d["last_reload"].is_object() {
        let r = &d["last_reload"];
        b.push_str(&format!(
            "<p id=\"last-reload\">Last reload ({}): {}</p>",
            esc(&text(&r["trigger"])),
            if r["ok"] == json!(true) {
                "applied".to_string()
            } else {
                format!(
                    "<span class=\"bad\">refused</span><pre>{}</pre>",
                    esc(&text(&r["problems"]))
                )
            }
        ));
    }
    b.push_str("</section>");
    b.push_str("<section><h2>Listeners</h2><p id=\"listeners\">proxy: ");
    let join = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    b.push_str(&format!(
        "<code>{}</code> · admin: <code>{}</code> · socks: <code>{}</code> · client connections {} · tunnels {}</p></section>",
        esc(&join(&d["listeners"]["proxy"])),
        esc(&join(&d["listeners"]["admin"])),
        esc(&join(&d["listeners"]["socks"])),
        esc(&text(&d["client_connections_active"])),
        esc(&text(&d["tunnels_active"]))
    ));
    b.push_str("<section><h2>PAC</h2>");
    let p = &d["pac"];
    match p.is_object() {
        false => b.push_str("<p id=\"pac\">no PAC configured: static routing</p>"),
        true => b.push_str(&format!(
            "<table id=\"pac\"><tr><th>configured</th><td id=\"pac-configured\">{}</td></tr>\
             <tr><th>source</th><td id=\"pac-source\">{}</td></tr>\
             <tr><th>method</th><td id=\"pac-method\">{}</td></tr>\
             <tr><th>age</th><td id=\"pac-age\">{}</td></tr>\
             <tr><th>last error</th><td id=\"pac-error\">{}</td></tr></table>",
            esc(&text(&p["configured"])),
            esc(&text(&p["source"])),
            esc(&text(&p["method"])),
            p["age_seconds"]
                .as_u64()
                .map(|s| crate::ops::ready::human(Duration::from_secs(s)))
                .unwrap_or_else(|| "—".into()),
            esc(&text(&p["last_error"])),
        )),
    }
    b.push_str("</section>");
    b.push_str(&format!(
        "<section><h2>Upstreams</h2><p>authentication: scheme <b>{}</b>, identity <b>{}</b> — {}</p>\
         <p id=\"network-trust\">this network: {}</p>\
         <table id=\"upstreams\"><thead><tr><th>upstream</th><th>pool idle</th><th>pool active</th>\
         <th>requests</th><th>failures</th><th>marked bad</th><th>auth</th></tr></thead><tbody>",
        esc(&text(&d["auth"]["scheme"])),
        esc(&text(&d["auth"]["identity"])),
        esc(&text(&d["auth"]["credentials"]["detail"])),
        esc(&text(&d["network_trust"]))
    ));
    for u in d["upstreams"].as_array().into_iter().flatten() {
        let bad = match u["bad_retry_in_seconds"].as_u64() {
            Some(s) if u["bad"] == json!(true) => {
                format!("<span class=\"bad\">yes, for {s}s</span>")
            }
            _ => "no".into(),
        };
        let a = &u["auth"];
        let locked = if a["locked_out"] == json!(true) {
            " <span class=\"bad\">(locked out)</span>"
        } else {
            ""
        };
        let sent = a["credentials_sent"] == json!(true);
        let auth = match (a.is_object(), a["scheme"].as_str()) {
            (false, _) => "—".to_string(),
            (true, Some(scheme)) if sent => {
                format!("{} as {}{locked}", esc(scheme), esc(&text(&a["identity"])))
            }
            _ if a["configured"] != json!(true) => "none configured".into(),
            _ if sent => format!(
                "not negotiated yet; {} will be used{locked}",
                esc(&text(&a["identity"]))
            ),
            _ => "not sent to this proxy (named by an unproven network, or the autologon policy: [auth] policy, allow_proxies)".into(),
        };
        b.push_str(&format!(
            "<tr data-upstream=\"{0}\"><td>{0}</td><td class=\"pool-idle\">{1}</td><td class=\"pool-active\">{2}</td>\
             <td class=\"requests\">{3}</td><td class=\"failures\">{4}</td><td>{5}</td><td>{6}</td></tr>",
            esc(&text(&u["upstream"])),
            u["pool_idle"],
            u["pool_active"],
            u["requests"],
            u["failures"],
            bad,
            auth
        ));
    }
    b.push_str("</tbody></table></section>");
    let samples: Vec<Sample> = d["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            serde_json::from_value::<SampleIn>(s.clone())
                .ok()
                .map(Sample::from)
        })
        .collect();
    b.push_str(&format!(
        "<section><h2>Last {} minutes</h2><div class=\"charts\">",
        activity::HISTORY.as_secs() / 60
    ));
    b.push_str(&chart(
        &format!("requests per {}s", activity::SAMPLE_EVERY.as_secs()),
        "chart-requests",
        &samples,
        &[("requests", "#2563eb", |s| s.requests as f64)],
    ));
    b.push_str(&chart(
        "errors",
        "chart-errors",
        &samples,
        &[("errors", "#dc2626", |s| s.errors as f64)],
    ));
    b.push_str(&chart(
        "pool connections",
        "chart-pool",
        &samples,
        &[
            ("active", "#059669", |s| s.pool_active as f64),
            ("idle", "#9ca3af", |s| s.pool_idle as f64),
            ("tunnels", "#d97706", |s| s.tunnels as f64),
        ],
    ));
    b.push_str("</div></section>");
    b.push_str(
        "<section><h2>Recent requests</h2><table id=\"recent\"><thead><tr><th>request id</th><th>method</th>\
         <th>target</th><th>route</th><th>status</th><th>outcome</th><th>time</th></tr></thead><tbody>",
    );
    for r in d["recent"].as_array().into_iter().flatten() {
        b.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} ms</td></tr>",
            esc(&text(&r["id"])),
            esc(&text(&r["method"])),
            esc(&text(&r["target"])),
            esc(&text(&r["route"])),
            esc(&text(&r["status"])),
            if r["outcome"] == json!("ok") { "ok" } else { "bad" },
            esc(&text(&r["outcome"])),
            esc(&text(&r["duration_ms"])),
        ));
    }
    b.push_str(&format!(
        "</tbody></table></section><footer>refreshes every {REFRESH_SECONDS}s · \
         <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/readyz\">readyz</a></footer></body></html>"
    ));
    b
}

#[derive(serde::Deserialize)]
struct SampleIn {
    at: f64,
    requests: u64,
    errors: u64,
    pool_active: i64,
    pool_idle: i64,
    tunnels: i64,
}

impl From<SampleIn> for Sample {
    fn from(s: SampleIn) -> Sample {
        Sample {
            at: s.at,
            requests: s.requests,
            errors: s.errors,
            pool_active: s.pool_active,
            pool_idle: s.pool_idle,
            tunnels: s.tunnels,
        }
    }
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em;color:#111}\
header{display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}h1{margin:0;font-size:1.5em}\
h2{font-size:1.1em;margin:1.2em 0 .4em;border-bottom:1px solid #ddd}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums}\
.badge{padding:2px 8px;border-radius:4px;color:#fff}.badge.ok{background:#059669}.badge.bad{background:#dc2626}\
li.ok::marker{content:'✓ ';color:#059669}li.bad::marker{content:'✗ ';color:#dc2626}.bad{color:#dc2626}\
td.ok{color:#059669}.charts{display:flex;gap:1em;flex-wrap:wrap}.chart{margin:0}.chart rect.bg{fill:#f8fafc;stroke:#e5e7eb}\
.legend span{margin-right:1em}.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}\
.max{color:#666;font-size:.85em}.note{fill:#888;font-size:12px}footer{margin-top:2em;color:#666}pre{white-space:pre-wrap}";

/// Whether `host` is one of the configured static upstreams (the user's own proxy).
fn static_upstream(app: &App, host: &str) -> bool {
    let r = app.router.routes();
    [&r.http_upstream, &r.https_upstream]
        .into_iter()
        .flatten()
        .any(|p| {
            p.host
                .to_string()
                .trim_start_matches('[')
                .trim_end_matches(']')
                == host
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_one_point_per_sample_scaled_to_the_largest() {
        let samples: Vec<Sample> = [4u64, 0, 8]
            .iter()
            .map(|&requests| Sample {
                requests,
                ..Sample::default()
            })
            .collect();
        let svg = chart(
            "r",
            "c",
            &samples,
            &[("requests", "#000", |s| s.requests as f64)],
        );
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points, "0.0,40.0 180.0,78.0 360.0,2.0");
        assert!(svg.contains("max 8") && !svg.contains("collecting"));
        assert!(chart(
            "r",
            "c",
            &samples[..1],
            &[("requests", "#000", |s| s.requests as f64)]
        )
        .contains("collecting"));
    }

    #[test]
    fn text_from_the_network_is_escaped_in_the_page() {
        let d = json!({
            "version": "0.1.0", "uptime_seconds": 3, "generation": 1,
            "readiness": {"ready": true, "checks": []},
            "listeners": {"proxy": [], "admin": []},
            "pac": {"configured": "x", "source": "<script>alert(1)</script>", "method": "file"},
            "auth": {"scheme": "auto", "identity": "-", "credentials": {"detail": "none"}},
            "upstreams": [], "samples": [],
            "recent": [{"id": "1", "method": "GET", "target": "http://a\"><img src=x>:80", "route": "DIRECT", "status": 200, "outcome": "ok", "duration_ms": 1}],
        });
        let page = html(&d);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }
}

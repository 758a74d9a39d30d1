//! `deploy/grafana/waypost.json` queries only what waypost exports: every metric a panel or
//! variable names, and every label it selects or groups by, is in `/metrics` of a running
//! waypost that has done the things the dashboard shows (requests through an authenticating
//! squid chosen by a PAC, a failover from a dead proxy, a tunnel, a refused request, a PAC
//! error, a reload). `instance` and `job` are added by Prometheus at scrape time.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use support::harness::{self, Origin};
use support::peers::{free_port, Squid, PASSWORD, USER};

/// Every PromQL expression in the dashboard (panel targets and variable queries).
fn expressions(dash: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(dash, &mut out);
    out
}

fn ident_at(s: &str, i: usize) -> &str {
    let end = s[i..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |e| i + e);
    &s[i..end]
}

/// (metric, labels selected on it) for each `waypost_...` in `expr`, and the labels of
/// `by (...)` / `label_values(..., label)` clauses.
fn parse(expr: &str) -> (Vec<(String, BTreeSet<String>)>, BTreeSet<String>) {
    let mut metrics = Vec::new();
    let mut grouped = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("waypost_") {
        let start = i + at;
        let name = ident_at(expr, start).to_string();
        let mut labels = BTreeSet::new();
        let after = start + name.len();
        if expr[after..].starts_with('{') {
            let close = after + expr[after..].find('}').unwrap();
            for m in expr[after + 1..close].split(',') {
                let label = m.trim().split(['=', '!']).next().unwrap().trim();
                if !label.is_empty() {
                    labels.insert(label.to_string());
                }
            }
        }
        metrics.push((name, labels));
        i = after;
    }
    for clause in ["by (", "by(", "without ("] {
        let mut j = 0;
        while let Some(at) = expr[j..].find(clause) {
            let open = j + at + clause.len();
            let close = open + expr[open..].find(')').unwrap();
            for l in expr[open..close].split(',') {
                grouped.insert(l.trim().to_string());
            }
            j = close;
        }
    }
    if let Some(rest) = expr.strip_prefix("label_values(") {
        if let Some((_, label)) = rest.trim_end_matches(')').rsplit_once(',') {
            grouped.insert(label.trim().to_string());
        }
    }
    (metrics, grouped)
}

/// Series name -> label names seen on it, from a Prometheus text exposition.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = ident_at(line, 0).to_string();
        let labels = out.entry(name.clone()).or_default();
        if let Some(inner) = line[name.len()..].strip_prefix('{') {
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.trim_start_matches(',').to_string());
                }
            }
        }
    }
    out
}

#[test]
fn the_expression_parser_finds_metrics_selectors_and_groupings() {
    let (m, g) = parse(
        "histogram_quantile(0.95, sum by (le, kind) (rate(waypost_x_bucket{instance=~\"$i\",outcome!=\"ok\"}[5m])))",
    );
    assert_eq!(m[0].0, "waypost_x_bucket");
    assert_eq!(
        m[0].1,
        BTreeSet::from(["instance".to_string(), "outcome".to_string()])
    );
    assert_eq!(g, BTreeSet::from(["le".to_string(), "kind".to_string()]));
    let e = exported("# HELP a\na_total{kind=\"x,y\",outcome=\"ok\"} 1\nb 2\n");
    assert_eq!(
        e["a_total"],
        BTreeSet::from(["kind".to_string(), "outcome".to_string()])
    );
    assert!(e["b"].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_dashboard_queries_is_exported() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/waypost.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let exprs = expressions(&dash);
    assert!(
        exprs.len() > 20,
        "the dashboard has its queries: {}",
        exprs.len()
    );

    let squid = tokio::task::spawn_blocking(|| Squid::start("basic"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("corp.pac");
    std::fs::write(
        &pac,
        format!(
            "function FindProxyForURL(url, host) {{\n  if (host == \"pac-error.example.test\") throw \"broken branch\";\n  \
             return \"PROXY localhost:{dead}; PROXY localhost:{}\";\n}}\n",
            squid.port
        ),
    )
    .unwrap();
    let pac_source = pac.display().to_string();
    let cfg = harness::config(|c| {
        c.pac.source = pac_source.clone().into();
        c.route.bypass_loopback = false;
        // squid "basic" over plain HTTP: Basic must be chosen explicitly
        c.auth.scheme = waypost_auth::SchemeChoice::Basic;
        c.auth.user = Some(USER.to_string());
        c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
    });
    let same = cfg.clone();
    let loader: waypost::ops::reload::Loader = Box::new(move || Ok(same.clone()));
    let proxy = waypost::listen::server::start_reloadable(cfg, Some(loader), None)
        .await
        .unwrap();
    let addr = proxy.addrs[0];

    let mut client = harness::Client::connect(addr).await;
    for _ in 0..2 {
        let (status, _, body) = client.get(&origin.url("/dash")).await;
        assert_eq!(status, 200, "{body}");
    }
    let reply = harness::raw(
        addr,
        format!(
            "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
            origin.addr
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let (status, _, _) = harness::get(addr, "http://pac-error.example.test:1/").await;
    assert!(status >= 400);
    proxy.live.reload("sighup").await.expect("reload applies");

    let text = harness::metrics(addr).await;
    let have = exported(&text);
    let scrape_labels = ["instance", "job"];
    let mut missing = Vec::new();
    for expr in &exprs {
        let (metrics, grouped) = parse(expr);
        for (name, selected) in &metrics {
            let Some(labels) = have.get(name) else {
                missing.push(format!("metric {name} (in {expr})"));
                continue;
            };
            for l in selected.iter().chain(&grouped) {
                if !scrape_labels.contains(&l.as_str()) && !labels.contains(l) {
                    missing.push(format!("label {l} on {name} (in {expr})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries what /metrics does not have:\n{}\n\n/metrics:\n{text}",
        missing.join("\n")
    );
}

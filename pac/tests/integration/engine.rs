//! End-to-end behaviour of `PacEngine`: loading, calling, errors with positions, sanitising,
//! the result cache, reloads and metrics.

use crate::common;

use common::{engine, options};
use waypost_pac::{ErrorKind, PacEngine, PacError, ProxyEntry, ProxyKind};

#[tokio::test]
async fn a_simple_script_answers_with_parsed_entries() {
    let e =
        engine("function FindProxyForURL(u, h) { return 'PROXY p.example:3128; DIRECT'; }").await;
    let a = e.find_proxy("http://a.example/x").await.unwrap();
    assert_eq!(a.raw, "PROXY p.example:3128; DIRECT");
    assert_eq!(
        a.entries,
        vec![
            ProxyEntry::Proxy {
                kind: ProxyKind::Http,
                host: "p.example".into(),
                port: 3128
            },
            ProxyEntry::Direct
        ]
    );
    assert!(!a.cached);
}

#[tokio::test]
async fn the_script_sees_sanitised_https_urls_and_bare_hosts() {
    let e = engine("function FindProxyForURL(u, h) { return u + ' ' + h; }").await;
    let a = e
        .find_proxy("https://user:pw@[::1]:8443/secret?q#f")
        .await
        .unwrap();
    assert_eq!(a.raw, "https://[::1]:8443/ ::1");
    let raw = e.eval_raw("https://x/secret", "x:1").await.unwrap();
    assert_eq!(
        raw.raw, "https://x/secret x:1",
        "eval_raw passes strings as given"
    );
}

#[tokio::test]
async fn find_proxy_for_url_ex_is_preferred_when_defined() {
    let e = engine(
        "function FindProxyForURL(u,h){return 'PROXY old:1';} function FindProxyForURLEx(u,h){return 'PROXY ex:1';}",
    )
    .await;
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY ex:1"
    );
    let only_ex = engine("function FindProxyForURLEx(u,h){return 'DIRECT';}").await;
    assert_eq!(
        only_ex.eval_raw("http://a/", "a").await.unwrap().raw,
        "DIRECT"
    );
}

#[tokio::test]
async fn syntax_errors_report_line_and_column() {
    let err = PacEngine::new(
        "function FindProxyForURL(u, h) {\n  return 'DIRECT'\n  var = 3;\n}",
        options(),
        None,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Load);
    let pos = err.position().expect("a position");
    assert_eq!(pos.line, 3, "{err}");
}

#[tokio::test]
async fn load_failures_are_typed() {
    type Check = fn(&PacError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("", |e| matches!(e, PacError::EmptyScript)),
        ("var x = 1;", |e| matches!(e, PacError::NoEntryPoint)),
        ("var FindProxyForURL = 3;", |e| {
            matches!(e, PacError::NoEntryPoint)
        }),
        ("throw new Error('at load');", |e| {
            matches!(e, PacError::Load { .. })
        }),
    ];
    for (script, check) in cases {
        let err = PacEngine::new(script, options(), None).await.err().unwrap();
        assert!(check(&err), "{script:?} gave {err:?}");
    }
}

#[tokio::test]
async fn a_throw_during_the_call_is_a_call_error_with_a_position() {
    let e = engine("function FindProxyForURL(u, h) {\n  if (h == 'bad')\n    throw new Error('nope');\n  return 'DIRECT';\n}").await;
    let err = e.eval_raw("http://bad/", "bad").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Call);
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(err.position().map(|p| p.line), Some(3), "{err:?}");
    assert_eq!(e.eval_raw("http://ok/", "ok").await.unwrap().raw, "DIRECT");
}

#[tokio::test]
async fn non_string_results_are_rejected() {
    for (ret, ty) in [
        ("undefined", "undefined"),
        ("null", "object"),
        ("3", "number"),
        ("new String('DIRECT')", "object"),
        ("function(){}", "function"),
        ("['DIRECT']", "object"),
    ] {
        let e = engine(&format!(
            "function FindProxyForURL(u, h) {{ return {ret}; }}"
        ))
        .await;
        let err = e.eval_raw("http://a/", "a").await.unwrap_err();
        assert_eq!(
            err,
            PacError::NotAString {
                type_name: ty.into()
            },
            "{ret}"
        );
    }
}

#[tokio::test]
async fn results_over_the_length_limit_are_rejected() {
    let mut o = options();
    o.max_result_bytes = 10;
    let e = PacEngine::new(
        "function FindProxyForURL(){ return 'PROXY a-long-name:1'; }",
        o,
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        e.eval_raw("http://a/", "a").await,
        Err(PacError::ResultTooLong { .. })
    ));
}

#[tokio::test]
async fn global_state_persists_between_calls() {
    let mut o = options();
    o.workers = 1;
    let e = PacEngine::new(
        "var n = 0; function FindProxyForURL(){ n++; return 'PROXY p' + n + ':1'; }",
        o,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY p1:1"
    );
    assert_eq!(
        e.eval_raw("http://a/", "a").await.unwrap().raw,
        "PROXY p2:1"
    );
}

#[tokio::test]
async fn https_requests_to_one_origin_share_a_cache_entry() {
    let e =
        engine("var n = 0; function FindProxyForURL(){ n++; return 'PROXY p' + n + ':1'; }").await;
    let first = e.find_proxy("https://h.example/a").await.unwrap();
    let second = e.find_proxy("https://h.example/b?x").await.unwrap();
    assert!(!first.cached && second.cached);
    assert_eq!(first.raw, second.raw);
    let other = e.find_proxy("http://h.example/a").await.unwrap();
    assert!(!other.cached);
}

#[tokio::test]
async fn replacing_the_script_resets_globals_and_flushes_the_cache() {
    let mut o = options();
    o.workers = 1;
    let e = PacEngine::new(
        "var n = 0; function FindProxyForURL(){ n++; return 'PROXY a' + n + ':1'; }",
        o,
        None,
    )
    .await
    .unwrap();
    assert_eq!(e.find_proxy("http://h/").await.unwrap().raw, "PROXY a1:1");
    assert_eq!(
        e.eval_raw("http://h/", "h").await.unwrap().raw,
        "PROXY a2:1"
    );
    e.replace_script("var n = 0; function FindProxyForURL(){ n++; return 'PROXY b' + n + ':1'; }")
        .await
        .unwrap();
    let after = e.find_proxy("http://h/").await.unwrap();
    assert!(!after.cached);
    assert_eq!(after.raw, "PROXY b1:1");
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_old_script() {
    let e = engine("function FindProxyForURL(){ return 'DIRECT'; }").await;
    assert!(e
        .replace_script("function FindProxyForURL( {")
        .await
        .is_err());
    assert_eq!(e.eval_raw("http://a/", "a").await.unwrap().raw, "DIRECT");
}

#[tokio::test]
async fn scripts_over_the_size_limit_are_refused() {
    let mut o = options();
    o.max_script_bytes = 100;
    let big = format!(
        "function FindProxyForURL(){{ return 'DIRECT'; }} // {}",
        "x".repeat(200)
    );
    assert!(matches!(
        PacEngine::new(&big, o, None).await,
        Err(PacError::ScriptTooLarge { .. })
    ));
}

#[tokio::test]
async fn metrics_count_outcomes_and_cache_results() {
    let registry = prometheus::Registry::new();
    let e = PacEngine::new(
        "function FindProxyForURL(u,h){ if (h=='t') throw 1; return 'DIRECT'; }",
        options(),
        Some(&registry),
    )
    .await
    .unwrap();
    e.find_proxy("http://a/").await.unwrap();
    e.find_proxy("http://a/").await.unwrap();
    let _ = e.find_proxy("http://t/").await;
    let text = {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    };
    assert!(
        text.contains("waypost_pac_evaluations_total{outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("waypost_pac_evaluations_total{outcome=\"call\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("waypost_pac_cache_lookups_total{result=\"hit\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("waypost_pac_cache_lookups_total{result=\"miss\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn the_engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<PacEngine>();
    let e = engine("function FindProxyForURL(){ return 'DIRECT'; }").await;
    let clones: Vec<_> = (0..8).map(|_| e.clone()).collect();
    let answers = futures_join(clones).await;
    assert!(answers.iter().all(|r| r == "DIRECT"));
}

async fn futures_join(engines: Vec<PacEngine>) -> Vec<String> {
    let handles: Vec<_> = engines
        .into_iter()
        .map(|e| tokio::spawn(async move { e.eval_raw("http://a/", "a").await.unwrap().raw }))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_script_that_never_reads_the_url_is_cached_per_host_for_every_path() {
    let e = engine(
        "var n = 0; function FindProxyForURL(url, host) { n++; return 'PROXY p' + n + ':1'; }",
    )
    .await;
    let first = e.find_proxy("http://h.example/a").await.unwrap();
    let other_path = e.find_proxy("http://h.example/b?q=1").await.unwrap();
    let other_scheme = e.find_proxy("https://h.example/").await.unwrap();
    assert!(!first.cached && other_path.cached && other_scheme.cached);
    assert_eq!(first.raw, other_path.raw);
    let other_host = e.find_proxy("http://g.example/a").await.unwrap();
    assert!(!other_host.cached);

    let reads =
        engine("function FindProxyForURL(url, host) { return 'PROXY ' + url.length + ':1'; }")
            .await;
    let a = reads.find_proxy("http://h.example/a").await.unwrap();
    let b = reads.find_proxy("http://h.example/bb").await.unwrap();
    assert!(!b.cached);
    assert_ne!(a.raw, b.raw);
}

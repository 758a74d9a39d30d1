//! Compatibility over the third-party scripts in `shared/pac-corpus/` (read in place, never
//! copied): every well-formed script loads and answers; the deliberately broken ones fail with
//! the right typed error. Set `WAYPOST_PAC_CORPUS` to point elsewhere.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::options;
use waypost_pac::{ErrorKind, PacEngine, PacError, PacOptions};

pub(crate) fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("WAYPOST_PAC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pac-corpus")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("pac-corpus not found at {}; skipping", dir.display());
        None
    }
}

/// Scripts that are broken on purpose (syntax errors, no entry point, throw at load, escape).
const MUST_NOT_LOAD: &[&str] = &[
    "upstream/chromium/missing_close_brace.js",
    "upstream/chromium/no_entrypoint.js",
    "upstream/chromium/exception_findproxyforurl_during_init.js",
    "upstream/mozilla/failed_script.pac",
    "upstream/pac-resolver/sandbox_escape.pac",
    "upstream/pypac/malformed_anon_fn.pac",
    "upstream/pypac/malformed_empty.pac",
    "upstream/pypac/malformed_foobar.pac",
    "upstream/pypac/malformed_html.pac",
    "upstream/pypac/malformed_space.pac",
    "upstream/pypac/malformed_var_x_1.pac",
    "upstream/pypac/malformed_var_x_eq.pac",
];

fn scripts(root: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in [
        "upstream/alpaca",
        "upstream/chromium",
        "upstream/mozilla",
        "upstream/pac-resolver",
        "upstream/pacparser",
        "upstream/ph-web",
        "upstream/proxydetox",
        "upstream/pypac",
        "realworld",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if name.ends_with(".txt") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            out.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out.sort();
    out
}

/// Generous deadlines: this suite compares answers, not speed, and a large script (the
/// 300 KiB `gfw_whitelist.pac`) in a debug-built worker on a busy machine takes seconds to load.
fn generous(o: PacOptions) -> PacOptions {
    PacOptions {
        workers: 1,
        load_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(30),
        ..o
    }
}

fn corpus_options() -> PacOptions {
    generous(options())
}

/// Every script's answers (or error kinds) for three URLs, through one engine setup.
async fn answers(name: &str, text: &str, options: PacOptions) -> Vec<Result<String, ErrorKind>> {
    let loaded = PacEngine::new(text, options, None).await;
    if MUST_NOT_LOAD.contains(&name) {
        let err = loaded
            .err()
            .unwrap_or_else(|| panic!("{name} should not load"));
        assert_eq!(err.kind(), ErrorKind::Load, "{name}: {err}");
        return vec![Err(ErrorKind::Load)];
    }
    let engine = loaded.unwrap_or_else(|e| panic!("{name} failed to load: {e}"));
    let mut out = Vec::new();
    for url in [
        "http://www.example.com/path?q=1",
        "https://intranet/",
        "http://10.1.2.3/",
    ] {
        match engine.find_proxy(url).await {
            Ok(answer) => {
                assert!(!answer.entries.is_empty());
                out.push(Ok(answer.raw));
            }
            // Scripts from other suites that throw or return non-strings on purpose.
            Err(e @ (PacError::Call { .. } | PacError::NotAString { .. })) => {
                out.push(Err(e.kind()))
            }
            Err(other) => panic!("{name} on {url}: unexpected {other:?}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_well_formed_corpus_script_loads_and_answers_alike_in_threads_and_processes() {
    let Some(root) = corpus() else { return };
    let all = scripts(&root);
    assert!(all.len() > 50, "found only {} scripts", all.len());
    for (name, text) in &all {
        let in_threads = answers(name, text, corpus_options()).await;
        let in_processes = answers(name, text, generous(common::process_options())).await;
        assert_eq!(in_threads, in_processes, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_in_the_corpus_carry_positions() {
    let Some(root) = corpus() else { return };
    let text = std::fs::read_to_string(root.join("upstream/pypac/malformed_foobar.pac")).unwrap();
    let err = PacEngine::new(&text, corpus_options(), None)
        .await
        .err()
        .unwrap();
    assert!(err.position().is_some(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_363_kb_real_world_script_loads_and_answers_per_its_tables() {
    let Some(root) = corpus() else { return };
    let text = std::fs::read_to_string(root.join("realworld/gfw_whitelist.pac")).unwrap();
    assert!(text.len() > 300_000);
    let started = Instant::now();
    let mut o = corpus_options();
    o.dns_fixed.insert(
        "unknown-site.example".into(),
        vec!["8.8.4.4".parse().unwrap()],
    );
    let engine = PacEngine::new(&text, o, None).await.unwrap();
    eprintln!(
        "gfw_whitelist.pac loaded in {:?} (debug build)",
        started.elapsed()
    );
    // A white-listed domain goes direct; a plain host name goes direct.
    assert_eq!(
        engine
            .find_proxy("http://www.baidu.com/")
            .await
            .unwrap()
            .raw,
        "DIRECT;"
    );
    assert_eq!(
        engine.find_proxy("http://intranet/").await.unwrap().raw,
        "DIRECT;"
    );
    // A name that does not resolve goes through the "wall" proxy.
    assert_eq!(
        engine.find_proxy("http://nx.invalid/").await.unwrap().raw,
        "SOCKS5 127.0.0.1:1080;"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corporate_scripts_route_by_resolved_address() {
    let Some(root) = corpus() else { return };
    let text = std::fs::read_to_string(root.join("upstream/ph-web/brz-proxy.pac")).unwrap();
    let mut o = corpus_options();
    o.dns_fixed.insert(
        "internal.example".into(),
        vec!["10.20.30.40".parse().unwrap()],
    );
    o.dns_fixed.insert(
        "external.example".into(),
        vec!["93.184.216.34".parse().unwrap()],
    );
    let engine = PacEngine::new(&text, o, None).await.unwrap();
    let internal = engine.find_proxy("http://internal.example/").await.unwrap();
    let external = engine.find_proxy("http://external.example/").await.unwrap();
    assert_eq!(
        internal.raw, "DIRECT",
        "10/8 is in the script's direct list"
    );
    assert!(external.raw.starts_with("PROXY "), "{}", external.raw);
}

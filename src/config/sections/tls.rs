//! `[tls]`: the TLS policy, built once at load (trust store, client certificates — the
//! scopes' too — and CRLs read once), its problems under their `tls.` (or `scopes[i].`) keys.

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use waypost_tls::config::ClientCertConfig;

/// The TLS policy of `[tls]`, loading the scopes' client certificates (`scope_certs`: key
/// path, files) after `tls.client_certs`; `None` when it cannot be built (each problem noted).
pub fn tls_policy(
    raw: &RawConfig,
    scope_certs: Vec<(String, ClientCertConfig)>,
    p: &mut Problems,
) -> Option<waypost_tls::TlsPolicy> {
    let mut cfg = raw.tls.clone();
    cfg.scope_client_certs = scope_certs;
    // the app exposes its metrics through its own registry
    let tls_policy = waypost_tls::TlsPolicy::new(&cfg, None);
    if let Err(e) = &tls_policy {
        for problem in e.problems.clone() {
            let key = if problem.path.starts_with("tls") || problem.path.starts_with("scopes") {
                problem.path
            } else {
                format!("tls.{}", problem.path)
            };
            p.add(key, problem.message);
        }
    }

    tls_policy.ok()
}

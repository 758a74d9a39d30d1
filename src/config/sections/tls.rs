//! `[tls]`: the TLS policy, built once at load (trust store, client certificates and CRLs
//! read once), its problems under their `tls.` keys.

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;

/// The TLS policy of `[tls]`; `None` when it cannot be built (each problem noted).
pub fn tls_policy(raw: &RawConfig, p: &mut Problems) -> Option<waypost_tls::TlsPolicy> {
    // the app exposes its metrics through its own registry
    let tls_policy = waypost_tls::TlsPolicy::new(&raw.tls, None);
    if let Err(e) = &tls_policy {
        for problem in e.problems.clone() {
            let key = if problem.path.starts_with("tls") {
                problem.path
            } else {
                format!("tls.{}", problem.path)
            };
            p.add(key, problem.message);
        }
    }

    tls_policy.ok()
}

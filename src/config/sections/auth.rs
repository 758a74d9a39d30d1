//! `[auth]`: upstream proxy authentication, checked by the auth crate's own rules, its problems
//! under `auth.` keys.

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;

/// Notes every problem of `[auth]`.
pub fn check_auth(raw: &RawConfig, p: &mut Problems) {
    if let Err(e) = raw.auth.validate() {
        for problem in e.0 {
            p.add(format!("auth.{}", problem.key), problem.message);
        }
    }
}

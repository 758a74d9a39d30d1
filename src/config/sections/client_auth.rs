//! `[client_auth]` and `[socks]`: the login clients must give to use the proxy.

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::config::ClientAuth;

/// `[client_auth]`: `None` when not configured or not valid (its problem noted).
pub fn client_auth(raw: &RawConfig, p: &mut Problems) -> Option<ClientAuth> {
    let a = &raw.client_auth;
    if a.username.is_empty() {
        if !a.password.is_empty() || !a.password_file.is_empty() {
            p.add("client_auth.username", "a password is set but no username");
        }
        return None;
    }
    let password = match (a.password.is_empty(), a.password_file.is_empty()) {
        (false, true) => a.password.clone(),
        // refused when group or others can read it, like auth.password_file
        (true, false) => {
            match waypost_auth::credentials::read_private_file(a.password_file.as_ref()) {
                Ok(s) => s.expose().trim_end_matches('\r').to_string(),
                Err(e) => {
                    p.add("client_auth.password_file", e);
                    return None;
                }
            }
        }
        (false, false) => {
            p.add(
                "client_auth.password",
                "set either password or password_file, not both",
            );
            return None;
        }
        (true, true) => {
            p.add(
                "client_auth.password",
                "a username is set but no password or password_file",
            );
            return None;
        }
    };
    if a.username.contains(':') {
        p.add("client_auth.username", "must not contain ':'");
    }
    Some(ClientAuth {
        username: a.username.clone(),
        password,
    })
}

/// `[socks]`'s login: `None` when no user name is set.
pub fn socks_auth(raw: &RawConfig) -> Option<ClientAuth> {
    (!raw.socks.username.is_empty()).then(|| ClientAuth {
        username: raw.socks.username.clone(),
        password: raw.socks.password.clone(),
    })
}

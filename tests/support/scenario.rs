//! Scenario builders: the set-ups many tests start from, each named as what the test begins
//! with, so that a test reads as its scenario and its assertions rather than as set-up.
//!
//! [`BehindSquid`]: waypost in front of a real squid (in one of the modes of
//! `tests/peers/start-squid.sh`) with an in-process echo origin behind it, the squid as
//! waypost's upstream and the test user's credentials configured.

use std::net::SocketAddr;

use waypost::config::raw::RawConfig;
use waypost::listen::server::Running;

use super::harness::{self, Origin};
use super::peers::{Squid, PASSWORD, USER};

/// waypost -> squid -> echo origin, all on loopback; each peer lives as long as its field (bind
/// the squid as `squid: _squid`, not `..`, when a test does not read it).
pub struct BehindSquid {
    pub squid: Squid,
    pub origin: Origin,
    pub proxy: Running,
}

impl BehindSquid {
    /// A squid demanding `mode`, an echo origin, and waypost using the squid (by the plain
    /// name `localhost`, which the default autologon policy sends credentials to) with the
    /// test user's name and password; `tweak` then adjusts waypost's config (it gets the
    /// squid's port).
    pub async fn start(mode: &str, tweak: impl FnOnce(&mut RawConfig, u16)) -> BehindSquid {
        BehindSquid::chain(mode, |c, port| {
            upstream_with_credentials(c, port);
            tweak(c, port);
        })
        .await
    }

    /// An open squid (no authentication) as the upstream at `127.0.0.1:port`, no credentials
    /// configured; `tweak` as for [`BehindSquid::start`].
    pub async fn open(tweak: impl FnOnce(&mut RawConfig, u16)) -> BehindSquid {
        BehindSquid::chain("open", |c, port| {
            c.route.upstream = format!("http://127.0.0.1:{port}");
            c.route.bypass_loopback = false;
            tweak(c, port);
        })
        .await
    }

    async fn chain(mode: &str, configure: impl FnOnce(&mut RawConfig, u16)) -> BehindSquid {
        let mode = mode.to_string();
        let squid = tokio::task::spawn_blocking(move || Squid::start(&mode))
            .await
            .expect("squid starts");
        let origin = Origin::echo().await;
        let proxy = harness::start_proxy(|c| configure(c, squid.port)).await;
        BehindSquid {
            squid,
            origin,
            proxy,
        }
    }

    /// waypost's first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addrs[0]
    }

    /// A GET of `path` on the origin through waypost, on a new client connection.
    pub async fn get(&self, path: &str) -> (u16, http::HeaderMap, String) {
        harness::get(self.addr(), &self.origin.url(path)).await
    }
}

/// The squid at `localhost:port` as the upstream, with the test user's credentials.
pub fn upstream_with_credentials(c: &mut RawConfig, port: u16) {
    c.route.upstream = format!("http://localhost:{port}");
    c.route.bypass_loopback = false;
    c.auth.user = Some(USER.to_string());
    c.auth.password = Some(waypost_auth::credentials::SecretString::new(PASSWORD));
}

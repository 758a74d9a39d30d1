//! Kerberos from a keytab in a long-running waypost, against a real MIT KDC whose tickets
//! live 2 minutes: waypost obtains and renews its ticket-granting ticket itself (no external
//! `kinit -k` loop) and keeps authenticating past two ticket lifetimes without a restart.
//! Takes about 4.5 minutes of wall time (ticket lifetimes cannot be faked); its own binary
//! because KRB5_CONFIG is process-wide.

#![cfg(feature = "gssapi")]

mod support;

use std::time::{Duration, Instant};

use support::harness::{self, Origin};
use support::peers::{Kdc, Squid, USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_identity_keeps_authenticating_past_two_ticket_lifetimes_without_a_restart() {
    let life = Duration::from_secs(120);
    let kdc = Kdc::start_short_lived("2m");
    // SAFETY: set before any other thread of this test reads the environment (one test per binary)
    unsafe { std::env::set_var("KRB5_CONFIG", &kdc.krb5_conf) };
    let squid = Squid::builder("negotiate").kdc(&kdc).start();
    let dir = tempfile::tempdir().unwrap();
    let keytab = kdc.user_keytab(&dir.path().join("user.keytab"));
    let origin = Origin::echo().await;
    let port = squid.port;
    let proxy = harness::start_proxy(|c| {
        c.route.upstream = format!("http://localhost:{port}");
        c.route.bypass_loopback = false;
        c.auth.user = Some(format!("{USER}@EXAMPLE.TEST"));
        c.auth.keytab = Some(keytab.clone());
    })
    .await;
    let start = Instant::now();
    let mut handshakes = 0;
    while start.elapsed() < 2 * life + Duration::from_secs(30) {
        // a CONNECT tunnel is never pooled: every one is a new Negotiate handshake
        let reply = harness::raw(
            proxy.addrs[0],
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /kt-{handshakes} HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", origin.addr).as_bytes(),
        )
        .await;
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.contains(&format!("GET /kt-{handshakes}")),
            "after {:?}: {reply}",
            start.elapsed()
        );
        handshakes += 1;
        // pacing across the ticket lifetimes, not a wait for a condition
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let log = std::fs::read_to_string(kdc.log()).unwrap_or_default();
    let issued = log
        .lines()
        .filter(|l| {
            l.contains("AS_REQ")
                && l.contains("ISSUE")
                && l.contains(&format!("{USER}@EXAMPLE.TEST for krbtgt/"))
        })
        .count();
    // renewed ahead of expiry (about every 80 s), not once per handshake, not only once
    assert!(
        issued >= 3 && issued * 2 < handshakes,
        "{issued} ticket-granting tickets for {handshakes} handshakes:\n{log}"
    );
    let squid_log = squid.cache_log();
    assert!(squid_log.contains("authenticated"), "{squid_log}");
}

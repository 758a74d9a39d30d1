//! Kerberos from a keytab in a long-running waypost, against a real MIT KDC whose tickets
//! live 40 seconds: waypost obtains and renews its ticket-granting ticket itself (no external
//! `kinit -k` loop) and keeps authenticating past two ticket lifetimes without a restart.
//! Takes about 90 s of wall time (the KDC's clock is real; the lifetime is the shortest that
//! leaves the renewal, at two thirds of a ticket's life and never sooner than 10 s, a margin
//! over the KDC's 10 s clock skew). waypost runs as its own process: `KRB5_CONFIG`, which
//! names the test KDC, is given to it alone.

#![cfg(feature = "gssapi")]

use crate::support;

use std::time::{Duration, Instant};

use support::harness::{self, Origin};
use support::peers::{Kdc, Squid, USER};
use support::process::spawn_waypost_with_env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_identity_keeps_authenticating_past_two_ticket_lifetimes_without_a_restart() {
    let life = Duration::from_secs(40);
    let kdc = Kdc::start_short_lived("40s");
    let squid = Squid::builder("negotiate").kdc(&kdc).start();
    let dir = tempfile::tempdir().unwrap();
    let keytab = kdc.user_keytab(&dir.path().join("user.keytab"));
    let origin = Origin::echo().await;
    let config = dir.path().join("waypost.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\n[route]\nupstream = \"http://localhost:{}\"\n\
             bypass_loopback = false\n[tls]\nconnect_ports = []\n[auth]\nuser = \"{USER}@EXAMPLE.TEST\"\nkeytab = {:?}\n",
            squid.port,
            keytab.display().to_string()
        ),
    )
    .unwrap();
    let env = [("KRB5_CONFIG", kdc.krb5_conf.as_os_str())];
    let (_waypost, addr, _lines) = spawn_waypost_with_env(&config, None, &env).await;
    let start = Instant::now();
    let mut handshakes = 0;
    while start.elapsed() < 2 * life + Duration::from_secs(10) {
        // a CONNECT tunnel is never pooled: every one is a new Negotiate handshake
        let reply = harness::raw(
            addr,
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
        tokio::time::sleep(life / 8).await;
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
    // renewed ahead of expiry (about every 27 s), not once per handshake, not only once
    assert!(
        issued >= 3 && issued * 2 < handshakes,
        "{issued} ticket-granting tickets for {handshakes} handshakes:\n{log}"
    );
    let squid_log = squid.cache_log();
    assert!(squid_log.contains("authenticated"), "{squid_log}");
}

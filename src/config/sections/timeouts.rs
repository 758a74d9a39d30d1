//! `[timeouts]`: every wait of the proxy, each from config.

use crate::config::problems::Problems;
use crate::config::raw::RawTimeouts;
use crate::config::Timeouts;

/// `[timeouts]`, every value checked (each problem noted) before any is given up on.
pub fn timeouts(t: &RawTimeouts, p: &mut Problems) -> Option<Timeouts> {
    let resolve = p.duration_or_infinite("timeouts.resolve", &t.resolve);
    let connect = p.duration("timeouts.connect", &t.connect);
    let send = p.duration("timeouts.send", &t.send);
    let receive = p.duration("timeouts.receive", &t.receive);
    let receive_response = p.duration("timeouts.receive_response", &t.receive_response);
    let relay_read = p.duration("timeouts.relay_read", &t.relay_read);
    let tunnel_idle = p.duration("timeouts.tunnel_idle", &t.tunnel_idle);
    let client_header = p.duration("timeouts.client_header", &t.client_header);
    let pool_idle = p.duration("timeouts.pool_idle", &t.pool_idle);
    Some(Timeouts {
        resolve: resolve?,
        connect: connect?,
        send: send?,
        receive: receive?,
        receive_response: receive_response?,
        relay_read: relay_read?,
        tunnel_idle: tunnel_idle?,
        client_header: client_header?,
        pool_idle: pool_idle?,
    })
}

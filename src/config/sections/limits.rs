//! `[limits]`: sizes, connection caps and the minimum request body rate.

use std::num::NonZeroU32;

use crate::config::problems::Problems;
use crate::config::raw::RawConfig;
use crate::config::{Limits, MinDataRate};

/// `[limits]`, every value checked; `None` when one does not parse (its problem noted).
pub fn limits(raw: &RawConfig, p: &mut Problems) -> Option<Limits> {
    let body_grace = p.duration(
        "limits.min_request_body_grace",
        &raw.limits.min_request_body_grace,
    );
    let l = &raw.limits;
    if l.max_response_header_size < 1024 {
        p.add(
            "limits.max_response_header_size",
            "must be at least 1024 bytes",
        );
    }
    if l.max_request_header_size < 8192 {
        p.add(
            "limits.max_request_header_size",
            "must be at least 8192 bytes (hyper's minimum buffer)",
        );
    }
    if l.connect_retries == 0 {
        p.add("limits.connect_retries", "must be at least 1");
    }

    let body_grace = body_grace?;
    Some(Limits {
        max_conns_per_server: (l.max_conns_per_server > 0).then_some(l.max_conns_per_server),
        max_response_header_size: l.max_response_header_size,
        max_request_header_size: l.max_request_header_size,
        max_response_drain_size: l.max_response_drain_size,
        connect_retries: l.connect_retries,
        max_idle_per_server: l.max_idle_per_server,
        max_replay_memory: l.max_replay_memory,
        min_request_body_rate: NonZeroU32::new(l.min_request_body_rate).map(|rate| MinDataRate {
            bytes_per_second: rate,
            grace: body_grace,
        }),
        keep_alive: l.keep_alive,
    })
}

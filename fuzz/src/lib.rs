//! The bodies of waypost's fuzz targets as plain functions of the input bytes, one per parser
//! of untrusted input. They build on stable: `src/replay.rs` runs each over its checked-in
//! corpus (`corpus/<target>/`) and every past crash input (`artifacts/<target>/`) in every
//! `cargo test`, and the libFuzzer binaries of `fuzz_targets/` (nightly, cargo-fuzz, the
//! `libfuzzer` feature; `scripts/fuzz.sh`) only wrap them. A function returns normally for any
//! input the code under test handles; a defect shows as a panic (a failed check or a panic in
//! the code itself), which both the fuzzer and the replay report.

mod auth;
mod net;
mod pac;

pub use auth::{ntlm_challenge, proxy_authenticate, spnego_token};
pub use net::{config_load, dhcp_ack, request_target, socks_reply};
pub use pac::{pac_script, pac_verdict};

#[cfg(test)]
mod replay;

/// Every target by its name (the name of its `fuzz_targets/<name>.rs` and of its corpus folder).
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("config_load", config_load),
    ("dhcp_ack", dhcp_ack),
    ("ntlm_challenge", ntlm_challenge),
    ("pac_script", pac_script),
    ("pac_verdict", pac_verdict),
    ("proxy_authenticate", proxy_authenticate),
    ("request_target", request_target),
    ("socks_reply", socks_reply),
    ("spnego_token", spnego_token),
];

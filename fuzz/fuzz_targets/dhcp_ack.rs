//! libFuzzer entry for `dhcp_ack` (the body and what it checks: `waypost_fuzz::dhcp_ack`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::dhcp_ack(data));

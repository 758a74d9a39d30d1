//! libFuzzer entry for `proxy_authenticate` (the body and what it checks: `waypost_fuzz::proxy_authenticate`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::proxy_authenticate(data));

//! libFuzzer entry for `spnego_token` (the body and what it checks: `waypost_fuzz::spnego_token`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::spnego_token(data));

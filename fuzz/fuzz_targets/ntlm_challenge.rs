//! libFuzzer entry for `ntlm_challenge` (the body and what it checks: `waypost_fuzz::ntlm_challenge`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::ntlm_challenge(data));

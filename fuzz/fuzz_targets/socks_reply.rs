//! libFuzzer entry for `socks_reply` (the body and what it checks: `waypost_fuzz::socks_reply`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| waypost_fuzz::socks_reply(data));

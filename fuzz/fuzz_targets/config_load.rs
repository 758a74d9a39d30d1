//! The config loader, TOML text -> validated `Config`: a hand-edited or half-written file must
//! load or be refused with errors, never panic. The text goes through the same path as
//! `waypost --config FILE` (a file, no environment, no command-line overrides).
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use waypost::config::{load_with_env, Overrides};

/// One scratch file per fuzzing process (libFuzzer forks jobs as separate processes).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("waypost-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = scratch();
    std::fs::write(path, text).expect("scratch file in the temp dir");
    match load_with_env(Some(path), &Overrides::default(), HashMap::new()) {
        Ok(config) => drop(config),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
});

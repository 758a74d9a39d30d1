//! (The unit tests of this crate.) Every fuzz target replayed over its checked-in corpus (`corpus/<target>/`) and every past
//! crash input (`artifacts/<target>/`), on stable, in every `cargo test`: a finding of a fuzzing
//! campaign stays a failing test until it is fixed, without nightly or cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::TARGETS;

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted (none when it does not exist).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_libfuzzer_binary_has_a_replayed_body_and_a_seed_corpus() {
    let mut binaries: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    binaries.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    replayed.sort();
    assert_eq!(
        binaries, replayed,
        "fuzz_targets/*.rs and waypost_fuzz::TARGETS differ"
    );
    for name in &replayed {
        assert!(
            !inputs(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "corpus/{name}/ has no seed"
        );
    }
}

#[test]
fn every_target_handles_its_corpus_and_every_past_crash_input() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, body) in TARGETS {
        for dir in ["corpus", "artifacts"] {
            for file in inputs(&fuzz_dir().join(dir).join(name)) {
                let data = std::fs::read(&file).unwrap();
                if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                    failures.push(format!("{name}: {}", file.display()));
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 40, "only {replayed} inputs replayed");
    assert!(
        failures.is_empty(),
        "inputs that fail (the panic is printed above):\n{}",
        failures.join("\n")
    );
}

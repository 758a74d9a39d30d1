//! The configuration reference (docs/configuration.md) and config/default.toml name the same
//! keys: a key added to the file without a row in the reference (or a row for a key that no
//! longer exists) fails here.
//!
//! Keys of default.toml are its `key = value` lines under their table, plus the commented
//! `# key = value` lines (optional keys without a default, such as `auth.user`) and commented
//! `# [[table]]` examples (`tls.exceptions.hosts`); a table without keys (`[dns.hosts]`) counts
//! as one key. Keys of the reference are the first backticked word of each table row.

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `[a.b]`, `[[a.b]]`, with or without a leading `# `; the table's dotted name.
fn table_header(line: &str) -> Option<String> {
    let l = line.strip_prefix("# ").unwrap_or(line).trim();
    let inner = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
    let inner = inner.or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
    ok.then(|| inner.to_string())
}

/// `name = ...` (or `# name = ...`): the bare lowercase key name.
fn key_name(line: &str) -> Option<&str> {
    let l = match line.strip_prefix("# ") {
        Some(rest) if !rest.starts_with(' ') => rest,
        Some(_) => return None,
        None if line.starts_with('#') => return None,
        None => line,
    };
    let (name, _) = l.split_once(" = ")?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(name)
}

fn default_toml_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut tables = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = table_header(line) {
            tables.push(t.clone());
            table = t;
        } else if let Some(name) = key_name(line) {
            keys.insert(if table.is_empty() {
                name.to_string()
            } else {
                format!("{table}.{name}")
            });
        }
    }
    for t in tables {
        let prefix = format!("{t}.");
        if !keys.iter().any(|k| k.starts_with(&prefix)) {
            keys.insert(t);
        }
    }
    keys
}

fn reference_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|r| r.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_key_of_the_default_file_is_in_the_reference_and_every_row_is_a_key() {
    let defaults = default_toml_keys(&read("config/default.toml"));
    let reference = reference_keys(&read("docs/configuration.md"));
    let undocumented: Vec<_> = defaults.difference(&reference).collect();
    let stale: Vec<_> = reference.difference(&defaults).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "keys in config/default.toml without a row in docs/configuration.md: {undocumented:?}\n\
         rows in docs/configuration.md for keys not in config/default.toml: {stale:?}"
    );
}

#[test]
fn every_tls_key_is_documented() {
    // The ~20 [tls] keys were in no documentation before; make sure the parser sees them.
    let defaults = default_toml_keys(&read("config/default.toml"));
    let tls: Vec<_> = defaults.iter().filter(|k| k.starts_with("tls.")).collect();
    assert!(tls.len() >= 25, "{tls:?}");
    for k in [
        "tls.min_version",
        "tls.crl_fetch.timeout",
        "tls.intercept.ca_dir",
        "tls.sni_rules.require_sni",
        "tls.exceptions.allow",
        "tls.client_certs.key",
        "auth.user",
        "auth.spn_override",
        "dns.hosts",
    ] {
        assert!(
            defaults.contains(k),
            "{k} not found in default.toml: {defaults:?}"
        );
    }
}

#[test]
fn the_key_parser_reads_tables_comments_and_empty_tables() {
    let text = "a = 1\n# Evaluation workers (0 = one per core)\n#   keyctl add x = y\n\
                [s]\nb = \"x\"\n# c = 2\n# [[s.list]]\n# d = 3\n[e.f]\n";
    let keys: Vec<_> = default_toml_keys(text).into_iter().collect();
    assert_eq!(keys, ["a", "e.f", "s.b", "s.c", "s.list.d"]);
}

#[test]
fn the_readme_points_to_the_reference() {
    assert!(read("README.md").contains("docs/configuration.md"));
}

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

/// Rows of the reference whose default is a list of scalars (`` `[...]` ``, not `[[...]]`).
fn list_keys_of_the_reference(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|r| {
            let (key, rest) = r.split_once("` | `")?;
            (rest.starts_with('[') && !rest.starts_with("[[")).then(|| key.to_string())
        })
        .collect()
}

/// Two valid entries for each list key, as they would be written in the environment (files
/// the key names are written to `dir`).
fn two_entries(key: &str, dir: &Path) -> Option<[String; 2]> {
    use waypost_testsupport::ca::TestCa;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let pair = |a: &str, b: &str| Some([a.to_string(), b.to_string()]);
    match key {
        "listen" => pair("127.0.0.1:0", "[::1]:0"),
        "admin_listen" | "socks_listen" => pair("127.0.0.1:0", "127.0.0.2:0"),
        "allow" | "admin_allow" => pair("127.0.0.0/8", "10.1.0.0/16"),
        "route.bypass" => pair("*.a.corp", "10.0.0.0/8"),
        "pac.my_ip" => pair("10.1.2.3", "10.1.2.4"),
        "pac.wpad_interfaces" => pair("eth0", "wlan0"),
        "pac.wpad_domains" => pair("a.corp", "b.corp"),
        "auth.allow_proxies" => pair("proxy.a.corp", "proxy.b.corp"),
        "auth.intranet_suffixes" => pair("a.corp", "b.corp"),
        "tls.ca_files" => {
            Some(["a", "b"].map(|n| write(&format!("{n}-ca.pem"), TestCa::new(n).pem.as_bytes())))
        }
        "tls.crl_files" => {
            Some(["a", "b"].map(|n| write(&format!("{n}.crl"), &TestCa::new(n).crl(&[7]))))
        }
        "tls.connect_ports" => pair("443", "8080"),
        "tls.intercept.hosts" | "tls.sni_rules.allow" | "tls.sni_rules.deny" => {
            pair("*.a.corp", "b.corp")
        }
        "dns.servers" => pair("10.0.0.53", "10.0.0.54:53"),
        _ => None,
    }
}

#[test]
fn every_list_key_of_the_reference_accepts_a_comma_separated_environment_value() {
    use std::collections::HashMap;
    use waypost::config::{self, Overrides};

    let keys = list_keys_of_the_reference(&read("docs/configuration.md"));
    assert!(keys.len() >= 15, "{keys:?}");
    let dir = tempfile::tempdir().unwrap();
    for key in &keys {
        let entries = two_entries(key, dir.path()).unwrap_or_else(|| {
            panic!("{key}: a list key of the reference without sample entries in this test")
        });
        // the same list written in a file ...
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        let quoted: Vec<String> = if key == "tls.connect_ports" {
            entries.to_vec()
        } else {
            entries.iter().map(|e| format!("{e:?}")).collect()
        };
        let mut toml = String::new();
        if !table.is_empty() {
            toml.push_str(&format!("[{table}]\n"));
        }
        toml.push_str(&format!("{name} = [{}]\n", quoted.join(", ")));
        let file = dir.path().join(format!("{key}.toml"));
        std::fs::write(&file, &toml).unwrap();
        let from_file = config::load_with_env(Some(&file), &Overrides::default(), HashMap::new())
            .unwrap_or_else(|e| panic!("{key} from the file {toml}: {e}"));
        // ... and in the environment, comma-separated
        let var = format!("WAYPOST_{}", key.to_uppercase().replace('.', "__"));
        let value = entries.join(",");
        let env = HashMap::from([(var.clone(), value.clone())]);
        let from_env = config::load_with_env(None, &Overrides::default(), env)
            .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
        assert_eq!(
            format!("{from_env:?}"),
            format!("{from_file:?}"),
            "{var}={value} must load as the file's list"
        );
        // one entry alone is a list of one
        let env = HashMap::from([(var.clone(), entries[0].clone())]);
        config::load_with_env(None, &Overrides::default(), env)
            .unwrap_or_else(|e| panic!("{var}={}: {e}", entries[0]));
    }
}

#[test]
fn an_empty_environment_list_is_the_empty_list_and_entries_are_trimmed() {
    use std::collections::HashMap;
    use waypost::config::{self, Overrides};

    let load = |value: &str| {
        let env = HashMap::from([("WAYPOST_TLS__CONNECT_PORTS".to_string(), value.to_string())]);
        let cfg = config::load_with_env(None, &Overrides::default(), env)
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        format!("{:?}", cfg.tls)
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("any-port.toml");
    std::fs::write(&file, "[tls]\nconnect_ports = []\n").unwrap();
    let any_port =
        config::load_with_env(Some(&file), &Overrides::default(), HashMap::new()).unwrap();
    assert_eq!(load(""), format!("{:?}", any_port.tls));
    std::fs::write(&file, "[tls]\nconnect_ports = [443, 8080]\n").unwrap();
    let two = config::load_with_env(Some(&file), &Overrides::default(), HashMap::new()).unwrap();
    assert_eq!(load(" 443 , 8080 "), format!("{:?}", two.tls));
    assert_ne!(load("443"), load(""));
}

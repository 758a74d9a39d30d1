//! Deserialises the merged configuration tree into [`RawConfig`] while collecting every
//! unknown key and every value of the wrong type, instead of stopping at the first.
//!
//! serde stops at the first error, and the `[tls]` and `[auth]` sections (owned by their own
//! crates) deny unknown fields themselves. So this module deserialises in rounds: each failed
//! round names one key (the config crate attaches the dotted path to its errors; a
//! `deny_unknown_fields` error names the field inside the section it reports), that key is
//! recorded and removed from the tree so its default applies, and the next round runs. It
//! knows nothing about values' meaning (that is [`super::validate`]) and does no I/O.

use config::{Value, ValueKind};

use super::raw::RawConfig;

/// One key that could not be taken as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub message: String,
}

const UNKNOWN: &str = "unknown key (see config/default.toml for every key)";

/// More rounds than any real file has bad keys; a bound so a key that cannot be removed
/// cannot loop.
const MAX_ROUNDS: usize = 256;

/// Deserialises `tree`; `Err` only when a problem could not be pinned to a removable key
/// (then the problems found so far, with that last one, are returned).
pub fn deserialize(mut tree: Value) -> Result<(RawConfig, Vec<KeyProblem>), Vec<KeyProblem>> {
    let mut problems = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let mut unknown = Vec::new();
        let result: Result<RawConfig, config::ConfigError> =
            serde_ignored::deserialize(tree.clone(), |path| {
                unknown.push(indexed(&path.to_string()))
            });
        match result {
            Ok(raw) => {
                problems.extend(unknown.into_iter().map(|key| KeyProblem {
                    key,
                    message: UNKNOWN.into(),
                }));
                return Ok((raw, problems));
            }
            Err(e) => {
                let problem = describe(&e);
                if !remove(&mut tree, &problem.key) {
                    problems.push(problem);
                    return Err(problems);
                }
                problems.push(problem);
            }
        }
    }
    problems.push(KeyProblem {
        key: "config".into(),
        message: format!("more than {MAX_ROUNDS} problems; fix these first"),
    });
    Err(problems)
}

/// Whether `key` (`a.b`, `a.b[1].c`) names a configuration key: a probe (an empty table) set
/// at that path alone is refused as a value of the wrong type, or taken, but never reported as
/// an unknown key. Used to decide whether a key read from text that does not parse may be shown.
pub fn is_known(key: &str) -> bool {
    let Some(steps) = steps(key) else {
        return false;
    };
    let mut probe = Value::new(None, ValueKind::Table(Default::default()));
    let mut path = Vec::new();
    for step in steps.iter().rev() {
        probe = match step {
            Step::Key(k) => {
                path.push(k.to_string());
                Value::new(
                    None,
                    ValueKind::Table([(k.to_string(), probe)].into_iter().collect()),
                )
            }
            Step::Index(_) => {
                path.push("[0]".into());
                Value::new(None, ValueKind::Array(vec![probe]))
            }
        };
    }
    path.reverse();
    let probed = path.join(".").replace(".[", "[");
    let problems = match deserialize(probe) {
        Ok((_, problems)) | Err(problems) => problems,
    };
    problems.iter().all(|p| p.message != UNKNOWN)
        && (problems.is_empty() || problems.iter().any(|p| p.key == probed))
}

/// The key and a message for one deserialisation error. Under a secret key
/// ([`crate::redact::is_secret_key`]) the value is never quoted: only its type is named, and a
/// message that may quote it is replaced.
/// `scopes.0.timeouts.x` as `scopes[0].timeouts.x`: the key path spelling of every report.
fn indexed(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 2);
    for (i, seg) in path.split('.').enumerate() {
        match (i, seg.parse::<usize>()) {
            (i, Ok(n)) if i > 0 => out.push_str(&format!("[{n}]")),
            (0, _) => out.push_str(seg),
            _ => {
                out.push('.');
                out.push_str(seg);
            }
        }
    }
    out
}

fn describe(e: &config::ConfigError) -> KeyProblem {
    let (key, inner) = match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => {
            // "string \"...\"", "64-bit integer `5`": the type is the words before the value
            let found = unexpected.to_string();
            let found = if crate::redact::is_secret_key(key) {
                found
                    .split(['`', '"'])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            } else {
                found
            };
            (
                key.clone(),
                format!("invalid type: {found}, expected {expected}"),
            )
        }
        config::ConfigError::At {
            key: Some(key),
            error,
            ..
        } => (key.clone(), error.to_string()),
        other => (String::new(), other.to_string()),
    };
    // `deny_unknown_fields`: "unknown field `min_versoin`, expected one of ..."
    if let Some(field) = inner
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        return KeyProblem {
            key,
            message: UNKNOWN.into(),
        };
    }
    let key = dotted(&key);
    let secret_message =
        crate::redact::is_secret_key(&key) && !matches!(e, config::ConfigError::Type { .. });
    KeyProblem {
        message: if secret_message {
            "invalid value (the reason is not shown: it may quote the secret)".into()
        } else {
            inner
        },
        key: if key.is_empty() { "config".into() } else { key },
    }
}

/// `a[0]b`, as the config crate names a field of an array's element, written `a[0].b`.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
        {
            out.push('.');
        }
    }
    out
}

/// One step of a dotted key path: a table key or an array index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `tls.exceptions[0].allow[1]` -> Key(tls) Key(exceptions) Index(0) Key(allow) Index(1).
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (n, after) = r.split_once(']')?;
            out.push(Step::Index(n.parse().ok()?));
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Removes the value at `path`; false when there is none.
fn remove(tree: &mut Value, path: &str) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let (last, parents) = steps.split_last().expect("steps are never empty");
    let mut node = tree;
    for step in parents {
        node = match (step, &mut node.kind) {
            (Step::Key(k), ValueKind::Table(t)) => match t.get_mut(*k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), ValueKind::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, &mut node.kind) {
        (Step::Key(k), ValueKind::Table(t)) => t.remove(*k).is_some(),
        // An element of the wrong type: drop it, the rest of the list still counts.
        (Step::Index(i), ValueKind::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(toml: &str) -> Value {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .cache
    }

    fn keys(problems: &[KeyProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn unknown_keys_inside_sections_that_deny_them_are_all_collected() {
        let t = tree(
            "[route]\nupstrem = \"x\"\n[tls]\nmin_versoin = \"1.3\"\nuse_sytem_roots = true\n\
             [tls.crl_fetch]\ntimeuot = \"1s\"\n[auth]\nschem = \"ntlm\"\n",
        );
        let (_, problems) = deserialize(t).unwrap();
        let mut k = keys(&problems);
        k.sort();
        assert_eq!(
            k,
            [
                "auth.schem",
                "route.upstrem",
                "tls.crl_fetch.timeuot",
                "tls.min_versoin",
                "tls.use_sytem_roots"
            ]
        );
        assert!(problems.iter().all(|p| p.message == UNKNOWN));
    }

    #[test]
    fn values_of_the_wrong_type_are_reported_by_key_and_the_rest_still_loads() {
        let t = tree(
            "max_client_connections = \"many\"\n[limits]\nconnect_retries = [1]\n\
             [tls.crl_fetch]\ntimeout = \"soon\"\n[log]\nlevel = \"debug\"\n",
        );
        let (raw, problems) = deserialize(t).unwrap();
        let mut k = keys(&problems);
        k.sort();
        assert_eq!(
            k,
            [
                "limits.connect_retries",
                "max_client_connections",
                "tls.crl_fetch.timeout"
            ],
            "{problems:?}"
        );
        assert_eq!(raw.log.level, "debug");
        assert_eq!(raw.limits.connect_retries, 5, "the default applies");
    }

    #[test]
    fn a_bad_element_of_a_list_is_named_by_its_index() {
        let t = tree("[tls]\nconnect_ports = [443, \"http\", 8443]\n");
        let (raw, problems) = deserialize(t).unwrap();
        assert_eq!(keys(&problems), ["tls.connect_ports[1]"], "{problems:?}");
        assert_eq!(raw.tls.connect_ports, [443, 8443]);
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_named_by_its_type_only() {
        let t = tree("[client_auth]\nusername = \"u\"\npassword = [\"CANARY\"]\n[socks]\npassword = { a = \"CANARY\" }\n");
        let (_, problems) = deserialize(t).unwrap();
        assert_eq!(keys(&problems).len(), 2, "{problems:?}");
        assert!(!format!("{problems:?}").contains("CANARY"), "{problems:?}");
    }

    #[test]
    fn a_field_of_an_array_element_is_named_with_its_dot() {
        assert_eq!(
            dotted("auth.proxies[0]password"),
            "auth.proxies[0].password"
        );
        assert_eq!(dotted("tls.connect_ports[1]"), "tls.connect_ports[1]");
        assert_eq!(dotted("a[0][1]b"), "a[0][1].b");
    }

    #[test]
    fn known_keys_are_told_from_words_that_are_not_keys() {
        for key in [
            "listen",
            "client_auth.password",
            "route.upstream",
            "tls.min_version",
            "tls.crl_fetch.timeout",
            "auth.password",
            "auth.proxies[1].password",
            "pac.source",
            "dns.hosts.proxy",
        ] {
            assert!(is_known(key), "{key}");
        }
        for key in [
            "CANARY",
            "route.CANARY",
            "tls.CANARY",
            "listen.CANARY",
            "a b",
            "",
        ] {
            assert!(!is_known(key), "{key}");
        }
    }
}

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
            serde_ignored::deserialize(tree.clone(), |path| unknown.push(path.to_string()));
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

/// The key and a message for one deserialisation error.
fn describe(e: &config::ConfigError) -> KeyProblem {
    let (key, inner) = match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => (
            key.clone(),
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
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
    KeyProblem {
        key: if key.is_empty() { "config".into() } else { key },
        message: inner,
    }
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
}

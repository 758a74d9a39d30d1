//! Where a key is in the configuration file, and which key a line of it sets: the `file:line`
//! of each problem, and the key named in a syntax error. Plain text work on the file as read
//! (it need not parse), no I/O.

use std::collections::HashMap;
use std::path::PathBuf;

/// Finds where a dotted key was set: `file:line`, or the environment variable's name.
pub fn locate_key(
    file: Option<&(PathBuf, String)>,
    env: &HashMap<String, String>,
    key: &str,
) -> Option<String> {
    let base = key.split('[').next().unwrap_or(key);
    if let Some((path, text)) = file {
        if let Some(line) = find_entry_line(text, key).or_else(|| find_line(text, base)) {
            return Some(format!("{}:{}", path.display(), line));
        }
    }
    let var = format!("WAYPOST_{}", base.replace('.', "__").to_ascii_uppercase());
    if env.contains_key(&var) {
        return Some(format!("environment {var}"));
    }
    None
}

/// The 1-based line of `a.b[i].c` in a TOML text: the `c = ` line of the i-th `[[a.b]]`
/// table (its header line when `c` is not there), e.g. `auth.proxies[1].password_file`.
fn find_entry_line(text: &str, key: &str) -> Option<usize> {
    let (table, rest) = key.split_once('[')?;
    let (index, field) = rest.split_once("].")?;
    let index: usize = index.parse().ok()?;
    // `tls.client_cert.cert` is set by a `tls.client_cert = {...}` or `tls.client_cert.cert =`
    // line; `match[1]` by the `match = [...]` line
    let field = field.split('[').next()?;
    let sets = |k: &str| field == k || field.strip_prefix(k).is_some_and(|r| r.starts_with('.'));
    let header = format!("[[{table}]]");
    let mut seen = 0;
    let mut start = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            if start.is_some() {
                break; // the entry ended without the field
            }
            if l.replace(' ', "") == header {
                if seen == index {
                    start = Some(i + 1);
                }
                seen += 1;
            }
            continue;
        }
        if start.is_some() {
            if let Some((k, _)) = l.split_once('=') {
                if sets(k.trim().trim_matches('"')) {
                    return Some(i + 1);
                }
            }
        }
    }
    start
}

/// The 1-based line of `a.b.c` in a TOML text: a `c = ` line inside `[a.b]`, or a dotted key.
fn find_line(text: &str, key: &str) -> Option<usize> {
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if l.starts_with('[') {
            let name = l
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            table = name.replace(['"', ' '], "");
            if table == key {
                return Some(i + 1);
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim().trim_matches('"');
            let full = if table.is_empty() {
                k.to_string()
            } else {
                format!("{table}.{k}")
            };
            if full == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The dotted key set on the 1-based `line` of a TOML text, from the line's text up to its `=`
/// and the table headers above it (`auth.proxies[1].password` for a `password = ` line in the
/// second `[[auth.proxies]]`). None when the line sets no key. A guess made on text that need
/// not parse: [`super::syntax`] shows it only once it is known to be a configuration key.
pub fn key_on_line(text: &str, line: usize) -> Option<String> {
    let name_of = |header: &str| header.replace(['"', ' '], "");
    let mut table = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if i + 1 == line {
            let (k, _) = l.split_once('=').filter(|_| !l.starts_with('['))?;
            let k = k
                .split('.')
                .map(|p| p.trim().trim_matches(['"', '\'']))
                .collect::<Vec<_>>()
                .join(".");
            if k.is_empty() {
                return None;
            }
            return Some(if table.is_empty() {
                k
            } else {
                format!("{table}.{k}")
            });
        }
        if let Some(header) = l.strip_prefix("[[") {
            let name = name_of(header.split("]]").next().unwrap_or(""));
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(header) = l.strip_prefix('[') {
            table = name_of(header.split(']').next().unwrap_or(""));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_line_follows_tables() {
        let t = "listen = []\n\n[route]\n# c\nupstream = \"x\"\n[timeouts]\nconnect = \"1s\"\n";
        assert_eq!(find_line(t, "route.upstream"), Some(5));
        assert_eq!(find_line(t, "timeouts.connect"), Some(7));
        assert_eq!(find_line(t, "listen"), Some(1));
        assert_eq!(find_line(t, "nope"), None);
    }

    #[test]
    fn find_entry_line_finds_the_key_of_the_nth_table_in_an_array() {
        let t = "[auth]\nuser = \"u\"\n[[auth.proxies]]\nmatch = \"a\"\nuser = \"x\"\n\n\
                 [[auth.proxies]]\nmatch = \"b\"\npassword_file = \"/no\"\n[dns]\n";
        assert_eq!(find_entry_line(t, "auth.proxies[1].password_file"), Some(9));
        assert_eq!(find_entry_line(t, "auth.proxies[0].user"), Some(5));
        assert_eq!(find_entry_line(t, "auth.proxies[1].keytab"), Some(7));
        assert_eq!(find_entry_line(t, "auth.proxies[2].user"), None);
        assert_eq!(find_entry_line(t, "auth.user"), None);
    }

    #[test]
    fn the_key_on_a_line_follows_tables_and_arrays_of_tables() {
        let t = "listen = []\n[client_auth]\npassword = \"x\n[[auth.proxies]]\nuser = \"a\"\n\
                 [[auth.proxies]]\n \"password\" = 'p\\q'\n[route]\n# c\nnot a key\n";
        assert_eq!(key_on_line(t, 1).as_deref(), Some("listen"));
        assert_eq!(key_on_line(t, 3).as_deref(), Some("client_auth.password"));
        assert_eq!(key_on_line(t, 5).as_deref(), Some("auth.proxies[0].user"));
        assert_eq!(
            key_on_line(t, 7).as_deref(),
            Some("auth.proxies[1].password")
        );
        assert_eq!(key_on_line(t, 8), None, "a header");
        assert_eq!(key_on_line(t, 10), None, "no =");
        assert_eq!(key_on_line(t, 99), None);
    }
}

//! A configuration file that is not valid TOML, as a [`Problem`]: the file, line and column,
//! the key set on that line when it is a configuration key, and the parser's kind of error.
//!
//! Never the line itself. The TOML parser's own message quotes the offending line, and a file
//! that does not parse may be anything: a `password = "...` line with a stray backslash, or a
//! token file the config path was swapped for (a symlink). So the message is rebuilt from the
//! error's span and its kind (`toml::de::Error::message`: the parser's description and the
//! tokens it expected, words of the grammar, never input); the key is named only when it is
//! one waypost knows (a word from a file that is not a configuration is not shown either).

use std::path::Path;

use super::{collect, locate, Problem};

/// The problem for `error`, the config crate's error from parsing `text` (read from `path`).
pub fn problem(path: &Path, text: &str, error: &config::ConfigError) -> Problem {
    let toml = match error {
        config::ConfigError::FileParse { cause, .. } => cause.downcast_ref::<toml::de::Error>(),
        _ => None,
    };
    let at = toml.and_then(|e| e.span()).map(|s| position(text, s.start));
    let key = at
        .and_then(|(line, _)| locate::key_on_line(text, line))
        .filter(|k| collect::is_known(k));
    let location = match at {
        Some((line, column)) => format!("{}:{line}:{column}", path.display()),
        None => path.display().to_string(),
    };
    let message = match toml {
        Some(e) => {
            let kind = e.message().trim();
            let hint = if kind.contains("escape") {
                r#" (inside "..." a backslash starts an escape: write \\ for one, or use a '...' string)"#
            } else {
                ""
            };
            format!("not valid TOML: {kind}{hint}")
        }
        None => "not valid TOML".to_string(),
    };
    Problem {
        key: key.unwrap_or_else(|| "config".into()),
        message,
        location: Some(location),
    }
}

/// The 1-based (line, column) of byte `offset` in `text` (columns count characters).
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let column = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count());
    (line, column + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> config::ConfigError {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap_err()
    }

    #[test]
    fn a_syntax_error_names_file_line_column_and_key_and_never_quotes_the_line() {
        let text = "listen = [\"127.0.0.1:0\"]\n[client_auth]\nusername = \"u\"\n\
                    password = \"pa\\qss-CANARY\"\n";
        let p = problem(Path::new("/etc/w.toml"), text, &parse_error(text));
        assert_eq!(p.location.as_deref(), Some("/etc/w.toml:4:16"), "{p:?}");
        assert_eq!(p.key, "client_auth.password");
        assert!(p.message.starts_with("not valid TOML: "), "{p:?}");
        assert!(p.message.contains("backslash"), "{p:?}");
        assert!(!format!("{p:?}").contains("CANARY"), "{p:?}");
    }

    #[test]
    fn a_file_that_is_not_toml_gives_its_position_but_no_word_of_it() {
        for text in [
            "CANARY-token-line\n",
            "CANARY = x\n",
            "[CANARY\n",
            "a = 1\nCANARY.x = \n",
        ] {
            let p = problem(Path::new("w.toml"), text, &parse_error(text));
            assert!(!format!("{p:?}").contains("CANARY"), "{text:?}: {p:?}");
            assert_eq!(p.key, "config", "{text:?}");
            assert!(
                p.location.as_deref().unwrap().starts_with("w.toml:"),
                "{p:?}"
            );
        }
        let p = problem(Path::new("w.toml"), "x\n", &parse_error("x\n"));
        assert_eq!(p.location.as_deref(), Some("w.toml:1:2"));
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(position("ab\ncé\nd", 0), (1, 1));
        assert_eq!(position("ab\ncé\nd", 3), (2, 1));
        assert_eq!(position("ab\ncé\nd", 6), (2, 3));
        assert_eq!(position("ab\n", 99), (2, 1));
    }
}

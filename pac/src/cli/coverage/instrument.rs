//! Instrumenting a script for coverage: boa's parser reads the script, a visitor finds every
//! `return` with a value, every `if` and every `?:`, and the text is rewritten at the positions
//! the syntax tree gives — `return __wp_r(N), VALUE` counts a return, `if (__wp_b(N,(COND)))`
//! counts the true and false outcome of a condition — then [`RUNTIME`] is appended, which
//! defines the counters and wraps the entry point so that every answer carries the counts
//! gathered since the previous answer of that worker ([`super::tally`] reads them back).
//! Insertions never add a line, so lines stay those of the script. Pure text work: nothing is
//! evaluated here.
//!
//! Not counted: `return;` without a value (boa keeps no position for it) and the expression
//! bodies of arrow functions (there is no `return` in the text).

use boa_engine::ast::scope::Scope;
use boa_engine::ast::visitor::VisitWith;
use boa_engine::interner::Interner;
use boa_engine::parser::Parser;
use boa_engine::Source;

pub(crate) use super::sites::ProbeKind;
use super::sites::Sites;

/// Defines the counters and wraps the entry point (appended to the instrumented text).
const RUNTIME: &str = include_str!("runtime.js");

/// One counted place of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub kind: ProbeKind,
    /// Line and column of the `return` / `if` keyword (of the condition for `?:`).
    pub line: u32,
    pub column: u32,
    /// First counter (the `true` one for conditions).
    pub slot: usize,
    /// The line's text, trimmed.
    pub text: String,
}

/// A script rewritten with probes.
#[derive(Debug, Clone)]
pub(crate) struct Instrumented {
    pub source: String,
    /// In line order.
    pub probes: Vec<Probe>,
    /// Number of counters.
    pub slots: usize,
    /// `return;` statements (no value) that are not counted.
    pub bare_returns: usize,
    /// Places left out because the text around them did not match the tree (see `sites`).
    pub unplaced: usize,
    /// Every insertion as (line, column in the original, length), in text order: what
    /// [`Instrumented::original`] takes back out of an error position.
    inserted: Vec<(u32, u32, u32)>,
}

impl Instrumented {
    /// The position in the original script of `line:column` in the instrumented one (for the
    /// positions of errors thrown by a call).
    pub fn original(&self, line: u32, column: u32) -> (u32, u32) {
        let mut shift = 0;
        for &(_, c, len) in self.inserted.iter().filter(|i| i.0 == line) {
            let at = c + shift;
            if column < at {
                break;
            }
            if column < at + len {
                return (line, c);
            }
            shift += len;
        }
        (line, column - shift)
    }
}

/// Parses `text` as boa does and rewrites it with probes; `Err` is the parser's message (the
/// caller loads the original script to report it as a load error).
pub(crate) fn instrument(text: &str) -> Result<Instrumented, String> {
    let mut interner = Interner::default();
    let script = Parser::new(Source::from_bytes(text.as_bytes()))
        .parse_script(&Scope::new_global(), &mut interner)
        .map_err(|e| e.to_string())?;
    let mut sites = Sites::new(text);
    let _ = script.visit_with(&mut sites);
    Ok(rewrite(text, &sites))
}

/// One text insertion; at one offset closings go first (innermost first), then openings
/// (outermost first), so nested probes stay nested.
struct Edit {
    at: usize,
    closing: bool,
    seq: usize,
    text: String,
}

fn rewrite(text: &str, sites: &Sites<'_>) -> Instrumented {
    let mut edits = Vec::new();
    let mut probes = Vec::new();
    let mut slots = 0;
    for (seq, site) in sites.found.iter().enumerate() {
        let slot = slots;
        let open = match site.kind {
            ProbeKind::Return => format!("__wp_r({slot}), "),
            ProbeKind::If | ProbeKind::Ternary => format!("__wp_b({slot},("),
        };
        edits.push(Edit {
            at: site.start,
            closing: false,
            seq,
            text: open,
        });
        if let Some(end) = site.end {
            edits.push(Edit {
                at: end,
                closing: true,
                seq,
                text: "))".into(),
            });
        }
        slots += site.kind.slots();
        let (line, column) = sites.map.position_of(site.at);
        probes.push(Probe {
            kind: site.kind,
            line,
            column,
            slot,
            text: sites.map.line_text(line).trim().to_string(),
        });
    }
    edits.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then(b.closing.cmp(&a.closing))
            .then(if a.closing {
                b.seq.cmp(&a.seq)
            } else {
                a.seq.cmp(&b.seq)
            })
    });
    let mut source = String::with_capacity(text.len() + edits.len() * 16 + RUNTIME.len());
    let mut copied = 0;
    let mut inserted = Vec::with_capacity(edits.len());
    for edit in &edits {
        let (line, column) = sites.map.position_of(edit.at);
        inserted.push((line, column, edit.text.len() as u32));
        source.push_str(&text[copied..edit.at]);
        source.push_str(&edit.text);
        copied = edit.at;
    }
    source.push_str(&text[copied..]);
    source.push('\n');
    source.push_str(RUNTIME);
    probes.sort_by_key(|p| (p.line, p.column, p.slot));
    Instrumented {
        source,
        probes,
        slots,
        bare_returns: sites.bare_returns,
        unplaced: sites.unplaced,
        inserted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(i: &Instrumented) -> &str {
        i.source.split("\n;var __wp_hits").next().unwrap()
    }

    #[test]
    fn returns_and_conditions_are_rewritten_where_the_parser_saw_them() {
        let text = "function FindProxyForURL(url, host) {\n  if (isPlainHostName(host)) return 'DIRECT';\n  return host == 'a' ? 'PROXY a:1' : \"PROXY b:2\";\n}";
        let i = instrument(text).unwrap();
        assert_eq!(
            body(&i),
            "function FindProxyForURL(url, host) {\n  if (__wp_b(0,(isPlainHostName(host)))) return __wp_r(2), 'DIRECT';\n  return __wp_r(3), __wp_b(4,(host == 'a')) ? 'PROXY a:1' : \"PROXY b:2\";\n}"
        );
        let seen: Vec<(ProbeKind, u32, usize)> =
            i.probes.iter().map(|p| (p.kind, p.line, p.slot)).collect();
        assert_eq!(
            seen,
            [
                (ProbeKind::If, 2, 0),
                (ProbeKind::Return, 2, 2),
                (ProbeKind::Return, 3, 3),
                (ProbeKind::Ternary, 3, 4)
            ]
        );
        assert_eq!(i.slots, 6);
        assert_eq!(
            i.probes[0].text,
            "if (isPlainHostName(host)) return 'DIRECT';"
        );
    }

    #[test]
    fn nested_conditions_stay_nested_and_lines_are_those_of_the_keywords() {
        let text = "function f(a,b,c){\n  if (\n    (a ? b : c)\n  )\n    return (\n      a);\n  return;\n}\nvar g = x => x + 1;";
        let i = instrument(text).unwrap();
        assert_eq!(
            body(&i),
            "function f(a,b,c){\n  if (\n    __wp_b(0,((__wp_b(2,(a)) ? b : c)))\n  )\n    return __wp_r(4), (\n      a);\n  return;\n}\nvar g = x => x + 1;"
        );
        let lines: Vec<(ProbeKind, u32)> = i.probes.iter().map(|p| (p.kind, p.line)).collect();
        assert_eq!(
            lines,
            [
                (ProbeKind::If, 2),
                (ProbeKind::Ternary, 3),
                (ProbeKind::Return, 5)
            ]
        );
        assert_eq!(i.bare_returns, 1, "return; is not counted");
    }

    #[test]
    fn non_ascii_text_and_crlf_lines_keep_positions() {
        let text = "// café ☕\r\nfunction FindProxyForURL(u, h) {\r\n  var s = 'é'; if (s == h) { return 'PROXY é:1'; }\r\n  return 'DIRECT';\r\n}";
        let i = instrument(text).unwrap();
        assert!(body(&i)
            .contains("var s = 'é'; if (__wp_b(0,(s == h))) { return __wp_r(2), 'PROXY é:1'; }"));
        assert_eq!(
            i.probes.iter().map(|p| p.line).collect::<Vec<_>>(),
            [3, 3, 4]
        );
    }

    #[test]
    fn spans_that_stop_short_are_widened_to_the_whole_expression() {
        let text =
            "function f(a, b) {\n  if (a[b[0]] ) return g(a)[0] ? 'x' : 'y';\n  return f(a).b;\n}";
        let i = instrument(text).unwrap();
        assert_eq!(
            body(&i),
            "function f(a, b) {\n  if (__wp_b(0,(a[b[0]])) ) return __wp_r(2), __wp_b(3,(g(a)[0])) ? 'x' : 'y';\n  return __wp_r(5), f(a).b;\n}"
        );
    }

    #[test]
    fn a_place_whose_text_does_not_match_the_tree_is_left_out_and_counted() {
        let text = "function f(a) {\n  if (/* why */ a) return 'x';\n  return 'y';\n}";
        let i = instrument(text).unwrap();
        assert_eq!(i.unplaced, 1);
        assert_eq!(
            i.probes.iter().map(|p| p.kind).collect::<Vec<_>>(),
            [ProbeKind::Return, ProbeKind::Return]
        );
    }

    #[test]
    fn positions_in_the_instrumented_text_map_back_to_the_original() {
        let text = "function f(a) {\n  if (a) return 'x';\n  return g(a);\n}";
        let i = instrument(text).unwrap();
        let lines: Vec<&str> = i.source.lines().collect();
        // `g` on line 3: column 10 in the original
        let g = lines[2].find("g(a)").unwrap() as u32 + 1;
        assert_eq!(i.original(3, g), (3, 10));
        // `'x'` on line 2, after two insertions
        let x = lines[1].find("'x'").unwrap() as u32 + 1;
        assert_eq!(i.original(2, x), (2, 17));
        // inside an insertion: where it was made; before any: unchanged
        assert_eq!(i.original(2, 7), (2, 7));
        assert_eq!(i.original(2, 3), (2, 3));
        assert_eq!(i.original(1, 5), (1, 5));
    }

    #[test]
    fn a_script_that_does_not_parse_is_an_error() {
        assert!(instrument("function FindProxyForURL(u, h) { return 'x';").is_err());
    }
}

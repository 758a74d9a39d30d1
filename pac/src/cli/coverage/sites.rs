//! Where probes go: a visitor over boa's syntax tree finds every `return` with a value, every
//! `if` condition and every `?:` condition, and turns its span into byte offsets of the text.
//!
//! boa's spans are not the text extent of every expression (a call's span is its argument
//! list, `a[b]` ends where `b` ends), so an expression's extent is taken over it and all the
//! expressions inside it, and checked against the text around it: a return value must follow
//! the `return` keyword, an `if` condition must sit between `if (` and `)` (closing `]` of
//! member accesses skipped), a `?:` condition must be followed by `?`. A place that fails its
//! check (a comment in between, say) is left out and counted, never guessed. Pure.

use std::ops::ControlFlow;

use boa_engine::ast::expression::operator::Conditional;
use boa_engine::ast::expression::{Expression, Identifier};
use boa_engine::ast::statement::{If, Return};
use boa_engine::ast::visitor::{VisitWith, Visitor};
use boa_engine::ast::{Position, Spanned};

use super::position::LineMap;

/// What a probe counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    /// A `return` with a value: one counter.
    Return,
    /// An `if` condition: two counters, true then false.
    If,
    /// A `?:` condition: two counters, true then false.
    Ternary,
}

impl ProbeKind {
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Return => "return",
            ProbeKind::If => "if",
            ProbeKind::Ternary => "?:",
        }
    }

    /// Counters the probe uses.
    pub fn slots(self) -> usize {
        match self {
            ProbeKind::Return => 1,
            ProbeKind::If | ProbeKind::Ternary => 2,
        }
    }
}

/// A checked place: where the opening text goes, where the closing one goes (conditions),
/// and the place to report (the `return` / `if` keyword, the start of a `?:` condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    pub kind: ProbeKind,
    pub start: usize,
    pub end: Option<usize>,
    pub at: usize,
}

/// The visitor: finds sites in one text.
pub(crate) struct Sites<'a> {
    text: &'a str,
    pub map: LineMap<'a>,
    pub found: Vec<Site>,
    /// `return;` without a value (no position in the tree).
    pub bare_returns: usize,
    /// Places whose text did not pass the check.
    pub unplaced: usize,
}

impl<'a> Sites<'a> {
    pub fn new(text: &'a str) -> Sites<'a> {
        Sites {
            text,
            map: LineMap::new(text),
            found: Vec::new(),
            bare_returns: 0,
            unplaced: 0,
        }
    }

    fn offsets(&self, expr: &Expression) -> Option<(usize, usize)> {
        let (start, end) = extent(expr);
        Some((
            self.map
                .offset(start.line_number(), start.column_number())?,
            self.map.offset(end.line_number(), end.column_number())?,
        ))
    }

    fn place(&mut self, kind: ProbeKind, expr: &Expression) {
        match self.check(kind, expr) {
            Some(site) => self.found.push(site),
            None => self.unplaced += 1,
        }
    }

    fn check(&self, kind: ProbeKind, expr: &Expression) -> Option<Site> {
        let (start, end) = self.offsets(expr)?;
        let text = self.text;
        let site = match kind {
            ProbeKind::Return => Site {
                kind,
                start,
                end: None,
                at: keyword_before(text, start, "return")?,
            },
            ProbeKind::If => {
                let before = text[..start].trim_end().strip_suffix('(')?;
                let keyword = keyword_before(text, before.len(), "if")?;
                Site {
                    kind,
                    start,
                    end: Some(closing(text, end, |rest| rest.starts_with(')'))?),
                    at: keyword,
                }
            }
            ProbeKind::Ternary => {
                // `?` but not `?.` (optional chaining) or `??`
                let question =
                    |rest: &str| rest.starts_with('?') && !rest[1..].starts_with(['.', '?']);
                Site {
                    kind,
                    start,
                    end: Some(closing(text, end, question)?),
                    at: start,
                }
            }
        };
        Some(site)
    }
}

impl<'ast> Visitor<'ast> for Sites<'_> {
    type BreakTy = ();

    fn visit_return(&mut self, node: &'ast Return) -> ControlFlow<()> {
        match node.target() {
            Some(value) => self.place(ProbeKind::Return, value),
            None => self.bare_returns += 1,
        }
        node.visit_with(self)
    }

    fn visit_if(&mut self, node: &'ast If) -> ControlFlow<()> {
        self.place(ProbeKind::If, node.cond());
        node.visit_with(self)
    }

    fn visit_conditional(&mut self, node: &'ast Conditional) -> ControlFlow<()> {
        self.place(ProbeKind::Ternary, node.condition());
        node.visit_with(self)
    }
}

/// The smallest start and largest end over `expr` and every expression and identifier in it.
fn extent(expr: &Expression) -> (Position, Position) {
    let span = expr.span();
    let mut e = Extent {
        start: span.start(),
        end: span.end(),
    };
    let _ = expr.visit_with(&mut e);
    (e.start, e.end)
}

struct Extent {
    start: Position,
    end: Position,
}

impl Extent {
    fn take(&mut self, start: Position, end: Position) {
        self.start = self.start.min(start);
        self.end = self.end.max(end);
    }
}

impl<'ast> Visitor<'ast> for Extent {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        let span = node.span();
        self.take(span.start(), span.end());
        node.visit_with(self)
    }

    fn visit_identifier(&mut self, node: &'ast Identifier) -> ControlFlow<()> {
        let span = node.span();
        self.take(span.start(), span.end());
        ControlFlow::Continue(())
    }
}

/// Where `keyword` ends just before `at` (whitespace between), as a whole word: its offset.
pub(crate) fn keyword_before(text: &str, at: usize, keyword: &str) -> Option<usize> {
    let rest = text[..at].trim_end().strip_suffix(keyword)?;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    if rest.chars().next_back().is_some_and(is_word) {
        return None;
    }
    Some(rest.len())
}

/// From `end`, skips whitespace and the `]` of member accesses whose span stopped short, up to
/// where `terminator` holds; the offset just past the expression (after the last `]`), if it
/// does.
fn closing(text: &str, end: usize, terminator: impl Fn(&str) -> bool) -> Option<usize> {
    let mut past = end;
    loop {
        let rest = &text[past..];
        let trimmed = rest.trim_start();
        if terminator(trimmed) {
            return Some(past);
        }
        if !trimmed.starts_with(']') {
            return None;
        }
        past += rest.len() - trimmed.len() + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_words_before_the_place() {
        assert_eq!(keyword_before("  return x", 9, "return"), Some(2));
        assert_eq!(keyword_before("xreturn x", 8, "return"), None);
        assert_eq!(keyword_before("if (x", 3, "if"), Some(0));
    }

    #[test]
    fn closing_skips_member_brackets_up_to_the_terminator() {
        let paren = |r: &str| r.starts_with(')');
        assert_eq!(closing("a[b[c] ] ) x", 5, paren), Some(8));
        assert_eq!(closing("a ) x", 1, paren), Some(1));
        assert_eq!(closing("a /*c*/ ) x", 1, paren), None);
    }
}

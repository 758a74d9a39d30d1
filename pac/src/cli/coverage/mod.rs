//! `--coverage` of `eval --urls`, `test` and `diff`: which `return` statements, `if` and `?:`
//! outcomes of a script the URLs reached, by line, from the script's own syntax tree as boa
//! parses it. The script is instrumented ([`instrument`]) before it is loaded, so it still runs
//! in the same isolated `pac-worker` process as without coverage; the counts come back with
//! each answer ([`tally`]). This module renders the report; it runs nothing.

mod instrument;
mod position;
mod sites;
mod tally;

pub(crate) use instrument::{instrument, Instrumented, ProbeKind};
pub(crate) use tally::Tally;

/// The longest line text shown beside a probe.
const TEXT_WIDTH: usize = 72;

/// Coverage of one script over one run.
pub(crate) struct Coverage {
    /// How the script is named in the report (as given on the command line).
    pub name: String,
    pub script: Instrumented,
    pub tally: Tally,
}

/// Totals of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Summary {
    pub returns: usize,
    pub returns_reached: usize,
    pub outcomes: usize,
    pub outcomes_taken: usize,
}

impl Coverage {
    pub fn new(name: &str, script: Instrumented) -> Coverage {
        let tally = Tally::new(script.slots);
        Coverage {
            name: name.to_string(),
            script,
            tally,
        }
    }

    fn count(&self, slot: usize) -> u64 {
        self.tally.counts.get(slot).copied().unwrap_or(0)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            returns: 0,
            returns_reached: 0,
            outcomes: 0,
            outcomes_taken: 0,
        };
        for p in &self.script.probes {
            match p.kind {
                ProbeKind::Return => {
                    s.returns += 1;
                    s.returns_reached += usize::from(self.count(p.slot) > 0);
                }
                ProbeKind::If | ProbeKind::Ternary => {
                    s.outcomes += 2;
                    s.outcomes_taken += usize::from(self.count(p.slot) > 0)
                        + usize::from(self.count(p.slot + 1) > 0);
                }
            }
        }
        s
    }

    /// The report as text: a summary line, then one line per probe in line order, each
    /// `NAME:LINE:COLUMN: ...` with `never` where nothing reached it.
    pub fn text(&self) -> String {
        let s = self.summary();
        let mut out = format!(
            "coverage of {} over {} answers: {} of {} returns reached, {} of {} if/?: outcomes taken\n",
            self.name,
            self.tally.answers,
            s.returns_reached,
            s.returns,
            s.outcomes_taken,
            s.outcomes
        );
        let hits = |n: u64| {
            if n == 0 {
                "never".to_string()
            } else {
                n.to_string()
            }
        };
        for p in &self.script.probes {
            let counts = match p.kind {
                ProbeKind::Return => match self.count(p.slot) {
                    0 => "never reached".to_string(),
                    n => format!("reached {n}"),
                },
                ProbeKind::If | ProbeKind::Ternary => format!(
                    "true {}, false {}",
                    hits(self.count(p.slot)),
                    hits(self.count(p.slot + 1))
                ),
            };
            out.push_str(&format!(
                "{}:{}:{}: {} {} | {}\n",
                self.name,
                p.line,
                p.column,
                p.kind.label(),
                counts,
                shorten(&p.text)
            ));
        }
        for note in self.notes() {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// The report as one JSON value (`{"coverage": {...}}` is the caller's wrapping).
    pub fn json(&self) -> serde_json::Value {
        let probes: Vec<serde_json::Value> = self
            .script
            .probes
            .iter()
            .map(|p| match p.kind {
                ProbeKind::Return => serde_json::json!({
                    "line": p.line, "column": p.column, "kind": p.kind.label(), "reached": self.count(p.slot),
                }),
                ProbeKind::If | ProbeKind::Ternary => serde_json::json!({
                    "line": p.line, "column": p.column, "kind": p.kind.label(),
                    "true": self.count(p.slot), "false": self.count(p.slot + 1),
                }),
            })
            .collect();
        serde_json::json!({
            "script": self.name,
            "answers": self.tally.answers,
            "summary": self.summary(),
            "probes": probes,
            "notes": self.notes(),
        })
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.script.bare_returns > 0 {
            notes.push(format!(
                "{} `return;` without a value not counted (no position in the syntax tree)",
                self.script.bare_returns
            ));
        }
        if self.script.unplaced > 0 {
            notes.push(format!(
                "{} places not counted (a comment between the keyword and the expression)",
                self.script.unplaced
            ));
        }
        if self.tally.failed > 0 {
            notes.push(format!(
                "{} calls failed; what they reached is counted only when a later call on the same worker answered",
                self.tally.failed
            ));
        }
        if self.tally.unmarked > 0 {
            notes.push(format!(
                "{} answers carried no counts (the script replaced its entry point at run time); the counts are incomplete",
                self.tally.unmarked
            ));
        }
        notes
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= TEXT_WIDTH {
        return text.to_string();
    }
    let cut: String = text.chars().take(TEXT_WIDTH - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_probe_by_line_and_marks_what_was_never_reached() {
        let text = "function FindProxyForURL(url, host) {\n  if (host == 'a') return 'DIRECT';\n  return 'PROXY p:1';\n}";
        let mut c = Coverage::new("corp.pac", instrument(text).unwrap());
        // if true once, its return once; the last return never
        assert_eq!(c.tally.absorb("DIRECT\u{0}wp-cov 0:1,2:1"), "DIRECT");
        assert_eq!(
            c.summary(),
            Summary {
                returns: 2,
                returns_reached: 1,
                outcomes: 2,
                outcomes_taken: 1
            }
        );
        assert_eq!(
            c.text(),
            "coverage of corp.pac over 1 answers: 1 of 2 returns reached, 1 of 2 if/?: outcomes taken\n\
             corp.pac:2:3: if true 1, false never | if (host == 'a') return 'DIRECT';\n\
             corp.pac:2:20: return reached 1 | if (host == 'a') return 'DIRECT';\n\
             corp.pac:3:3: return never reached | return 'PROXY p:1';\n"
        );
        let j = c.json();
        assert_eq!(
            j["probes"][2],
            serde_json::json!({"line": 3, "column": 3, "kind": "return", "reached": 0})
        );
        assert_eq!(j["summary"]["outcomes_taken"], 1);
    }

    #[test]
    fn long_lines_are_shortened() {
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), TEXT_WIDTH);
        assert!(shorten(&long).ends_with('…'));
    }
}

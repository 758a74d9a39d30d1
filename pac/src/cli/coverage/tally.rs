//! Reading coverage counts back: each answer of an instrumented script ends with
//! `\0wp-cov SLOT:COUNT,...` (the counts gathered by that worker since its previous answer,
//! so a call that threw is counted with the next answer of the same worker). [`Tally`] strips
//! that suffix from the answer and adds the counts up; a call that failed is counted with the
//! next answer of its worker, or not at all when none follows. Pure.

/// What separates the script's answer from the counts.
pub(crate) const MARK: &str = "\u{0}wp-cov ";

/// Counter totals over a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub counts: Vec<u64>,
    /// Answers that carried counts.
    pub answers: u64,
    /// Answers that carried none (the entry point was replaced at run time, past the wrapper).
    pub unmarked: u64,
    /// Calls that failed: their counts ride on the next answer of the same worker, if any.
    pub failed: u64,
}

impl Tally {
    pub fn new(slots: usize) -> Tally {
        Tally {
            counts: vec![0; slots],
            ..Tally::default()
        }
    }

    /// Strips the counts from `raw` and adds them up; returns the script's own answer.
    pub fn absorb(&mut self, raw: &str) -> String {
        let Some(at) = raw.rfind(MARK) else {
            self.unmarked += 1;
            return raw.to_string();
        };
        self.answers += 1;
        for pair in raw[at + MARK.len()..].split(',') {
            let Some((slot, count)) = pair.split_once(':') else {
                continue;
            };
            if let (Ok(slot), Ok(count)) = (slot.parse::<usize>(), count.parse::<u64>()) {
                if let Some(total) = self.counts.get_mut(slot) {
                    *total += count;
                }
            }
        }
        raw[..at].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_stripped_from_answers_and_added_up() {
        let mut t = Tally::new(4);
        assert_eq!(
            t.absorb("PROXY a:1; DIRECT\u{0}wp-cov 0:1,3:2"),
            "PROXY a:1; DIRECT"
        );
        assert_eq!(t.absorb("DIRECT\u{0}wp-cov 3:1,9:5,x"), "DIRECT");
        assert_eq!(t.absorb("DIRECT\u{0}wp-cov "), "DIRECT");
        assert_eq!(t.absorb("DIRECT"), "DIRECT");
        assert_eq!(t.counts, [1, 0, 0, 3]);
        assert_eq!((t.answers, t.unmarked), (3, 1));
    }
}

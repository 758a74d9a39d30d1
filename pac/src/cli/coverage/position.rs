//! From boa's `line:column` positions to byte offsets in the script text, counting lines and
//! columns as boa's lexer does: a column is one code point; `\n`, `\r\n`, a lone `\r`, U+2028
//! and U+2029 each end a line. Pure; used to rewrite the text at the places the parser saw.

/// Byte offsets of the line starts of one text.
pub(crate) struct LineMap<'a> {
    text: &'a str,
    /// `starts[i]` is where line `i + 1` begins.
    starts: Vec<usize>,
}

impl<'a> LineMap<'a> {
    pub fn new(text: &'a str) -> LineMap<'a> {
        let mut starts = vec![0];
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\r' => {
                    if let Some(&(_, '\n')) = chars.peek() {
                        chars.next();
                        starts.push(i + 2);
                    } else {
                        starts.push(i + 1);
                    }
                }
                '\n' => starts.push(i + 1),
                '\u{2028}' | '\u{2029}' => starts.push(i + c.len_utf8()),
                _ => {}
            }
        }
        LineMap { text, starts }
    }

    /// The byte offset of `line:column` (both from 1), if it is inside the text (or just
    /// past its end).
    pub fn offset(&self, line: u32, column: u32) -> Option<usize> {
        let start = *self.starts.get((line as usize).checked_sub(1)?)?;
        let skip = (column as usize).checked_sub(1)?;
        let rest = &self.text[start..];
        match rest.char_indices().nth(skip) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == skip => Some(self.text.len()),
            None => None,
        }
    }

    /// The line (from 1) holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }

    /// The `(line, column)` of byte `offset` (both from 1; columns in code points).
    pub fn position_of(&self, offset: usize) -> (u32, u32) {
        let line = self.line_of(offset);
        let start = self.starts[line as usize - 1];
        let column = self.text[start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        (line, column as u32)
    }

    /// The text of line `line` without its terminator.
    pub fn line_text(&self, line: u32) -> &'a str {
        let Some(&start) = self.starts.get((line as usize).saturating_sub(1)) else {
            return "";
        };
        let end = self
            .starts
            .get(line as usize)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\r', '\n', '\u{2028}', '\u{2029}'])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_code_points_and_every_js_line_terminator_ends_a_line() {
        let text = "aé\r\nb\rc\u{2028}d\ne";
        let map = LineMap::new(text);
        assert_eq!(map.offset(1, 1), Some(0));
        assert_eq!(map.offset(1, 3), Some(3), "é is one column, two bytes");
        assert_eq!(map.offset(2, 1), Some(5));
        assert_eq!(map.offset(3, 1), Some(7));
        assert_eq!(&text[map.offset(4, 1).unwrap()..], "d\ne");
        assert_eq!(&text[map.offset(5, 1).unwrap()..], "e");
        assert_eq!(map.offset(5, 2), Some(text.len()), "just past the end");
        assert_eq!(map.offset(5, 3), None);
        assert_eq!(map.offset(6, 1), None);
        assert_eq!(map.offset(0, 1), None);
        assert_eq!(map.line_of(0), 1);
        assert_eq!(map.line_of(5), 2);
        assert_eq!(map.line_of(text.len() - 1), 5);
        assert_eq!(map.position_of(3), (1, 3));
        assert_eq!(map.position_of(11), (4, 1));
        assert_eq!(map.line_text(1), "aé");
        assert_eq!(map.line_text(4), "d");
        assert_eq!(map.line_text(9), "");
    }
}

//! The screen model behind the serial console: what a simple terminal does with the guest's
//! bytes. Lines of cells with a colour each, a cursor that CR, LF, backspace, tab and the
//! common CSI sequences move (CUU/CUD/CUF/CUB/CHA/CUP), erase in line and display (EL/ED), and
//! SGR colours (the 16 ANSI colours, bold, reset). Sequences it does not know are consumed and
//! dropped, never shown as garbage. Cursor addressing counts from the top of the last `rows`
//! lines, as a terminal of that height would. No GTK here: the widget renders the lines.

use std::collections::VecDeque;

/// Foreground colour of a cell: None is the view's default, 0..=15 the ANSI palette.
pub type Colour = Option<u8>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub ch: char,
    pub fg: Colour,
    pub bold: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parse {
    Ground,
    Escape,
    /// CSI parameters collected so far.
    Csi(Vec<u8>),
    /// OSC or another string sequence, until BEL or ESC \.
    Osc {
        escape: bool,
    },
    /// ESC ( x and friends: one more byte to drop.
    Charset,
}

/// Lines wrap here, and cursor movements stop here: a guest cannot make a line grow without
/// bound by moving the cursor far to the right.
pub const MAX_COLS: usize = 512;

#[derive(Debug)]
pub struct Terminal {
    lines: VecDeque<Vec<Cell>>,
    row: usize,
    col: usize,
    /// Screen height used for cursor addressing.
    rows: usize,
    max_lines: usize,
    fg: Colour,
    bold: bool,
    parse: Parse,
    /// Incomplete UTF-8 bytes from the last chunk.
    utf8: Vec<u8>,
    /// First line changed since the widget last took the changes (None: nothing).
    dirty_from: Option<usize>,
    /// Lines dropped from the top since the widget last looked (it drops them too).
    dropped: usize,
}

impl Terminal {
    pub fn new(rows: usize, max_lines: usize) -> Terminal {
        Terminal {
            lines: VecDeque::from([Vec::new()]),
            row: 0,
            col: 0,
            rows: rows.max(1),
            max_lines: max_lines.max(rows.max(1)),
            fg: None,
            bold: false,
            parse: Parse::Ground,
            utf8: Vec::new(),
            dirty_from: Some(0),
            dropped: 0,
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    pub fn line(&self, i: usize) -> &[Cell] {
        self.lines.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The line's text without colours (tests, accessibility).
    pub fn line_text(&self, i: usize) -> String {
        self.line(i).iter().map(|c| c.ch).collect()
    }

    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.col)
    }

    /// What changed since the last call: (lines dropped at the top, first changed line).
    pub fn take_changes(&mut self) -> (usize, Option<usize>) {
        let changes = (self.dropped, self.dirty_from);
        self.dropped = 0;
        self.dirty_from = None;
        changes
    }

    fn touch(&mut self, row: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(row, |d| d.min(row)));
    }

    /// Feeds bytes from the guest.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut data = std::mem::take(&mut self.utf8);
        data.extend_from_slice(bytes);
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if self.parse != Parse::Ground || b < 0x20 || b == 0x7f {
                self.control(b);
                i += 1;
                continue;
            }
            // A UTF-8 character (or a replacement for bytes that are not UTF-8).
            let len = match b {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            if i + len > data.len() {
                self.utf8 = data[i..].to_vec();
                return;
            }
            match std::str::from_utf8(&data[i..i + len]) {
                Ok(s) => {
                    for ch in s.chars() {
                        self.put(ch);
                    }
                    i += len;
                }
                Err(_) => {
                    self.put('\u{fffd}');
                    i += 1;
                }
            }
        }
    }

    fn control(&mut self, b: u8) {
        match std::mem::replace(&mut self.parse, Parse::Ground) {
            Parse::Ground => match b {
                0x1b => self.parse = Parse::Escape,
                b'\r' => self.col = 0,
                b'\n' | 0x0b | 0x0c => self.line_feed(),
                0x08 => self.col = self.col.saturating_sub(1),
                b'\t' => self.col = ((self.col / 8 + 1) * 8).min(MAX_COLS - 1),
                _ => {} // BEL and the other C0 bytes show nothing
            },
            Parse::Escape => match b {
                b'[' => self.parse = Parse::Csi(Vec::new()),
                b']' | b'P' | b'_' | b'^' | b'X' => self.parse = Parse::Osc { escape: false },
                b'c' => self.reset(),
                // ESC ( B and friends take one more byte.
                b'(' | b')' | b'*' | b'+' | b'#' | b'%' => self.parse = Parse::Charset,
                _ => {}
            },
            Parse::Csi(mut params) => {
                if (0x40..=0x7e).contains(&b) {
                    self.csi(&params, b);
                } else if params.len() < 64 {
                    params.push(b);
                    self.parse = Parse::Csi(params);
                } else {
                    // A runaway sequence: drop it until its final byte.
                    self.parse = Parse::Csi(params);
                }
            }
            Parse::Osc { escape } => {
                if b == 0x07 || (escape && b == b'\\') {
                    return;
                }
                self.parse = Parse::Osc { escape: b == 0x1b };
            }
            Parse::Charset => {}
        }
    }

    fn reset(&mut self) {
        let rows = self.rows;
        let max = self.max_lines;
        let dropped = self.dropped + self.lines.len();
        *self = Terminal::new(rows, max);
        // The widget clears its lines too.
        self.dropped = dropped;
    }

    fn numbers(params: &[u8]) -> Vec<usize> {
        let text = String::from_utf8_lossy(params);
        text.trim_start_matches(['?', '>', '='])
            .split(';')
            // Capped: the numbers come from the guest and feed additions.
            .map(|p| p.parse::<usize>().unwrap_or(0).min(10_000))
            .collect()
    }

    /// The line index of screen row `r` (0-based) of a terminal `rows` high.
    fn screen_row(&mut self, r: usize) -> usize {
        let top = self.lines.len().saturating_sub(self.rows);
        let target = top + r.min(self.rows - 1);
        while self.lines.len() <= target {
            self.touch(self.lines.len());
            self.lines.push_back(Vec::new());
        }
        target
    }

    fn csi(&mut self, params: &[u8], final_byte: u8) {
        if params
            .first()
            .is_some_and(|b| matches!(b, b'?' | b'>' | b'='))
            && final_byte != b'm'
        {
            return; // private modes (cursor visibility, bracketed paste...): nothing to show
        }
        let n = Self::numbers(params);
        let first = n.first().copied().unwrap_or(0);
        let count = first.max(1);
        match final_byte {
            b'A' => {
                let top = self.lines.len().saturating_sub(self.rows);
                self.row = self.row.saturating_sub(count).max(top.min(self.row));
            }
            b'B' => self.row = (self.row + count).min(self.lines.len() - 1),
            b'C' => self.col = (self.col + count).min(MAX_COLS - 1),
            b'D' => self.col = self.col.saturating_sub(count),
            b'G' => self.col = (count - 1).min(MAX_COLS - 1),
            b'H' | b'f' => {
                let r = n.first().copied().unwrap_or(1).max(1) - 1;
                let c = n.get(1).copied().unwrap_or(1).max(1) - 1;
                self.row = self.screen_row(r);
                self.col = c.min(MAX_COLS - 1);
            }
            b'K' => {
                let (row, col) = (self.row, self.col);
                let line = &mut self.lines[row];
                match first {
                    0 => line.truncate(col),
                    1 => {
                        for cell in line.iter_mut().take(col + 1) {
                            cell.ch = ' ';
                        }
                    }
                    _ => line.clear(),
                }
                self.touch(row);
            }
            b'J' => match first {
                0 => {
                    let (row, col) = (self.row, self.col);
                    self.lines[row].truncate(col);
                    self.lines.truncate(row + 1);
                    self.touch(row);
                }
                _ => {
                    // Clear the screen: a terminal's scrollback keeps what was there, so push
                    // a screenful of empty lines below it, cursor at the top.
                    let top = self.lines.len();
                    for _ in 0..self.rows {
                        self.lines.push_back(Vec::new());
                    }
                    self.row = top;
                    self.col = 0;
                    self.trim();
                    self.touch(self.row);
                }
            },
            b'm' => self.sgr(&n),
            _ => {}
        }
    }

    fn sgr(&mut self, n: &[usize]) {
        let mut i = 0;
        while i < n.len() {
            match n[i] {
                0 => {
                    self.fg = None;
                    self.bold = false;
                }
                1 => self.bold = true,
                22 => self.bold = false,
                30..=37 => self.fg = Some((n[i] - 30) as u8),
                39 => self.fg = None,
                90..=97 => self.fg = Some((n[i] - 90 + 8) as u8),
                // 256-colour and true-colour forms: skip their arguments.
                38 | 48 => {
                    i += match n.get(i + 1) {
                        Some(5) => 2,
                        Some(2) => 4,
                        _ => 0,
                    };
                }
                _ => {} // backgrounds, underline, blink...: shown as plain text
            }
            i += 1;
        }
    }

    fn line_feed(&mut self) {
        self.row += 1;
        if self.row == self.lines.len() {
            self.lines.push_back(Vec::new());
            self.touch(self.row);
        }
        self.trim();
    }

    /// Drops lines over the cap from the top.
    fn trim(&mut self) {
        while self.lines.len() > self.max_lines {
            self.lines.pop_front();
            self.dropped += 1;
            self.row = self.row.saturating_sub(1);
            self.dirty_from = self.dirty_from.map(|d| d.saturating_sub(1));
        }
    }

    fn put(&mut self, ch: char) {
        if self.col >= MAX_COLS {
            self.line_feed();
            self.col = 0;
        }
        let cell = Cell {
            ch,
            fg: self.fg,
            bold: self.bold,
        };
        let (row, col) = (self.row, self.col);
        let line = &mut self.lines[row];
        if line.len() < col {
            line.resize(
                col,
                Cell {
                    ch: ' ',
                    fg: None,
                    bold: false,
                },
            );
        }
        if col < line.len() {
            line[col] = cell;
        } else {
            line.push(cell);
        }
        self.col += 1;
        self.touch(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &Terminal) -> Vec<String> {
        (0..t.line_count()).map(|i| t.line_text(i)).collect()
    }

    #[test]
    fn carriage_return_overwrites_and_line_feed_moves_down() {
        let mut t = Terminal::new(24, 100);
        t.feed(b"hello\rJ\r\nworld\n");
        assert_eq!(text(&t), ["Jello", "world", ""]);
        assert_eq!(
            t.cursor(),
            (2, 5),
            "LF alone keeps the column, as a terminal does"
        );
    }

    #[test]
    fn backspace_and_erase_in_line_remove_characters() {
        let mut t = Terminal::new(24, 100);
        // A shell erasing a typed character: BS, space, BS; then erase to the end of line.
        t.feed(b"abc\x08 \x08\x08\x1b[K");
        assert_eq!(text(&t), ["a"]);
        assert_eq!(t.cursor(), (0, 1));
    }

    #[test]
    fn colours_apply_and_reset() {
        let mut t = Terminal::new(24, 100);
        t.feed(b"\x1b[1;32mok\x1b[0m!\x1b[38;5;200mx\x1b[91my");
        let line = t.line(0);
        assert_eq!(line[0].fg, Some(2));
        assert!(line[0].bold);
        assert_eq!(line[2].fg, None);
        assert!(!line[2].bold);
        assert_eq!(
            line[3].fg, None,
            "256-colour arguments are skipped, not read as SGR"
        );
        assert_eq!(line[4].fg, Some(9));
        assert_eq!(t.line_text(0), "ok!xy");
    }

    #[test]
    fn unknown_and_split_sequences_leave_no_garbage() {
        let mut t = Terminal::new(24, 100);
        t.feed(b"a\x1b]0;title\x07b\x1b[?25lc\x1b(Bd\x1b[");
        t.feed(b"31me\xc3");
        t.feed(b"\xa9");
        assert_eq!(t.line_text(0), "abcdeé");
        assert_eq!(t.line(0)[4].fg, Some(1));
    }

    #[test]
    fn cursor_addressing_counts_from_the_screen_top() {
        let mut t = Terminal::new(3, 100);
        t.feed(b"1\r\n2\r\n3\r\n4\r\n5");
        t.feed(b"\x1b[1;1HX\x1b[2J");
        assert_eq!(
            t.line_text(2),
            "X",
            "row 1 of a 3-row screen is line 3 of 5"
        );
        assert_eq!(t.line_count(), 8, "clearing keeps the scrollback above");
        assert_eq!(t.cursor(), (5, 0));
    }

    #[test]
    fn far_cursor_moves_and_long_lines_stay_bounded() {
        let mut t = Terminal::new(24, 100);
        t.feed(b"\x1b[99999999999999999999999C\x1b[18446744073709551615Bx");
        assert!(t.line(0).len() <= MAX_COLS);
        t.feed(&[b'y'; MAX_COLS * 2]);
        assert!((0..t.line_count()).all(|i| t.line(i).len() <= MAX_COLS));
    }

    #[test]
    fn scrollback_is_capped_and_reported() {
        let mut t = Terminal::new(2, 4);
        t.take_changes();
        t.feed(b"a\nb\nc\nd\ne\nf");
        assert_eq!(t.line_count(), 4);
        assert_eq!(t.line_text(3).trim(), "f");
        let (dropped, dirty) = t.take_changes();
        assert_eq!(dropped, 2);
        assert_eq!(dirty, Some(0));
    }
}

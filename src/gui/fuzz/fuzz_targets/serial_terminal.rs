//! The serial console's screen model (src/gui/serial_console/terminal.rs) on arbitrary guest
//! bytes, fed in chunks of sizes the input picks (so escape sequences and UTF-8 characters get
//! split at every point). Whatever the guest sends: no panic, the line count stays within the
//! scroll-back, no line grows past MAX_COLS, the cursor stays on a line that exists, and a
//! partial escape or UTF-8 sequence never holds more than a bounded number of bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../serial_console/terminal.rs"]
mod terminal;

use terminal::{Terminal, MAX_COLS};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, mut rest)) = data.split_first() else {
        return;
    };
    let rows = usize::from(shape % 48) + 1;
    let max_lines = rows + usize::from(shape >> 4) * 8;
    let mut t = Terminal::new(rows, max_lines);
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n % 32).min(tail.len());
        t.feed(&tail[..n]);
        rest = &tail[n..];
        assert!(t.line_count() >= 1 && t.line_count() <= max_lines.max(rows));
        let (row, col) = t.cursor();
        assert!(row < t.line_count(), "cursor row {row} of {}", t.line_count());
        assert!(col <= MAX_COLS, "cursor column {col}");
        for i in 0..t.line_count() {
            assert!(t.line(i).len() <= MAX_COLS);
        }
        let _ = t.take_changes();
    }
});

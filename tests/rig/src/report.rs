//! Failure messages for rig-backed tests.
//!
//! A rig script's output holds whole L2 boot logs, thousands of lines, most of them a healthy
//! kernel booting. CI shows only part of a failed test's output (once, 120 lines centred on a
//! kernel WARNING that had nothing to do with the failure), so a message that pastes it all can
//! hide the reason. [`digest`] keeps the lines that
//! say what happened (the script's own lines, VMM and guest markers, kernel lines that report a
//! fault) and saves the whole output to a file that the message names.

use std::path::{Path, PathBuf};

/// Kernel console lines that report a fault rather than progress.
const FAULT_WORDS: &[&str] = &[
    "panic",
    "Oops",
    "BUG",
    "Call Trace",
    "RIP:",
    "segfault",
    "error",
    "Error",
    "fail",
    "Fail",
    "timed out",
    "hung",
    "stall",
    "Killed",
    "killed",
];

/// At most this many lines go into a message; the earliest are dropped first.
const MAX_LINES: usize = 160;

/// Whether `line` is a guest kernel's console line: printk's `[   12.345678]` stamp (six
/// decimals, unlike the rig's and the scripts' own stamps) near its start, after whatever tags
/// and stamps the script and the rig put before it.
fn is_kernel_line(line: &str) -> bool {
    let head = &line.as_bytes()[..line.len().min(80)];
    head.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'[')
        .any(|(i, _)| is_printk_stamp(&head[i + 1..]))
}

/// `   12.345678]` at the start of `s`.
fn is_printk_stamp(s: &[u8]) -> bool {
    let s = &s[s.iter().take_while(|b| **b == b' ').count()..];
    let secs = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if secs == 0 || s.get(secs) != Some(&b'.') {
        return false;
    }
    let frac = &s[secs + 1..];
    frac.len() > 6 && frac[..6].iter().all(u8::is_ascii_digit) && frac[6] == b']'
}

/// The lines of `out` that say what happened: every line except guest kernel progress lines
/// (those that report a fault are kept), the last [`MAX_LINES`] of them.
pub fn relevant_lines(out: &str) -> Vec<&str> {
    let kept: Vec<&str> = out
        .lines()
        .filter(|l| !is_kernel_line(l) || FAULT_WORDS.iter().any(|w| l.contains(w)))
        .collect();
    let skip = kept.len().saturating_sub(MAX_LINES);
    kept[skip..].to_vec()
}

/// Where whole outputs of failed tests are kept: `rig-logs/` in the cargo target dir this
/// binary was built into, or in the temporary directory.
pub fn log_dir() -> PathBuf {
    crate::rig::current_target_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("rig-logs")
}

/// Saves `out` as `<log_dir>/<name>.log` and returns the relevant lines with a header naming the
/// file. For a failure message: put the reason first, then this.
pub fn digest(name: &str, out: &str) -> String {
    let saved = save(name, out);
    let lines = relevant_lines(out);
    let total = out.lines().count();
    let whole = match &saved {
        Ok(p) => format!("whole output in {}", p.display()),
        Err(e) => format!("whole output could not be saved: {e}"),
    };
    format!(
        "--- {} of {total} lines ({whole}) ---\n{}",
        lines.len(),
        lines.join("\n")
    )
}

/// [`digest`] named after the running test (libtest names each test's thread after it).
pub fn digest_for_test(out: &str) -> String {
    let thread = std::thread::current();
    digest(thread.name().unwrap_or("rig-output"), out)
}

fn save(name: &str, out: &str) -> std::io::Result<PathBuf> {
    let dir = log_dir();
    std::fs::create_dir_all(&dir)?;
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file}.log"));
    write_new(&path, out)?;
    Ok(path)
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = crate::scratch_name(path);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_progress_is_dropped_and_faults_and_markers_kept() {
        let out = "\
[  19.804] L1 out | root1: [    0.044768] ACPI: DSDT 0x00000000000E01F0\n\
root1: [    1.824748] XSAVE consistency problem: size 832 != kernel_size 576\n\
root1: [    1.840584] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606\n\
root1: [    3.100000] Kernel panic - not syncing: VFS: Unable to mount root fs\n\
root1: VIREO-RESULT name=dhcp status=fail detail=no lease\n\
VMM-EXIT root1 2\n\
[   0.5] STEP start\n\
[   1.5] [    2.000000] virtio_blk virtio0: [vda] 131072 512-byte logical blocks\n";
        let kept = relevant_lines(out);
        assert_eq!(
            kept,
            vec![
                "root1: [    3.100000] Kernel panic - not syncing: VFS: Unable to mount root fs",
                "root1: VIREO-RESULT name=dhcp status=fail detail=no lease",
                "VMM-EXIT root1 2",
                "[   0.5] STEP start",
            ]
        );
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let out: String = (0..MAX_LINES + 40).map(|i| format!("line {i}\n")).collect();
        let kept = relevant_lines(&out);
        assert_eq!(kept.len(), MAX_LINES);
        assert_eq!(kept[0], "line 40");
    }

    #[test]
    fn digest_names_the_saved_whole_output() {
        let name = format!("report-unit-{}", std::process::id());
        let d = digest(&name, "a\nb\n");
        let path = log_dir().join(format!("{name}.log"));
        assert!(d.contains(&path.display().to_string()), "{d}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        std::fs::remove_file(path).unwrap();
    }
}

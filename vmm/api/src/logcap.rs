//! Bounded logging: size-capped rotating log files, a limiter for lines a guest can repeat at
//! will, and the caps of every file a guest can make the host write, in one place.
//!
//! A guest can write to its serial port, hit the boot-time marker or fail block and network
//! requests as fast as it likes; each of those ends up in a file on the user's runtime
//! directory (a tmpfs, i.e. memory). Like libvirt's virtlogd, each such file is rotated at a
//! maximum size and keeps a fixed number of backups (`serial.log`, `serial.log.1`, ...), and the
//! lines the VMM writes per guest request are rate limited.
//!
//! Rotation is copy-and-truncate: the backups are opened when the log is, and rotating copies
//! each file one step older and truncates the current one. That needs no `open` or `rename`
//! after start-up, which the VMM's sandboxed vCPU threads (the serial port's writers) are not
//! allowed; and the current file keeps its inode, so another process appending to it through
//! an inherited `O_APPEND` descriptor (the supervisor's own stderr) keeps landing in the
//! current file. The cost, copying at most `backups * max_size` bytes every `max_size` bytes
//! of output, is small next to one VM exit per byte a guest writes to a UART.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How large one log file may grow and how many older files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes per file; the file is rotated before a write would take it past this.
    pub max_size: u64,
    /// Older files kept (`NAME.1` is the newest of them).
    pub backups: u32,
}

impl Limits {
    /// The most all files of this log together can hold.
    pub const fn total(self) -> u64 {
        self.max_size * (self.backups as u64 + 1)
    }
}

const MIB: u64 = 1 << 20;

/// The guest's serial output (`serial.log`): libvirt's virtlogd defaults (`max_size` 2 MiB,
/// `max_backups` 3), which is what libvirt applies to a console log file.
pub const SERIAL_LOG: Limits = Limits {
    max_size: 2 * MIB,
    backups: 3,
};

/// The helper's stdout and stderr and the supervisor's lines (`vmm.log`): virtlogd's defaults
/// too (libvirt logs QEMU's stderr through virtlogd with the same limits).
pub const VMM_LOG: Limits = Limits {
    max_size: 2 * MIB,
    backups: 3,
};

/// One connection's event log (`events.log`, JSON lines of about 150 bytes: some 7000 events
/// per file). Followers read across a rotation, so one backup is enough.
pub const EVENTS_LOG: Limits = Limits {
    max_size: MIB,
    backups: 1,
};

/// Room for the runtime directory's other files (configuration, live XML, state, locks and
/// sockets), none of which a guest can grow.
pub const RUNDIR_OTHER: u64 = MIB;

/// The most a running machine's runtime directory holds, for the given log limits.
pub const fn rundir_cap(serial: Limits, vmm: Limits) -> u64 {
    serial.total() + vmm.total() + RUNDIR_OTHER
}

/// Lines longer than this are cut when a child's output is copied into a log.
pub const MAX_LINE: usize = 4096;

/// Lines a call site may log per [`LINE_WINDOW`] before the rest are only counted.
pub const LINE_BURST: u32 = 10;
/// See [`LINE_BURST`].
pub const LINE_WINDOW: Duration = Duration::from_secs(5);

/// Tests (and users short of memory) may lower every log's `max_size` with this variable
/// (bytes); it never raises one.
pub const MAX_SIZE_ENV: &str = "VIREO_LOG_MAX_SIZE";

/// `default`, with `max_size` lowered to [`MAX_SIZE_ENV`] if that is set and smaller.
pub fn limits(default: Limits) -> Limits {
    lowered(default, std::env::var(MAX_SIZE_ENV).ok().as_deref())
}

fn lowered(default: Limits, setting: Option<&str>) -> Limits {
    match setting.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(v) if v > 0 && v < default.max_size => Limits {
            max_size: v,
            ..default
        },
        _ => default,
    }
}

/// `NAME.i`, the `i`th backup of `path`.
pub fn backup_path(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// A log file that never grows past its [`Limits`]: writes go to the current file, which is
/// rotated (copied to `NAME.1`, `NAME.1` to `NAME.2`, ...) and truncated when full.
#[derive(Debug)]
pub struct CappedLog {
    limits: Limits,
    current: File,
    backups: Vec<File>,
    size: u64,
}

fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).read(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    o.open(path)
}

impl CappedLog {
    /// Opens (creating, mode 0600) `path` and its backups. A file already past the limit is
    /// rotated at the first write.
    pub fn open(path: &Path, limits: Limits) -> io::Result<CappedLog> {
        let current = open_private(path, true)?;
        let backups = (1..=limits.backups)
            .map(|i| open_private(&backup_path(path, i), false))
            .collect::<io::Result<Vec<_>>>()?;
        let size = current.metadata()?.len();
        Ok(CappedLog {
            limits: Limits {
                max_size: limits.max_size.max(1),
                ..limits
            },
            current,
            backups,
            size,
        })
    }

    /// Bytes in the current file, as far as this writer knows.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (0..self.backups.len()).rev() {
            let src = match i {
                0 => &self.current,
                _ => &self.backups[i - 1],
            };
            copy_over(src, &self.backups[i])?;
        }
        self.current.set_len(0)?;
        self.size = 0;
        Ok(())
    }
}

/// Replaces `dst`'s contents with `src`'s.
fn copy_over(src: &File, dst: &File) -> io::Result<()> {
    dst.set_len(0)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        let n = src.read_at(&mut buf, off)?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
}

impl Write for CappedLog {
    /// Writes what fits in the current file, rotating first when `buf` would not fit (a `buf`
    /// larger than a whole file is split across rotations by `write_all`).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let max = self.limits.max_size;
        let len = buf.len() as u64;
        if self.size >= max || (self.size > 0 && self.size + len > max && len <= max) {
            self.rotate()?;
        }
        let room = usize::try_from(max - self.size).unwrap_or(usize::MAX);
        let n = self.current.write(&buf[..buf.len().min(room)])?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copies a child's output (a pipe) into a log line by line until end of file, cutting lines at
/// [`MAX_LINE`] and collapsing a run of identical lines into the first one and a "last line
/// repeated N times" note (as syslog does). `write` gets whole lines, newline included.
pub fn pump(input: impl Read, mut write: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut r = io::BufReader::new(input);
    let mut line = Vec::new();
    let mut last = Vec::new();
    let mut repeated = 0u64;
    let flush_repeats = |repeated: &mut u64, write: &mut dyn FnMut(&[u8]) -> io::Result<()>| {
        if *repeated > 0 {
            let note = format!("(last line repeated {repeated} times)\n");
            *repeated = 0;
            write(note.as_bytes())
        } else {
            Ok(())
        }
    };
    loop {
        line.clear();
        let n = r
            .by_ref()
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return flush_repeats(&mut repeated, &mut write);
        }
        if line.last() != Some(&b'\n') {
            // Cut (or the last line had no newline): skip the rest of an over-long line.
            line.push(b'\n');
            if n == MAX_LINE {
                skip_line(&mut r)?;
            }
        }
        if line == last {
            repeated += 1;
            continue;
        }
        flush_repeats(&mut repeated, &mut write)?;
        write(&line)?;
        std::mem::swap(&mut last, &mut line);
    }
}

/// Consumes input up to and including the next newline, holding no more than one buffer.
fn skip_line(r: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

/// Limits how often one call site logs: [`LINE_BURST`]-like bursts per window, then only a
/// count, reported with the next line that gets through. For lines a guest can cause once per
/// request (a failed block request, a boot-marker write).
#[derive(Debug)]
pub struct LineLimiter {
    what: &'static str,
    burst: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    passed: u32,
    suppressed: u64,
}

impl LineLimiter {
    /// `what` names the lines in the "N more ... not logged" note.
    pub const fn new(what: &'static str, burst: u32, window: Duration) -> LineLimiter {
        LineLimiter {
            what,
            burst,
            window,
            state: Mutex::new(Window {
                start: None,
                passed: 0,
                suppressed: 0,
            }),
        }
    }

    /// The project's usual limit ([`LINE_BURST`] per [`LINE_WINDOW`]).
    pub const fn standard(what: &'static str) -> LineLimiter {
        LineLimiter::new(what, LINE_BURST, LINE_WINDOW)
    }

    /// Whether a line may be logged at `now`: `Some(n)` lets it through, `n` being the lines
    /// suppressed since the last one that got through; `None` counts it as suppressed.
    pub fn check_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match w.start {
            Some(s) => now.saturating_duration_since(s) >= self.window,
            None => true,
        };
        if fresh {
            w.start = Some(now);
            w.passed = 0;
        }
        if w.passed < self.burst {
            w.passed += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }

    /// Prints `args` to stderr unless the limit is reached, with a note of what was suppressed.
    pub fn eprintln(&self, args: std::fmt::Arguments<'_>) {
        if let Some(n) = self.check_at(Instant::now()) {
            // Not eprintln!: it panics when stderr's reader (the supervisor) is gone.
            let mut err = std::io::stderr().lock();
            if n > 0 {
                let _ = writeln!(err, "vireo-vmm: {n} more {} not logged", self.what);
            }
            let _ = writeln!(err, "{args}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let d = std::env::temp_dir().join(format!("vireo-logcap-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap()
    }

    #[test]
    fn rotates_at_the_size_and_keeps_the_newest_backups() {
        let d = tempdir("rot");
        let p = d.join("x.log");
        let lim = Limits {
            max_size: 10,
            backups: 2,
        };
        let mut log = CappedLog::open(&p, lim).unwrap();
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gg\n",
        ] {
            log.write_all(line.as_bytes()).unwrap();
        }
        assert_eq!(read(&p), b"gg\n");
        assert_eq!(read(&backup_path(&p, 1)), b"eeee\nffff\n");
        assert_eq!(read(&backup_path(&p, 2)), b"cccc\ndddd\n");
        assert!(!backup_path(&p, 3).exists(), "only two backups");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_flood_never_takes_any_file_past_the_cap() {
        let d = tempdir("cap");
        let p = d.join("serial.log");
        let lim = Limits {
            max_size: 1000,
            backups: 3,
        };
        let mut log = CappedLog::open(&p, lim).unwrap();
        for i in 0..100_000u32 {
            // Single bytes (a UART), odd-sized lines and one write larger than a file.
            log.write_all(&[b'a' + (i % 26) as u8]).unwrap();
            if i % 997 == 0 {
                log.write_all(&vec![b'x'; 2500]).unwrap();
            }
        }
        let mut total = 0;
        for e in std::fs::read_dir(&d).unwrap() {
            let len = e.unwrap().metadata().unwrap().len();
            assert!(len <= lim.max_size, "{len}");
            total += len;
        }
        assert!(total <= lim.total());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 4);
        // The newest output is in the current file, continuing from the newest backup.
        let mut tail = read(&backup_path(&p, 1));
        tail.extend(read(&p));
        assert!(
            tail.ends_with(b"uvwxyzabcd"),
            "{:?}",
            String::from_utf8_lossy(&tail)
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn reopening_an_oversized_file_rotates_it_first() {
        let d = tempdir("reopen");
        let p = d.join("x.log");
        std::fs::write(&p, vec![b'o'; 50]).unwrap();
        let mut log = CappedLog::open(
            &p,
            Limits {
                max_size: 20,
                backups: 1,
            },
        )
        .unwrap();
        log.write_all(b"new\n").unwrap();
        assert_eq!(read(&p), b"new\n");
        assert_eq!(read(&backup_path(&p, 1)).len(), 50);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn zero_backups_only_truncates() {
        let d = tempdir("zero");
        let p = d.join("x.log");
        let mut log = CappedLog::open(
            &p,
            Limits {
                max_size: 8,
                backups: 0,
            },
        )
        .unwrap();
        log.write_all(b"1234567\nabc\n").unwrap();
        assert_eq!(read(&p), b"abc\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn env_lowers_but_never_raises() {
        assert_eq!(lowered(SERIAL_LOG, Some("4096")).max_size, 4096);
        assert_eq!(
            lowered(SERIAL_LOG, Some("4096")).backups,
            SERIAL_LOG.backups
        );
        let more = (SERIAL_LOG.max_size * 10).to_string();
        assert_eq!(lowered(SERIAL_LOG, Some(&more)), SERIAL_LOG);
        assert_eq!(lowered(SERIAL_LOG, Some("0")), SERIAL_LOG);
        assert_eq!(lowered(SERIAL_LOG, Some("lots")), SERIAL_LOG);
        assert_eq!(lowered(SERIAL_LOG, None), SERIAL_LOG);
    }

    #[test]
    fn limiter_passes_a_burst_then_counts_until_the_next_window() {
        let l = LineLimiter::new("test lines", 3, Duration::from_secs(5));
        let t0 = Instant::now();
        let got: Vec<_> = (0..10).map(|_| l.check_at(t0)).collect();
        assert_eq!(&got[..3], &[Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        assert_eq!(l.check_at(t0 + Duration::from_secs(4)), None);
        // The next window: the first line through reports the 8 suppressed ones.
        assert_eq!(l.check_at(t0 + Duration::from_secs(5)), Some(8));
        assert_eq!(l.check_at(t0 + Duration::from_secs(5)), Some(0));
    }

    #[test]
    fn pump_collapses_repeats_and_cuts_long_lines() {
        let mut input = b"one\nsame\nsame\nsame\ntwo\n".to_vec();
        input.extend(vec![b'z'; MAX_LINE * 3]);
        input.extend(b"\nend\nend");
        let mut out = Vec::new();
        pump(&input[..], |l| {
            out.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out[..4],
            ["one\n", "same\n", "(last line repeated 2 times)\n", "two\n"]
        );
        assert_eq!(out[4].len(), MAX_LINE + 1);
        assert_eq!(out[5..], ["end\n", "(last line repeated 1 times)\n"]);
        assert_eq!(out.len(), 7, "{out:?}");
    }
}

//! Resource use of a running machine's `vireo-vmm` helper, read from `/proc`: CPU time (all its
//! threads: vCPUs, device workers, VNC), resident memory and how long it has been running.
//! The helper is found through the machine's runtime record (pid plus start time, so a reused
//! pid is never mistaken for it).

use crate::connection::{Connection, DriverError};
use crate::rundir::RunDir;
use std::path::PathBuf;
use std::time::Duration;

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    pub pid: i32,
    /// User plus system CPU time of all threads since the process started.
    pub cpu_time: Duration,
    /// Resident set size (VmRSS): guest memory the guest has touched plus the helper's own.
    pub rss_bytes: u64,
    /// Time since the process started.
    pub uptime: Duration,
}

impl ProcessStats {
    /// Average CPU use between two samples of the same process, in cores (1.0 = one core
    /// busy all the time); `None` when `later` is not later.
    pub fn cpu_cores_since(&self, earlier: &ProcessStats, wall: Duration) -> Option<f64> {
        if wall.is_zero() || self.pid != earlier.pid {
            return None;
        }
        let used = self.cpu_time.checked_sub(earlier.cpu_time)?;
        Some(used.as_secs_f64() / wall.as_secs_f64())
    }
}

fn proc_error(path: PathBuf, what: &str) -> DriverError {
    DriverError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
    }
}

fn read_proc(path: PathBuf) -> Result<String, DriverError> {
    std::fs::read_to_string(&path).map_err(|source| DriverError::Io { path, source })
}

/// Clock ticks per second, the unit of the times in `/proc/PID/stat`.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn ticks(n: u64) -> Duration {
    let hz = ticks_per_second();
    Duration::from_secs(n / hz) + Duration::from_nanos((n % hz) * 1_000_000_000 / hz)
}

/// Fields 14 (utime), 15 (stime) and 22 (starttime) of a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(u64, u64, u64)> {
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)?, field(15)?, field(22)?))
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// Seconds since boot, from `/proc/uptime`.
fn parse_uptime(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Resource use of any process by pid.
pub fn process_stats(pid: i32) -> Result<ProcessStats, DriverError> {
    let stat_path = PathBuf::from(format!("/proc/{pid}/stat"));
    let (utime, stime, start) = parse_stat(&read_proc(stat_path.clone())?)
        .ok_or_else(|| proc_error(stat_path, "no utime/stime/starttime fields"))?;
    let status_path = PathBuf::from(format!("/proc/{pid}/status"));
    // A zombie has no VmRSS line: it holds no memory any more.
    let rss_bytes = parse_rss(&read_proc(status_path)?).unwrap_or(0);
    let uptime_path = PathBuf::from("/proc/uptime");
    let since_boot = parse_uptime(&read_proc(uptime_path.clone())?)
        .ok_or_else(|| proc_error(uptime_path, "no seconds since boot"))?;
    Ok(ProcessStats {
        pid,
        cpu_time: ticks(utime.saturating_add(stime)),
        rss_bytes,
        uptime: since_boot.saturating_sub(ticks(start)),
    })
}

/// Resource use of the helper running machine `name`; [`DriverError::NotRunning`] when no
/// helper of ours runs for it (off, crashed and preserved, or between a reboot's two helpers).
pub fn machine_stats(conn: &Connection, name: &str) -> Result<ProcessStats, DriverError> {
    // info() reconciles a stale record and knows names by UUID too.
    let info = conn.info(name)?;
    if !info.state.is_active() {
        return Err(DriverError::NotRunning(info.name));
    }
    let run = RunDir::new(conn.paths().machine_runtime(&info.name));
    let record = run
        .read_state()
        .ok_or_else(|| DriverError::NotRunning(info.name.clone()))?;
    let (Some(pid), Some(start)) = (record.vmm_pid, record.vmm_start) else {
        return Err(DriverError::NotRunning(info.name));
    };
    if !crate::process::is_our_process(pid, start, "vireo-vmm") {
        return Err(DriverError::NotRunning(info.name));
    }
    let stats = process_stats(pid)?;
    // The pid may have been reused between the check and the reads.
    if crate::process::start_token(pid) != Some(start) {
        return Err(DriverError::NotRunning(info.name));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0 98765 1000 200";
        assert_eq!(parse_stat(line), Some((150, 25, 98765)));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tvireo-vmm\nVmPeak:\t  900 kB\nVmRSS:\t   2048 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(2048 * 1024));
        assert_eq!(parse_rss("Name:\tzombie\n"), None);
        assert_eq!(parse_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn uptime_is_parsed() {
        assert_eq!(
            parse_uptime("12.50 40.00\n"),
            Some(Duration::from_millis(12_500))
        );
        assert_eq!(parse_uptime("x"), None);
        assert_eq!(parse_uptime("-1 0"), None);
    }

    /// The test process itself: touching memory raises its RSS, spinning raises its CPU time.
    #[test]
    fn own_process_is_measured() {
        let pid = std::process::id() as i32;
        // The wall clock starts with the first sample: touching the block below costs CPU time
        // too (page faults), and a loaded CI-like run once made that 2.98 "cores" of 2.
        let start = Instant::now();
        let before = process_stats(pid).unwrap();
        assert!(before.rss_bytes > 0);
        // The test binary started moments ago, not before the machine booted.
        assert!(before.uptime < Duration::from_secs(600), "{before:?}");

        let mut block = vec![0u8; 64 << 20];
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        // Spin until the process has used 200 ms more CPU: the machine is shared, so a fixed
        // spin time says nothing about how much of it was ours.
        let mut x = 0u64;
        let after = loop {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            let now = process_stats(pid).unwrap();
            if now.cpu_time >= before.cpu_time + Duration::from_millis(200) {
                break now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "CPU time stuck at {:?} while spinning",
                now.cpu_time
            );
        };
        std::hint::black_box((x, &block));
        assert!(
            after.rss_bytes >= before.rss_bytes + (32 << 20),
            "RSS {} -> {} after touching 64 MiB",
            before.rss_bytes,
            after.rss_bytes
        );
        let cores = after.cpu_cores_since(&before, start.elapsed()).unwrap();
        // Two cores here; other tests of this binary may spin too, but never above the host.
        let host = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(cores > 0.0 && cores <= host * 1.2, "{cores} cores");
        assert!(after.uptime >= before.uptime);
        drop(block);
    }

    #[test]
    fn a_missing_process_is_an_error_naming_the_file() {
        let e = process_stats(i32::MAX).unwrap_err().to_string();
        assert!(e.contains(&format!("/proc/{}/stat", i32::MAX)), "{e}");
    }

    #[test]
    fn a_machine_that_is_not_running_has_no_stats() {
        let dir = std::env::temp_dir().join(format!("vireo-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = crate::Paths::all_under(&dir);
        let conn = Connection::with_paths(paths);
        conn.define_xml(
            "<domain type='kvm'><name>idle</name><memory unit='MiB'>64</memory>\
             <os><type>hvm</type><kernel>/boot/vmlinuz</kernel></os></domain>",
        )
        .unwrap();
        assert!(matches!(
            machine_stats(&conn, "idle"),
            Err(DriverError::NotRunning(n)) if n == "idle"
        ));
        assert!(matches!(
            machine_stats(&conn, "nothing"),
            Err(DriverError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

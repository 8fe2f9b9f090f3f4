//! What this computer can give a machine, checked before a start: a guest's memory is taken
//! from the host lazily, so a machine that asks for more than the host has starts fine and is
//! then killed by the OOM killer (or takes the user's session with it) once the guest uses it.

use std::path::Path;

/// Set to `1` to start machines that ask for more memory than this computer has (for guests
/// that are known to touch only part of it). Documented in help/C/system-requirements.page.
pub const ALLOW_MEMORY_OVERCOMMIT: &str = "VIREO_ALLOW_MEMORY_OVERCOMMIT";

/// A machine asks for more than the host has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memory: the machine asks for {asked_mib} MiB but this computer has {host_mib} MiB; lower the machine's memory, or set {ALLOW_MEMORY_OVERCOMMIT}=1 to start it anyway")]
pub struct NotEnoughMemory {
    pub asked_mib: u64,
    pub host_mib: u64,
}

/// The host's total memory in MiB from `/proc/meminfo`'s `MemTotal`, if it can be read.
pub fn total_memory_mib() -> Option<u64> {
    meminfo_total_mib(&std::fs::read_to_string(Path::new("/proc/meminfo")).ok()?)
}

fn meminfo_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Refuses `asked_mib` when it is more than `host_mib` (unknown host memory: no refusal), unless
/// the override is set.
pub fn check_memory(asked_mib: u64, host_mib: Option<u64>) -> Result<(), NotEnoughMemory> {
    let overridden = std::env::var_os(ALLOW_MEMORY_OVERCOMMIT).is_some_and(|v| v == "1");
    match host_mib {
        Some(host_mib) if asked_mib > host_mib && !overridden => Err(NotEnoughMemory {
            asked_mib,
            host_mib,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_mib() {
        let text = "MemTotal:       24570768 kB\nMemFree:        1000 kB\n";
        assert_eq!(meminfo_total_mib(text), Some(23994));
        assert_eq!(meminfo_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo_total_mib("MemTotal: lots kB\n"), None);
        assert!(total_memory_mib().is_some_and(|m| m > 0));
    }

    #[test]
    fn more_than_the_host_has_is_refused_with_both_figures() {
        assert!(check_memory(1024, Some(2048)).is_ok());
        assert!(check_memory(2048, Some(2048)).is_ok());
        assert!(check_memory(1 << 20, None).is_ok());
        let e = check_memory(4096, Some(2048)).unwrap_err();
        assert_eq!(
            e,
            NotEnoughMemory {
                asked_mib: 4096,
                host_mib: 2048
            }
        );
        let msg = e.to_string();
        assert!(msg.starts_with("memory: "), "{msg}");
        assert!(
            msg.contains("4096 MiB")
                && msg.contains("2048 MiB")
                && msg.contains(ALLOW_MEMORY_OVERCOMMIT)
        );
    }
}

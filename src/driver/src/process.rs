//! Process helpers: identify our helper processes reliably (a pid alone can be reused), find the
//! binaries, spawn detached.

use std::path::{Path, PathBuf};

/// The start time of a process (field 22 of /proc/PID/stat, clock ticks since boot). With the pid
/// it identifies one process for the life of the system.
pub fn start_token(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); starttime is field 22, i.e. index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that had `token` and runs a binary whose name starts
/// with `exe_prefix` (a rebuilt binary shows as "NAME (deleted)").
pub fn is_our_process(pid: i32, token: u64, exe_prefix: &str) -> bool {
    if pid <= 0 || start_token(pid) != Some(token) {
        return false;
    }
    // A zombie has no exe link but is not running either.
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().starts_with(exe_prefix))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends a signal; `false` if the process is gone.
pub fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions; pid > 0 is checked so we never signal a group.
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn sibling(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let p = dir.join(name);
    if p.is_file() {
        return Some(p);
    }
    // Integration tests run from target/debug/deps: the binaries are one level up.
    let p = dir.parent()?.join(name);
    p.is_file().then_some(p)
}

/// Finds a binary: `$env_var`, next to the running executable, then `$PATH`.
pub fn find_binary(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_name().map(|n| n == name).unwrap_or(false) {
            return Some(exe);
        }
    }
    sibling(name).or_else(|| in_path(name))
}

/// Spawns `cmd` fully detached: a new session (no controlling terminal, so closing the terminal
/// or quitting the GUI does not touch it) and re-parented to init through a double fork, so that
/// no client has to reap it.
pub fn spawn_detached(cmd: &mut std::process::Command) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (setsid, fork, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            match libc::fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => Ok(()),
                _ => libc::_exit(0),
            }
        });
    }
    let mut child = cmd.spawn()?;
    child.wait()?;
    Ok(())
}

/// Last non-empty lines of a log file, for error messages. A log that was just rotated
/// continues its newest backup (`NAME.1`). Both files are size-capped, so reading them whole is
/// bounded.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = std::fs::read(vireo_vmm_api::logcap::backup_path(path, 1)).unwrap_or_default();
    text.extend(std::fs::read(path).unwrap_or_default());
    let text = String::from_utf8_lossy(&text);
    let v: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_across_a_rotation() {
        let dir = std::env::temp_dir().join(format!("vireo-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("vmm.log");
        std::fs::write(dir.join("vmm.log.1"), "one\ntwo\n\nthree\n").unwrap();
        std::fs::write(&log, "four\n").unwrap();
        assert_eq!(tail(&log, 3), "two\nthree\nfour");
        std::fs::write(&log, "").unwrap();
        assert_eq!(tail(&log, 2), "two\nthree");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn own_process_is_recognised() {
        let pid = std::process::id() as i32;
        let t = start_token(pid).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        assert!(is_our_process(pid, t, &name[..4]));
        assert!(!is_our_process(pid, t + 1, &name[..4]));
        assert!(!is_our_process(pid, t, "vireo-vmm-not-this"));
    }
}

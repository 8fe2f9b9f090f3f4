//! Machine states and reasons with libvirt's names, the record kept in the runtime directory,
//! and the state machine that decides what happens when a helper process ends.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What the driver does when the guest powers off, reboots or crashes (the domain's
/// `on_poweroff`, `on_reboot`, `on_crash`): the domain model's value, with libvirt's spellings.
pub use vireo_domain::LifecycleAction;

/// libvirt's `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainState {
    NoState,
    Running,
    Blocked,
    Paused,
    /// Being shut down.
    Shutdown,
    Shutoff,
    Crashed,
    PmSuspended,
}

impl DomainState {
    /// The words `virsh domstate` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::NoState => "no state",
            DomainState::Running => "running",
            DomainState::Blocked => "idle",
            DomainState::Paused => "paused",
            DomainState::Shutdown => "in shutdown",
            DomainState::Shutoff => "shut off",
            DomainState::Crashed => "crashed",
            DomainState::PmSuspended => "pmsuspended",
        }
    }

    pub fn is_active(self) -> bool {
        !matches!(self, DomainState::Shutoff | DomainState::NoState)
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libvirt's per-state reasons (the subset Vireo produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Unknown,
    /// running
    Booted,
    Unpaused,
    /// paused
    User,
    /// shut off
    Shutdown,
    Destroyed,
    Crashed,
    Failed,
    /// crashed
    Panicked,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "unknown",
            Reason::Booted => "booted",
            Reason::Unpaused => "unpaused",
            Reason::User => "user",
            Reason::Shutdown => "shutdown",
            Reason::Destroyed => "destroyed",
            Reason::Crashed => "crashed",
            Reason::Failed => "failed",
            Reason::Panicked => "panicked",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `state.json` in a runtime directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub state: DomainState,
    pub reason: Reason,
    /// Transient machines disappear when they stop.
    #[serde(default)]
    pub transient: bool,
    /// The supervisor process.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// The `vireo-vmm` process and its start time (field 22 of /proc/PID/stat), which together
    /// identify it even after the pid is reused.
    #[serde(default)]
    pub vmm_pid: Option<i32>,
    #[serde(default)]
    pub vmm_start: Option<u64>,
    /// Unix time (ms) of the last state change.
    #[serde(default)]
    pub since_ms: u64,
    /// Loopback TCP port of the VNC server, if it has one.
    #[serde(default)]
    pub vnc_port: Option<u16>,
    /// How many times the supervisor restarted the helper (on_reboot / on_crash).
    #[serde(default)]
    pub restarts: u32,
    /// Why the last run ended, in words (e.g. the VMM's last error line).
    #[serde(default)]
    pub message: Option<String>,
}

impl StateRecord {
    pub fn new(state: DomainState, reason: Reason) -> StateRecord {
        StateRecord {
            state,
            reason,
            transient: false,
            supervisor_pid: None,
            vmm_pid: None,
            vmm_start: None,
            since_ms: now_ms(),
            vnc_port: None,
            restarts: 0,
            message: None,
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a helper process ended, from its exit status ([`vireo_vmm_api::exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmExit {
    Poweroff,
    Reboot,
    Crash,
    /// The VMM failed (bad config, host error).
    Error,
    /// A VMM thread panicked: the helper itself broke, whatever the guest was doing.
    Panic,
    /// Killed by a signal nobody announced.
    Killed(i32),
}

impl VmmExit {
    pub fn from_status(status: std::process::ExitStatus) -> VmmExit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(c), _) if c == vireo_vmm_api::exit::EXIT_POWEROFF => VmmExit::Poweroff,
            (Some(c), _) if c == vireo_vmm_api::exit::EXIT_REBOOT => VmmExit::Reboot,
            (Some(c), _) if c == vireo_vmm_api::exit::EXIT_CRASH => VmmExit::Crash,
            (Some(c), _) if c == vireo_vmm_api::exit::EXIT_PANIC => VmmExit::Panic,
            (Some(_), _) => VmmExit::Error,
            (None, Some(s)) => VmmExit::Killed(s),
            (None, None) => VmmExit::Error,
        }
    }
}

/// What a client asked for before it ended the helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    Destroy,
    Reboot,
}

/// The lifecycle actions of a domain. An action libvirt does not define never gets here:
/// validation refuses it, and [`crate::Definition`] reads the default in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: LifecycleAction,
}

/// A lifecycle event with libvirt's event and detail names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Defined,
    Undefined,
    Started,
    Suspended,
    Resumed,
    Stopped,
    Shutdown,
    Crashed,
    Rebooted,
    /// A CD-ROM drive's medium changed (libvirt's disk-change event); the event's `disk` says
    /// which drive and how.
    #[serde(rename = "disk-change")]
    DiskChange,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Defined => "Defined",
            EventKind::Undefined => "Undefined",
            EventKind::Started => "Started",
            EventKind::Suspended => "Suspended",
            EventKind::Resumed => "Resumed",
            EventKind::Stopped => "Stopped",
            EventKind::Shutdown => "Shutdown",
            EventKind::Crashed => "Crashed",
            EventKind::Rebooted => "Rebooted",
            EventKind::DiskChange => "DiskChange",
        }
    }
}

/// The supervisor's decision after the helper ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Start a fresh helper (on_reboot/on_crash restart).
    pub restart: bool,
    /// The state to record when not restarting (ignored when restarting).
    pub state: DomainState,
    pub reason: Reason,
    /// Keep the runtime directory (preserve) instead of cleaning it up.
    pub preserve: bool,
    /// Events to emit, in order, with their libvirt detail word.
    pub events: Vec<(EventKind, &'static str)>,
    /// Something to tell the user (e.g. coredump not supported).
    pub note: Option<String>,
}

fn stop(state: DomainState, reason: Reason, events: Vec<(EventKind, &'static str)>) -> Decision {
    Decision {
        restart: false,
        state,
        reason,
        preserve: false,
        events,
        note: None,
    }
}

fn restart(events: Vec<(EventKind, &'static str)>) -> Decision {
    Decision {
        restart: true,
        state: DomainState::Running,
        reason: Reason::Booted,
        preserve: false,
        events,
        note: None,
    }
}

/// The state machine: helper ended with `exit`, a client may have said why beforehand.
pub fn decide(exit: VmmExit, intent: Option<Intent>, a: &Actions) -> Decision {
    use LifecycleAction as A;
    match (intent, exit) {
        (Some(Intent::Destroy), _) => stop(
            DomainState::Shutoff,
            Reason::Destroyed,
            vec![(EventKind::Stopped, "Destroyed")],
        ),
        // A helper that failed on its way out (a disk it could not flush) is not restarted on
        // images that may lack the guest's last writes, even for a client's reboot.
        (Some(Intent::Reboot), VmmExit::Error) => stop(
            DomainState::Shutoff,
            Reason::Failed,
            vec![(EventKind::Stopped, "Failed")],
        ),
        // Otherwise a client's reboot always restarts, as `virsh reboot` does for a running
        // guest (also when the helper had to be killed because it did not answer).
        (Some(Intent::Reboot), _) => restart(vec![(EventKind::Rebooted, "Rebooted")]),
        (None, VmmExit::Poweroff) => match a.on_poweroff {
            A::Restart | A::RenameRestart => {
                let mut d = restart(vec![
                    (EventKind::Shutdown, "Finished"),
                    (EventKind::Started, "Booted"),
                ]);
                if a.on_poweroff == A::RenameRestart {
                    d.note =
                        Some("on_poweroff rename-restart: restarted under the same name".into());
                }
                d
            }
            A::Preserve => Decision {
                preserve: true,
                ..stop(
                    DomainState::Shutoff,
                    Reason::Shutdown,
                    vec![
                        (EventKind::Shutdown, "Finished"),
                        (EventKind::Stopped, "Shutdown"),
                    ],
                )
            },
            _ => stop(
                DomainState::Shutoff,
                Reason::Shutdown,
                vec![
                    (EventKind::Shutdown, "Finished"),
                    (EventKind::Stopped, "Shutdown"),
                ],
            ),
        },
        (None, VmmExit::Reboot) => match a.on_reboot {
            A::Restart | A::RenameRestart => {
                let mut d = restart(vec![(EventKind::Rebooted, "Rebooted")]);
                if a.on_reboot == A::RenameRestart {
                    d.note = Some("on_reboot rename-restart: restarted under the same name".into());
                }
                d
            }
            A::Preserve => Decision {
                preserve: true,
                ..stop(
                    DomainState::Shutoff,
                    Reason::Shutdown,
                    vec![(EventKind::Stopped, "Shutdown")],
                )
            },
            _ => stop(
                DomainState::Shutoff,
                Reason::Shutdown,
                vec![(EventKind::Stopped, "Shutdown")],
            ),
        },
        (None, VmmExit::Crash) => {
            let note = match a.on_crash {
                A::CoredumpDestroy | A::CoredumpRestart => Some(format!(
                    "on_crash {}: guest core dumps are not supported, no dump was written",
                    a.on_crash
                )),
                A::RenameRestart => {
                    Some("on_crash rename-restart: restarted under the same name".into())
                }
                _ => None,
            };
            let mut d = match a.on_crash {
                A::Restart | A::RenameRestart | A::CoredumpRestart => restart(vec![
                    (EventKind::Crashed, "Panicked"),
                    (EventKind::Started, "Booted"),
                ]),
                A::Preserve => Decision {
                    preserve: true,
                    ..stop(
                        DomainState::Crashed,
                        Reason::Panicked,
                        vec![(EventKind::Crashed, "Panicked")],
                    )
                },
                _ => stop(
                    DomainState::Shutoff,
                    Reason::Crashed,
                    vec![
                        (EventKind::Crashed, "Panicked"),
                        (EventKind::Stopped, "Crashed"),
                    ],
                ),
            };
            d.note = note;
            d
        }
        (None, VmmExit::Error) => stop(
            DomainState::Shutoff,
            Reason::Failed,
            vec![(EventKind::Stopped, "Failed")],
        ),
        // The helper died under the guest, as libvirt reports a QEMU that went away: shut off
        // (crashed), Stopped Failed. Not the guest's crash, so on_crash does not apply (and a
        // restart could only repeat the fault).
        (None, VmmExit::Panic | VmmExit::Killed(_)) => stop(
            DomainState::Shutoff,
            Reason::Crashed,
            vec![(EventKind::Stopped, "Failed")],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleAction as A;

    fn acts(p: A, r: A, c: A) -> Actions {
        Actions {
            on_poweroff: p,
            on_reboot: r,
            on_crash: c,
        }
    }

    #[test]
    fn destroy_wins_over_everything() {
        for exit in [
            VmmExit::Poweroff,
            VmmExit::Reboot,
            VmmExit::Crash,
            VmmExit::Killed(9),
            VmmExit::Panic,
            VmmExit::Error,
        ] {
            let d = decide(
                exit,
                Some(Intent::Destroy),
                &acts(A::Restart, A::Restart, A::Restart),
            );
            assert!(!d.restart);
            assert_eq!(
                (d.state, d.reason),
                (DomainState::Shutoff, Reason::Destroyed)
            );
            assert_eq!(d.events, vec![(EventKind::Stopped, "Destroyed")]);
        }
    }

    #[test]
    fn poweroff_actions() {
        let d = decide(
            VmmExit::Poweroff,
            None,
            &acts(A::Destroy, A::Restart, A::Destroy),
        );
        assert_eq!(
            (d.restart, d.state, d.reason),
            (false, DomainState::Shutoff, Reason::Shutdown)
        );
        assert_eq!(d.events.last(), Some(&(EventKind::Stopped, "Shutdown")));
        let d = decide(
            VmmExit::Poweroff,
            None,
            &acts(A::Restart, A::Restart, A::Destroy),
        );
        assert!(d.restart);
        let d = decide(
            VmmExit::Poweroff,
            None,
            &acts(A::Preserve, A::Restart, A::Destroy),
        );
        assert!(d.preserve && !d.restart);
        let d = decide(
            VmmExit::Poweroff,
            None,
            &acts(A::RenameRestart, A::Restart, A::Destroy),
        );
        assert!(d.restart && d.note.is_some());
    }

    #[test]
    fn reboot_actions() {
        let d = decide(
            VmmExit::Reboot,
            None,
            &acts(A::Destroy, A::Restart, A::Destroy),
        );
        assert!(d.restart);
        assert_eq!(d.events, vec![(EventKind::Rebooted, "Rebooted")]);
        let d = decide(
            VmmExit::Reboot,
            None,
            &acts(A::Destroy, A::Destroy, A::Destroy),
        );
        assert_eq!(
            (d.restart, d.state, d.reason),
            (false, DomainState::Shutoff, Reason::Shutdown)
        );
        // A client's reboot restarts even with on_reboot=destroy.
        let d = decide(
            VmmExit::Killed(9),
            Some(Intent::Reboot),
            &acts(A::Destroy, A::Destroy, A::Destroy),
        );
        assert!(d.restart);
    }

    #[test]
    fn crash_actions() {
        let d = decide(
            VmmExit::Crash,
            None,
            &acts(A::Destroy, A::Restart, A::Destroy),
        );
        assert_eq!(
            (d.restart, d.state, d.reason),
            (false, DomainState::Shutoff, Reason::Crashed)
        );
        assert_eq!(d.events[0], (EventKind::Crashed, "Panicked"));
        let d = decide(
            VmmExit::Crash,
            None,
            &acts(A::Destroy, A::Restart, A::Restart),
        );
        assert!(d.restart && d.note.is_none());
        let d = decide(
            VmmExit::Crash,
            None,
            &acts(A::Destroy, A::Restart, A::CoredumpRestart),
        );
        assert!(
            d.restart
                && d.note
                    .as_deref()
                    .unwrap_or("")
                    .contains("core dumps are not supported")
        );
        let d = decide(
            VmmExit::Crash,
            None,
            &acts(A::Destroy, A::Restart, A::CoredumpDestroy),
        );
        assert!(!d.restart && d.note.is_some());
        let d = decide(
            VmmExit::Crash,
            None,
            &acts(A::Destroy, A::Restart, A::Preserve),
        );
        assert_eq!(
            (d.state, d.reason, d.preserve),
            (DomainState::Crashed, Reason::Panicked, true)
        );
    }

    #[test]
    fn failures() {
        let d = decide(
            VmmExit::Error,
            None,
            &acts(A::Restart, A::Restart, A::Restart),
        );
        assert_eq!((d.restart, d.reason), (false, Reason::Failed));
        let d = decide(
            VmmExit::Killed(9),
            None,
            &acts(A::Restart, A::Restart, A::Restart),
        );
        assert_eq!((d.restart, d.reason), (false, Reason::Crashed));
    }

    #[test]
    fn a_vmm_panic_is_shut_off_crashed_whatever_on_crash_says() {
        for on_crash in [A::Destroy, A::Restart, A::Preserve, A::CoredumpRestart] {
            let d = decide(
                VmmExit::Panic,
                None,
                &acts(A::Restart, A::Restart, on_crash),
            );
            assert_eq!(
                (d.restart, d.state, d.reason, d.preserve),
                (false, DomainState::Shutoff, Reason::Crashed, false)
            );
            assert_eq!(d.events, vec![(EventKind::Stopped, "Failed")]);
        }
    }

    #[test]
    fn exit_codes_map() {
        use std::os::unix::process::ExitStatusExt;
        let st = |c: i32| std::process::ExitStatus::from_raw(c << 8);
        assert_eq!(VmmExit::from_status(st(0)), VmmExit::Poweroff);
        assert_eq!(VmmExit::from_status(st(2)), VmmExit::Reboot);
        assert_eq!(VmmExit::from_status(st(3)), VmmExit::Crash);
        assert_eq!(VmmExit::from_status(st(1)), VmmExit::Error);
        assert_eq!(VmmExit::from_status(st(4)), VmmExit::Panic);
        assert_eq!(
            VmmExit::from_status(std::process::ExitStatus::from_raw(9)),
            VmmExit::Killed(9)
        );
    }

    #[test]
    fn a_reboot_whose_helper_failed_on_the_way_out_does_not_restart() {
        let a = acts(A::Restart, A::Restart, A::Restart);
        let d = decide(VmmExit::Error, Some(Intent::Reboot), &a);
        assert_eq!(
            (d.restart, d.state, d.reason),
            (false, DomainState::Shutoff, Reason::Failed)
        );
        assert!(decide(VmmExit::Reboot, Some(Intent::Reboot), &a).restart);
        assert!(decide(VmmExit::Killed(9), Some(Intent::Reboot), &a).restart);
    }
}

//! Vireo's nested-KVM test rig.
//!
//! Stock Linux guests need a hardware-virtualising KVM (kvm_amd / kvm_intel). Machines without
//! one (our build and CI machines expose only a paravirtual `kvm_pvm`) get it from the rig:
//! **L1** is Debian's bookworm kernel under QEMU TCG with `-cpu EPYC` (AMD SVM + nested paging),
//! whose busybox init loads irqbypass, kvm, ccp, kvm_amd; inside it, **L2** guests run on a real
//! `/dev/kvm`. On a host that has hardware KVM the same tests run directly, without L1.
//!
//! # How L1 sees the host
//! Commands run in L1 as root in a tmpfs root (switch_root, not a chroot, so user namespaces
//! and passt work) whose `/usr` and `/etc` are the host's (9p, read-only), so the host's QEMU,
//! libraries, firmware and tools are all there. A `dummy0` interface (10.0.2.15/24, default
//! route via 10.0.2.2) gives passt its routable interface; nothing leaves L1. The cargo target dir, the
//! workspace, the rig cache and [`RigConfig::shares`] / `VIREO_RIG_SHARE` are shared at the
//! same absolute paths: a binary built on the host runs in L1 under its host path. `/tmp`,
//! `/run`, `/root` are writable and private to L1.
//!
//! # The API
//! - [`run_command`]`(script, timeout) -> Result<CmdOutput>`: POSIX sh where a real KVM is
//!   (host with hardware KVM, else the shared L1).
//! - [`run_command_fresh`]`(script, timeout)`: the same on a fresh L1, for scripts that start
//!   many L2 machines (an L1 that ran many of them was seen to panic or freeze).
//! - [`run_command_fresh_again_if_lost`]`(script, timeout, lost)`: the same, run once more
//!   when `lost` finds an L2 boot in the output that the nested rig lost (not the script).
//! - [`run_scenario`]`(&Scenario, &Launcher) -> Result<ScenarioReport>`: boots the stock Debian
//!   kernel as L2 with a scenario script; [`ScenarioReport::check`] turns a failed scenario into
//!   an error saying what failed and where L2 stalled.
//! - [`run_shared`]`(script, timeout)`: always in the shared L1; retried once on a fresh L1
//!   when L1 itself fails (agent silent, panic, QEMU gone).
//! - [`with_shared`]`(|rig: &mut Rig| ...)`: the process-wide L1 (booted once, on first use;
//!   calls serialised); [`Rig::boot`] / [`Rig::run`] for your own L1;
//!   [`Rig::run_with_fault`] + [`Fault`] inject transmission faults, [`Rig::recoveries`]
//!   counts how often the agent protocol recovered.
//! - [`l2`]: [`GuestImage`] (bzImage, extracted ELF vmlinux, base initramfs), [`Scenario`]
//!   (script, expected results, memory, vCPUs, cmdline, timeout, [`KernelForm`]), [`Launcher`]
//!   (`Qemu` or `VireoVmm { binary }`; `Launcher::parse("qemu"|"vmm")`), the console protocol
//!   and its parser [`l2::parse_line`], and [`l2::run_scenario_with`] to run a scenario through
//!   any command runner.
//! - [`debian`]: fetch + cache Debian packages (kernel, busybox-static).
//! - [`initramfs`]: the driver's initramfs builder ([`vireo_driver::initramfs`]: busybox,
//!   modules, init script) with the rig's module layout, atomic writes and concatenated
//!   archives; [`modules`]: the driver's module resolution ([`vireo_driver::modules`]) with
//!   compressed modules unpacked into the cache.
//! - [`report`]: failure messages that keep a failed script's telling lines (not whole L2 boot
//!   logs) and save the whole output under the target dir's `rig-logs/`.
//! - [`kvm`]: what KVM the host has ([`kvm::detect`], [`kvm::mode`]).
//! - [`reruns`]: every rerun is written down (stderr and a ledger the suite holds to a budget).
//! - [`fixtures`]: the firmware tests' boot media built from Debian packages (a grub-mkrescue
//!   ISO, a Debian disk with GRUB), cached in the target dir.
//! - [`screen_text`]: reads a BIOS text screen (boot menus) off a screenshot with the VGA font
//!   of Debian's SeaVGABIOS.
//! - [`qemu_pc`]: QEMU `-M pc` with SeaBIOS and ramfb as the reference firmware machine
//!   (monitor `screendump` and `sendkey`).
//! - [`timing`]: every measured phase (L1 boot, L2 boot, scenario, command); `timing::report()`.
//!
//! Nothing is skipped: a missing prerequisite (QEMU, apt, a package) is an error, so a test
//! that uses the rig fails loudly, in CI and elsewhere.
//!
//! # A rig-backed test
//! ```no_run
//! use std::time::Duration;
//! use vireo_rig::{run_scenario, Launcher, Scenario};
//!
//! // tests/boots_linux.rs of some crate (add `vireo-rig` as a dev-dependency).
//! #[test]
//! fn stock_kernel_sees_a_virtio_disk() {
//!     let sc = Scenario::new(
//!         "virtio-blk",
//!         "vireo_wait_for /dev/vda 10\nvireo_check vda-size cat /sys/block/vda/size\n",
//!     )
//!     .expect_pass("vda-size")
//!     .timeout(Duration::from_secs(180));
//!     // `Launcher::parse("vmm")` finds the vireo-vmm built into the same target dir.
//!     let launcher = Launcher::parse("vmm").unwrap();
//!     let report = run_scenario(&sc, &launcher).unwrap_or_else(|e| panic!("rig: {e}"));
//!     report.check().unwrap_or_else(|e| panic!("{e}"));
//! }
//! ```
//! Scenario scripts run under busybox `sh` in L2 with helpers: `vireo_result NAME pass|fail
//! DETAIL`, `vireo_check NAME CMD...`, `vireo_wait_for PATH SECONDS`. The guest reports
//! `VIREO-L2-INIT`, `VIREO-RESULT name=.. status=pass|fail detail=..` and `VIREO-DONE rc=N`
//! lines on its serial console.
//!
//! Environment: `VIREO_RIG_MODE=direct|nested`, `VIREO_RIG_QEMU`, `VIREO_RIG_CPU`,
//! `VIREO_RIG_SHARE`, `VIREO_RIG_BOOT_TIMEOUT`, `VIREO_RIG_QUIET`, `VIREO_RIG_VERBOSE`,
//! `VIREO_RIG_KERNEL_PACKAGE`, `VIREO_VMM`, `XDG_CACHE_HOME`.

pub mod agent;
pub mod debian;
pub mod error;
mod exec;
pub mod fixtures;
pub mod initramfs;
pub mod kvm;
pub mod l2;
pub mod modules;
pub mod qemu_pc;
pub mod report;
pub mod reruns;
pub mod rig;
pub mod screen_text;
mod spawn;
pub mod timing;

pub use error::{Result, RigError};
pub use exec::{
    run_command, run_command_fresh, run_command_fresh_again_if_lost, run_direct, run_scenario,
};
pub use l2::{GuestImage, KernelForm, Launcher, Scenario, ScenarioReport};
pub use rig::{run_fresh, run_shared, with_shared, CmdOutput, Fault, Line, Rig, RigConfig};

/// A scratch name beside `path` that no other process or thread uses: the tests of one binary
/// run in threads that fill the same cold cache at the same time, so a process id alone is not
/// enough (two threads once truncated each other's vmlinux).
pub(crate) fn scratch_name(path: &std::path::Path) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

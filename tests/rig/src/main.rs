//! `vireo-rig`: run a command, or an L2 scenario, where a real KVM is.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vireo_rig::kvm::{self, Mode};
use vireo_rig::{l2::shell_quote, KernelForm, Launcher, RigConfig, RigError, Scenario};

#[derive(Parser)]
#[command(version, about = "Vireo's nested-KVM test rig", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot L1 (QEMU TCG with SVM + nested paging) and run COMMAND in it; exit with its status.
    Run {
        /// Seconds the command may take.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Extra host directory visible read-only at the same path inside L1 (repeatable).
        #[arg(long)]
        share: Vec<PathBuf>,
        /// Run on this host instead (needs hardware KVM); default: decided by the host's KVM.
        #[arg(long, conflicts_with = "nested")]
        direct: bool,
        /// Run in L1 even when the host has hardware KVM.
        #[arg(long)]
        nested: bool,
        /// The command and its arguments (a single argument is run as shell text).
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Boot the stock Debian kernel as L2 with a scenario script and report its results.
    L2 {
        /// qemu or vmm (vireo-vmm from the same target dir, or $VIREO_VMM).
        #[arg(long, default_value = "qemu")]
        launcher: String,
        /// Scenario script file (busybox sh, with the vireo_* helpers).
        #[arg(long, conflicts_with = "inline")]
        script: Option<PathBuf>,
        /// Scenario script text.
        #[arg(long)]
        inline: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Result name that must pass (repeatable).
        #[arg(long)]
        expect: Vec<String>,
        /// Seconds one L2 run may take.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Boot the ELF vmlinux (PVH) instead of the bzImage.
        #[arg(long)]
        elf: bool,
    },
    /// Fetch the Debian packages and build the images, without booting.
    Fetch,
    /// Say what KVM this host has and where tests would run.
    Detect,
    /// Build (or find cached) the firmware tests' boot ISO and Debian disk; print their paths.
    Fixtures {
        /// Also the Debian disks, for BIOS and UEFI (slow the first time: mmdebstrap).
        #[arg(long)]
        disk: bool,
        /// Also the CD-ROM tests' media (the El Torito ISO and the data ISOs).
        #[arg(long)]
        cd: bool,
        /// Also the install flow's installer ISO.
        #[arg(long)]
        installer: bool,
        /// The ISO's GRUB menu boots its first entry after this many seconds (default: it
        /// waits for a key, as the tests want).
        #[arg(long)]
        menu_timeout: Option<u32>,
    },
    /// Print the text on a screenshot (.png or .ppm) of a BIOS text screen (or, with --kernel,
    /// the Linux console); with checks, exit 1 unless they all hold.
    ScreenText {
        file: PathBuf,
        /// SeaVGABIOS ROM holding the 8x16 font.
        #[arg(long, default_value = "/usr/share/seabios/vgabios-ramfb.bin")]
        font: PathBuf,
        /// Also read the Linux console: the kernel (ELF vmlinux, or a bzImage with an xz
        /// payload) whose built-in VGA 8x16 font to add.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// Text that must be on the screen (repeatable).
        #[arg(long)]
        expect: Vec<String>,
        /// Text that must be on the screen, highlighted (repeatable).
        #[arg(long)]
        highlighted: Vec<String>,
        /// Text that must be on the screen, not highlighted (repeatable).
        #[arg(long)]
        plain: Vec<String>,
    },
}

fn main() -> ExitCode {
    // `vireo-rig -- COMMAND...` (as in the README) is short for `vireo-rig run -- COMMAND...`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--") {
        args.insert(1, "run".into());
    }
    let cli = Cli::parse_from(args);
    let result = match cli.cmd {
        Cmd::Run {
            timeout,
            share,
            direct,
            nested,
            command,
        } => run(timeout, share, direct, nested, command),
        Cmd::L2 {
            launcher,
            script,
            inline,
            name,
            expect,
            timeout,
            memory,
            elf,
        } => {
            let form = if elf {
                KernelForm::ElfVmlinux
            } else {
                KernelForm::BzImage
            };
            l2(
                launcher, script, inline, name, expect, timeout, memory, form,
            )
        }
        Cmd::Fetch => fetch(),
        Cmd::Fixtures {
            disk,
            cd,
            installer,
            menu_timeout,
        } => fixtures(disk, cd, installer, menu_timeout),
        Cmd::ScreenText {
            file,
            font,
            kernel,
            expect,
            highlighted,
            plain,
        } => {
            // A tool for scripts: no timing breakdown on its stderr.
            return match screen_text(
                &file,
                &font,
                kernel.as_deref(),
                &expect,
                &highlighted,
                &plain,
            ) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("vireo-rig screen-text: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Cmd::Detect => {
            println!(
                "host KVM: {:?}; rig-backed tests run {:?}",
                kvm::detect(),
                kvm::mode()
            );
            Ok(0)
        }
    };
    eprint!("{}", vireo_rig::timing::report());
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            eprintln!("vireo-rig: error: {e}");
            ExitCode::from(125)
        }
    }
}

fn run(
    timeout: u64,
    share: Vec<PathBuf>,
    direct: bool,
    nested: bool,
    command: Vec<String>,
) -> vireo_rig::Result<i32> {
    let script = match command.as_slice() {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mode = if direct {
        Mode::Direct
    } else if nested {
        Mode::Nested
    } else {
        kvm::mode()
    };
    let timeout = Duration::from_secs(timeout);
    let out = match mode {
        Mode::Direct => vireo_rig::run_direct(&script, timeout)?,
        Mode::Nested => {
            let mut cfg = RigConfig::from_env()?;
            cfg.shares.extend(share);
            let mut rig = vireo_rig::Rig::boot(&cfg)?;
            match rig.run(&script, timeout) {
                // L1 itself failed (the rare TCG hang, a panic): one more try on a fresh L1.
                Err(
                    e @ (RigError::L1Unresponsive { .. }
                    | RigError::L1Panic { .. }
                    | RigError::L1Exited { .. }),
                ) => {
                    eprintln!("vireo-rig: {e}\nvireo-rig: retrying once on a fresh L1");
                    drop(rig);
                    vireo_rig::Rig::boot(&cfg)?.run(&script, timeout)?
                }
                other => other?,
            }
        }
    };
    Ok(out.status)
}

#[allow(clippy::too_many_arguments)]
fn l2(
    launcher: String,
    script: Option<PathBuf>,
    inline: Option<String>,
    name: String,
    expect: Vec<String>,
    timeout: u64,
    memory: u32,
    form: KernelForm,
) -> vireo_rig::Result<i32> {
    let text = match (script, inline) {
        (Some(p), _) => std::fs::read_to_string(&p).map_err(|e| vireo_rig::RigError::Io {
            what: "reading the scenario script",
            path: p,
            source: e,
        })?,
        (None, Some(t)) => t,
        (None, None) => "vireo_check uname uname -a\n".to_owned(),
    };
    let mut sc = Scenario::new(&name, &text)
        .timeout(Duration::from_secs(timeout))
        .memory_mib(memory)
        .kernel_form(form);
    for e in &expect {
        sc = sc.expect_pass(e);
    }
    let report = vireo_rig::run_scenario(&sc, &Launcher::parse(&launcher)?)?;
    for r in &report.results {
        println!(
            "{} {} {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.name,
            r.detail
        );
    }
    eprintln!("{}", report.timing_line());
    match report.check() {
        Ok(()) => {
            println!("scenario {}: passed", report.name);
            Ok(0)
        }
        Err(e) => {
            println!("scenario {}: FAILED: {e}", report.name);
            Ok(1)
        }
    }
}

fn fetch() -> vireo_rig::Result<i32> {
    let k = vireo_rig::debian::kernel()?;
    let b = vireo_rig::debian::busybox()?;
    let img = vireo_rig::GuestImage::stock()?;
    println!("kernel {} at {}", k.package, k.vmlinuz.display());
    println!("busybox at {}", b.display());
    println!("L2 base initramfs at {}", img.base_initrd.display());
    Ok(0)
}

fn fixtures(
    disk: bool,
    cd: bool,
    installer: bool,
    menu_timeout: Option<u32>,
) -> vireo_rig::Result<i32> {
    use vireo_rig::fixtures::{boot_iso, cd_media, debian_disk_for, DiskLayout, MenuTimeout};
    let iso = boot_iso(menu_timeout.map_or(MenuTimeout::WaitForKey, MenuTimeout::Seconds))?;
    println!(
        "boot ISO ({:?}) at {} (marker sha256 {})",
        iso.provenance,
        iso.path.display(),
        iso.marker_sha256
    );
    if disk {
        for layout in [DiskLayout::Bios, DiskLayout::Uefi] {
            let d = debian_disk_for(layout)?;
            println!(
                "Debian disk for {layout:?} ({:?}) at {}",
                d.provenance,
                d.qcow2.display()
            );
        }
    }
    if installer {
        let i = vireo_rig::fixtures::installer_iso()?;
        println!(
            "installer ISO ({:?}) at {} (installed marker sha256 {})",
            i.provenance,
            i.path.display(),
            i.marker_sha256
        );
    }
    if cd {
        let m = cd_media()?;
        println!(
            "El Torito ISO ({:?}) at {} (prints {})",
            m.provenance,
            m.eltorito.path.display(),
            m.eltorito.marker
        );
        for d in &m.data {
            println!(
                "data ISO {} at {} ({} sha256 {})",
                d.volume_id,
                d.path.display(),
                d.file,
                d.sha256
            );
        }
    }
    Ok(0)
}

/// Prints the screen's text; Ok(false) when a check fails (each failure said on stdout).
fn screen_text(
    file: &std::path::Path,
    font: &std::path::Path,
    kernel: Option<&std::path::Path>,
    expect: &[String],
    highlighted: &[String],
    plain: &[String],
) -> Result<bool, vireo_rig::screen_text::ScreenError> {
    use vireo_rig::screen_text::{read_screen, Font, Image};
    let mut font = Font::from_vgabios(font)?;
    if let Some(kernel) = kernel {
        font = font.with_linux_console(kernel)?;
    }
    let screen = read_screen(&Image::load(file)?, &font);
    println!("{}", screen.text());
    let mut ok = true;
    let mut check = |what: &str, want: Option<bool>, needle: &str| {
        let got = screen.is_highlighted(needle);
        let fine = match want {
            None => got.is_some(),
            Some(w) => got == Some(w),
        };
        if !fine {
            ok = false;
            let state = match got {
                None => "not on the screen",
                Some(true) => "highlighted",
                Some(false) => "not highlighted",
            };
            println!("screen-text: FAIL: {needle:?} should be {what}, is {state}");
        }
    };
    for n in expect {
        check("on the screen", None, n);
    }
    for n in highlighted {
        check("highlighted", Some(true), n);
    }
    for n in plain {
        check("on the screen, not highlighted", Some(false), n);
    }
    Ok(ok)
}

//! Shared by the vireoctl integration tests: an isolated XDG home per test, a way to run the real
//! `vireoctl` binary in it, and tiny hand-assembled guests for the local /dev/kvm.

#![allow(dead_code)]

pub mod rig_script;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// An isolated set of XDG directories; removed on drop.
pub struct Home {
    pub root: PathBuf,
}

pub fn vireoctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vireoctl"))
}

/// The vireo-vmm binary: `$VIREO_VMM`, else beside vireoctl (`cargo build --workspace --bins`).
pub fn vmm() -> PathBuf {
    if let Some(p) = std::env::var_os("VIREO_VMM") {
        return PathBuf::from(p);
    }
    let p = vireoctl().with_file_name("vireo-vmm");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p vireo-vmm)",
        p.display()
    );
    p
}

impl Home {
    pub fn new(tag: &str) -> Home {
        // Short paths: unix socket paths must stay under 108 bytes.
        let root = PathBuf::from(format!(
            "/tmp/vt-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&root).unwrap();
        Home { root }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(vireoctl());
        c.env("XDG_CONFIG_HOME", self.root.join("c"))
            .env("XDG_RUNTIME_DIR", self.root.join("r"))
            .env("XDG_DATA_HOME", self.root.join("d"))
            .env("XDG_CACHE_HOME", self.root.join("k"))
            .env("VIREO_SUPERVISOR", vireoctl())
            .env_remove("VISUAL")
            .env_remove("EDITOR");
        if let Some(p) = std::env::var_os("VIREO_VMM") {
            c.env("VIREO_VMM", p);
        }
        c
    }

    /// Runs vireoctl with `args`; returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cmd().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code, 0,
            "vireoctl {args:?} failed ({code}):\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    pub fn machines(&self) -> PathBuf {
        self.root.join("c/vireo/machines")
    }

    pub fn runtime(&self, name: &str) -> PathBuf {
        self.root.join("r/vireo").join(name)
    }

    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Polls `domstate --reason` until it prints `want` (e.g. "shut off (destroyed)").
    pub fn wait_state(&self, name: &str, want: &str, timeout: Duration) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            let (_, out, err) = self.run(&["domstate", "--reason", name]);
            last = format!("{}{}", out.trim(), err.trim());
            if out.trim() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name}: wanted state '{want}', last seen '{last}'");
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Stop whatever a failed test left running, then remove the files.
        if let Ok(rd) = std::fs::read_dir(self.root.join("r/vireo")) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = self
                        .cmd()
                        .args(["destroy", &e.file_name().to_string_lossy()])
                        .output();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A domain XML that boots `kernel` with the given devices and lifecycle actions.
pub fn domain_xml(name: &str, kernel: &Path, devices: &str, actions: (&str, &str, &str)) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='KiB'>16384</memory>\n  <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n    <kernel>{}</kernel>\n  </os>\n  <on_poweroff>{}</on_poweroff>\n  <on_reboot>{}</on_reboot>\n  <on_crash>{}</on_crash>\n  <devices>\n{devices}  </devices>\n</domain>\n",
        kernel.display(),
        actions.0,
        actions.1,
        actions.2
    )
}

/// Tiny guests: 32-bit protected-mode code in an ELF with a Xen PVH entry note, the format
/// vireo-vmm's loader takes besides bzImage.
pub mod guest {
    pub const LOAD_ADDR: u32 = 0x20_0000;

    pub fn pvh_elf(code: &[u8]) -> Vec<u8> {
        let note_off = 64u64 + 2 * 56;
        let mut note = Vec::new();
        for v in [4u32, 4, 18] {
            note.extend_from_slice(&v.to_le_bytes());
        }
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&LOAD_ADDR.to_le_bytes());
        let code_off = (note_off + note.len() as u64 + 15) & !15;
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&62u16.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&u64::from(LOAD_ADDR).to_le_bytes());
        f.extend_from_slice(&64u64.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        for v in [64u16, 56, 2, 64, 0, 0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        let mut ph = |ty: u32, flags: u32, off: u64, addr: u64, size: u64, align: u64| {
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            for v in [off, addr, addr, size, size, align] {
                f.extend_from_slice(&v.to_le_bytes());
            }
        };
        ph(1, 7, code_off, u64::from(LOAD_ADDR), code.len() as u64, 16);
        ph(4, 4, note_off, 0, note.len() as u64, 4);
        f.extend_from_slice(&note);
        f.resize(code_off as usize, 0);
        f.extend_from_slice(code);
        f
    }

    /// Writes `s` to COM1.
    pub fn print(s: &str) -> Vec<u8> {
        let mut v = vec![0x66, 0xba, 0xf8, 0x03]; // mov dx, 0x3f8
        for b in s.bytes() {
            v.extend([0xb0, b, 0xee]); // mov al, b; out dx, al
        }
        v
    }

    /// Echoes every byte received on COM1 back, forever (polls the LSR data-ready bit).
    pub fn echo_loop() -> Vec<u8> {
        vec![
            0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd
            0xec, // in al, dx
            0xa8, 0x01, // test al, 1
            0x74, 0xf7, // jz back to the start (-9)
            0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
            0xec, // in al, dx
            0xee, // out dx, al
            0xeb, 0xef, // jmp to start (-17)
        ]
    }

    /// ACPI S5 (the VMM's PM1a control register at 0x604), then hang.
    pub fn poweroff() -> Vec<u8> {
        vec![
            0x66, 0xba, 0x04, 0x06, 0x66, 0xb8, 0x00, 0x34, 0x66, 0xef, 0xfa, 0xf4, 0xeb, 0xfd,
        ]
    }

    /// Pulses the i8042 reset line (reboot).
    pub fn reset() -> Vec<u8> {
        vec![0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfd]
    }

    /// Loads an empty IDT and executes ud2: triple fault (a crash).
    pub fn triple_fault(code_len_before: usize) -> Vec<u8> {
        // lidt [abs32] ; ud2 ; then 6 zero bytes holding the IDT descriptor.
        let desc = LOAD_ADDR + code_len_before as u32 + 9;
        let mut v = vec![0x0f, 0x01, 0x1d];
        v.extend_from_slice(&desc.to_le_bytes());
        v.extend([0x0f, 0x0b]);
        v.extend([0u8; 6]);
        v
    }

    /// Spins forever (keeps the VM running).
    pub fn spin() -> Vec<u8> {
        vec![0xfa, 0xf4, 0xeb, 0xfd]
    }
}

//! Tiny hand-assembled guests and a harness that runs them under the real `vireo-vmm` binary
//! on the local /dev/kvm.
//!
//! Guests are 32-bit protected-mode code (paging off, flat segments) wrapped in a minimal ELF
//! with a PVH note, so they also exercise the ELF/PVH loader.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the guest code is loaded and entered.
pub const LOAD_ADDR: u64 = 0x20_0000;

/// Wraps 32-bit code in an ELF64 with a PT_LOAD at LOAD_ADDR and a Xen PVH entry note.
pub fn pvh_elf(code: &[u8]) -> Vec<u8> {
    let ehdr_size = 64u64;
    let phdr_size = 56u64;
    let note_off = ehdr_size + 2 * phdr_size;
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes()); // namesz
    note.extend_from_slice(&4u32.to_le_bytes()); // descsz
    note.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(LOAD_ADDR as u32).to_le_bytes());
    let code_off = (note_off + note.len() as u64 + 15) & !15;

    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&LOAD_ADDR.to_le_bytes()); // e_entry
    f.extend_from_slice(&ehdr_size.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&(ehdr_size as u16).to_le_bytes());
    f.extend_from_slice(&(phdr_size as u16).to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes()); // phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // shentsize
    f.extend_from_slice(&0u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    let phdr =
        |f: &mut Vec<u8>, ty: u32, flags: u32, off: u64, addr: u64, size: u64, align: u64| {
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&addr.to_le_bytes());
            f.extend_from_slice(&addr.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&align.to_le_bytes());
        };
    phdr(&mut f, 1, 7, code_off, LOAD_ADDR, code.len() as u64, 16);
    phdr(&mut f, 4, 4, note_off, 0, note.len() as u64, 4);
    f.extend_from_slice(&note);
    f.resize(code_off as usize, 0);
    f.extend_from_slice(code);
    f
}

/// Small x86 assembler helpers (32-bit mode).
pub mod asm {
    /// mov dx, imm16
    pub fn mov_dx(v: u16) -> Vec<u8> {
        let b = v.to_le_bytes();
        vec![0x66, 0xba, b[0], b[1]]
    }
    /// mov al, imm8
    pub fn mov_al(v: u8) -> Vec<u8> {
        vec![0xb0, v]
    }
    /// out dx, al
    pub const OUT_DX_AL: [u8; 1] = [0xee];
    /// Writes `s` to COM1 (no FIFO wait: our UART never backs up).
    pub fn print(s: &str) -> Vec<u8> {
        let mut v = mov_dx(0x3f8);
        for b in s.bytes() {
            v.extend(mov_al(b));
            v.extend(OUT_DX_AL);
        }
        v
    }
    /// ACPI S5: PM1a_CNT <- SLP_TYP 5 | SLP_EN, then hlt forever.
    pub fn poweroff() -> Vec<u8> {
        let mut v = mov_dx(0x604);
        v.extend([0x66, 0xb8, 0x00, 0x34]); // mov ax, 0x3400
        v.extend([0x66, 0xef]); // out dx, ax
        v.extend(hang());
        v
    }
    /// cli; hlt; jmp back
    pub fn hang() -> Vec<u8> {
        vec![0xfa, 0xf4, 0xeb, 0xfd]
    }
    /// mov dword [addr], value (absolute address): how the tests program MMIO registers and
    /// lay out rings in guest RAM.
    pub fn store(addr: u32, value: u32) -> Vec<u8> {
        let mut v = vec![0xc7, 0x05];
        v.extend(addr.to_le_bytes());
        v.extend(value.to_le_bytes());
        v
    }
    /// Waits for a byte on COM1 (polling the line status register) and reads it: how a guest
    /// waits until the test is ready for what it does next.
    pub fn wait_serial_byte() -> Vec<u8> {
        // wait: mov dx, 0x3fd; in al, dx; test al, 1; jz wait; mov dx, 0x3f8; in al, dx
        vec![
            0x66, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xf7, 0x66, 0xba, 0xf8, 0x03, 0xec,
        ]
    }
    /// jmp $ (spins: keeps the vCPU busy)
    pub fn spin() -> Vec<u8> {
        vec![0xeb, 0xfe]
    }
}

/// A running vireo-vmm with its files in a temp dir.
pub struct Vmm {
    pub child: Child,
    pub dir: PathBuf,
    pub control: PathBuf,
    pub serial_log: PathBuf,
    pub started: Instant,
}

pub fn tempdir(tag: &str) -> PathBuf {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = base.join(format!("vireo-vmm-test-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Vmm {
    /// Starts the binary with `code` as the kernel; `tweak` may edit the JSON config.
    pub fn start(tag: &str, code: &[u8], tweak: impl FnOnce(&mut Value)) -> Vmm {
        let dir = tempdir(tag);
        let kernel = dir.join("kernel.elf");
        std::fs::write(&kernel, pvh_elf(code)).unwrap();
        let serial_log = dir.join("serial.log");
        let mut cfg = json!({
            "version": 1, "name": tag, "memory_mib": 16, "vcpus": 1,
            "kernel": kernel, "cmdline": "",
            "serial": {"log": serial_log, "socket": dir.join("console.sock")},
            "input": {"keyboard": false, "tablet": false},
        });
        tweak(&mut cfg);
        Self::start_with_config(dir, cfg, serial_log)
    }

    pub fn start_with_config(dir: PathBuf, cfg: Value, serial_log: PathBuf) -> Vmm {
        Self::start_with_env(dir, cfg, serial_log, &[])
    }

    /// [`Vmm::start_with_config`] with `env` added to the process environment.
    pub fn start_with_env(
        dir: PathBuf,
        cfg: Value,
        serial_log: PathBuf,
        env: &[(&str, &str)],
    ) -> Vmm {
        let cfg_path = dir.join("vm.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let control = dir.join("control.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vireo-vmm"))
            .arg("--config")
            .arg(&cfg_path)
            .arg("--control")
            .arg(&control)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Vmm {
            child,
            dir,
            control,
            serial_log,
            started: Instant::now(),
        }
    }

    /// Waits for the process to end (panics after `timeout`, killing it).
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return (st, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let out = self.child.wait_with_output_lossy();
                panic!("vireo-vmm did not exit within {timeout:?}; stderr:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn serial(&self) -> Vec<u8> {
        std::fs::read(&self.serial_log).unwrap_or_default()
    }

    /// Waits until the serial log contains `needle`.
    pub fn wait_serial(&self, needle: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.serial().windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.control, Duration::from_secs(10))
    }
}

trait Lossy {
    fn wait_with_output_lossy(&mut self) -> String;
}
impl Lossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        let _ = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A control-protocol client.
pub struct Client {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
    pub greeting: Value,
    /// Events seen while waiting for replies.
    pub events: Vec<Value>,
}

impl Client {
    pub fn connect(path: &Path, timeout: Duration) -> Client {
        let deadline = Instant::now() + timeout;
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("cannot connect to {}: {e}", path.display()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let greeting: Value = serde_json::from_str(&line).unwrap();
        Client {
            reader,
            writer: s,
            greeting,
            events: Vec::new(),
        }
    }

    pub fn read_msg(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    }

    /// Sends a command and returns its reply (events seen meanwhile go to `events`).
    pub fn execute(&mut self, cmd: &str, args: Value) -> Value {
        let req = json!({"execute": cmd, "arguments": args});
        writeln!(self.writer, "{req}").unwrap();
        loop {
            let msg = self
                .read_msg()
                .unwrap_or_else(|| panic!("connection closed waiting for `{cmd}`"));
            if msg.get("event").is_some() {
                self.events.push(msg);
            } else {
                return msg;
            }
        }
    }

    /// Waits for an event called `name` (already seen ones count).
    pub fn wait_event(&mut self, name: &str) -> Option<Value> {
        if let Some(e) = self.events.iter().find(|e| e["event"] == name) {
            return Some(e.clone());
        }
        while let Some(msg) = self.read_msg() {
            if msg["event"] == name {
                return Some(msg);
            }
            self.events.push(msg);
        }
        None
    }
}

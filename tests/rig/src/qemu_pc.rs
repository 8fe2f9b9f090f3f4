//! QEMU `-M pc` with Debian's SeaBIOS (`bios-256k.bin`) and a ramfb display as a reference
//! machine for the firmware fixtures and the screen reader: disks on virtio-blk over PCI (the
//! path SeaBIOS and the guests take on vireo-vmm is virtio over mmio; both are virtio-blk), the
//! serial port in a file, the human monitor on a unix socket for `screendump` and `sendkey`.
//! Runs under TCG where the host has no hardware KVM (firmware does not run on kvm_pvm).

use crate::error::{Result, RigError};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `seabios` package puts the BIOS and the ramfb VGA ROM.
pub const SEABIOS: &str = "/usr/share/seabios/bios-256k.bin";

/// One disk of the machine.
#[derive(Debug, Clone)]
pub struct Disk {
    pub path: PathBuf,
    /// `raw` or `qcow2`: always said, never probed.
    pub format: &'static str,
    pub readonly: bool,
}

/// A running QEMU; killed on drop.
pub struct QemuPc {
    child: Child,
    dir: PathBuf,
    pub serial: PathBuf,
    monitor: PathBuf,
    pub started: Instant,
}

impl QemuPc {
    /// Starts QEMU with `disks` (in boot order) in a fresh `dir`; `kvm` picks `-enable-kvm`
    /// over TCG; `extra` arguments go last (`-smbios type=1,uuid=..`).
    pub fn start(
        dir: &Path,
        disks: &[Disk],
        memory_mib: u32,
        kvm: bool,
        extra: &[String],
    ) -> Result<QemuPc> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| RigError::io("creating QEMU dir", dir, e))?;
        let serial = dir.join("serial.log");
        let monitor = dir.join("mon.sock");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-M",
            "pc",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-bios", SEABIOS, "-device", "ramfb", "-vga", "none"])
        .args(["-m", &memory_mib.to_string()])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()));
        if kvm {
            cmd.args(["-enable-kvm", "-cpu", "host"]);
        } else {
            cmd.args(["-accel", "tcg"]);
        }
        for (i, d) in disks.iter().enumerate() {
            cmd.arg("-drive").arg(format!(
                "file={},if=none,id=d{i},format={}{}",
                d.path.display(),
                d.format,
                if d.readonly { ",readonly=on" } else { "" }
            ));
            cmd.arg("-device")
                .arg(format!("virtio-blk-pci,drive=d{i},bootindex={i}"));
        }
        cmd.args(extra);
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("qemu.err"))
                    .map_err(|e| RigError::io("creating QEMU log", dir, e))?,
            )
            .spawn()
            .map_err(|source| RigError::MissingTool {
                program: "qemu-system-x86_64".into(),
                package: "qemu-system-x86",
                why: "the reference firmware machine",
                source,
            })?;
        Ok(QemuPc {
            child,
            dir: dir.to_owned(),
            serial,
            monitor,
            started,
        })
    }

    /// The serial output so far (lossy UTF-8).
    pub fn serial_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Waits until the serial output holds `pattern`; returns the time since the start.
    pub fn wait_serial(&mut self, pattern: &str, timeout: Duration) -> Result<Duration> {
        let end = Instant::now() + timeout;
        loop {
            if self.serial_text().contains(pattern) {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("QEMU exited ({status}) before {pattern:?}")));
            }
            if Instant::now() > end {
                return Err(self.failure(&format!("no {pattern:?} on serial within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, why: &str) -> RigError {
        let text = self.serial_text();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let err = std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default();
        RigError::Broken(format!(
            "{why}; QEMU stderr: {}\nlast serial lines:\n{}",
            err.trim(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }

    /// Sends one human-monitor command and returns what the monitor printed before its next
    /// prompt.
    pub fn monitor(&self, command: &str) -> Result<String> {
        let io = |e| RigError::io("talking to the QEMU monitor", &self.monitor, e);
        let mut s = UnixStream::connect(&self.monitor).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let read_prompt = |s: &mut UnixStream| -> std::io::Result<String> {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"(qemu) ") {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            Ok(String::from_utf8_lossy(&got).into_owned())
        };
        read_prompt(&mut s).map_err(io)?;
        s.write_all(format!("{command}\n").as_bytes()).map_err(io)?;
        let out = read_prompt(&mut s).map_err(io)?;
        Ok(out.trim_end_matches("(qemu) ").to_owned())
    }

    /// Writes the screen to `path` (PPM, QEMU's default format).
    pub fn screendump(&self, path: &Path) -> Result<()> {
        let out = self.monitor(&format!("screendump {}", path.display()))?;
        if path.is_file() {
            Ok(())
        } else {
            Err(RigError::Broken(format!("screendump wrote nothing: {out}")))
        }
    }

    /// Presses and releases one key (QEMU's key names: `down`, `ret`, `esc`, `a`, ...).
    pub fn sendkey(&self, key: &str) -> Result<()> {
        self.monitor(&format!("sendkey {key}")).map(|_| ())
    }
}

impl Drop for QemuPc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

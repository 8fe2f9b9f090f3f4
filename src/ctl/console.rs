//! `vireoctl console`: attach the terminal to a machine's serial console socket.
//!
//! The terminal is put in raw mode (so Ctrl+C, arrows, ... reach the guest) and restored on
//! exit; Ctrl+] (0x1d) leaves, as in virsh. Without a terminal on stdin (scripts, tests) the
//! streams are simply copied and the command ends when stdin ends.

use crate::ctl_exit::{fail, CtlResult, EXIT_ERROR, EXIT_OK};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use vireo_driver::Connection;

const ESCAPE: u8 = 0x1d;

struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        // SAFETY: termios calls on fd 0 with a properly sized, initialised struct.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enter`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

pub fn attach(conn: &Connection, domain: &str) -> CtlResult {
    let sock = conn.console_socket(domain).map_err(fail)?;
    let stream =
        UnixStream::connect(&sock).map_err(|e| (EXIT_ERROR, format!("{}: {e}", sock.display())))?;
    let tty = unsafe { libc::isatty(0) } == 1;
    if tty {
        eprint!("Connected to domain '{domain}'\r\nEscape character is ^] (Ctrl + ])\r\n");
    }
    let raw = RawMode::enter();
    let mut from_guest = stream
        .try_clone()
        .map_err(|e| (EXIT_ERROR, e.to_string()))?;
    let out = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        loop {
            match from_guest.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stdout.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let _ = stdout.flush();
                }
            }
        }
    });
    let mut to_guest = stream;
    let mut stdin = std::io::stdin();
    let mut buf = [0u8; 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if tty {
            if let Some(i) = chunk.iter().position(|&b| b == ESCAPE) {
                let _ = to_guest.write_all(&chunk[..i]);
                break;
            }
        }
        if to_guest.write_all(chunk).is_err() {
            break;
        }
    }
    if !tty {
        // Let the guest's answer to the last input arrive before closing.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let _ = to_guest.shutdown(std::net::Shutdown::Both);
    let _ = out.join();
    drop(raw);
    if tty {
        eprintln!();
    }
    Ok(EXIT_OK)
}

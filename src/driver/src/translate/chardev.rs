//! `<serial>` and `<console>`: COM1 and where its output goes.

use super::{dev_path, refuse, TranslateError};
use crate::rundir::RunDir;
use std::path::{Path, PathBuf};
use vireo_domain::{ChardevType, Devices, Element};
use vireo_vmm_api::config::SerialConfig;

/// Points `serial` (by default the run directory's log) where the document's COM1 says.
pub(super) fn com1(
    devices: &Devices<&Element>,
    run: &RunDir,
    serial: &mut SerialConfig,
) -> Result<(), TranslateError> {
    // Serial and console: both describe COM1 (libvirt mirrors the first serial as a console).
    let serials = devices.serials();
    let consoles = devices.consoles();
    let mut com1: Option<(String, &vireo_domain::Chardev<&Element>)> = None;
    for (i, s) in serials.iter().enumerate() {
        let path = dev_path("serial", i);
        if let Some(p) = s.element().child("target").and_then(|t| t.attr("port")) {
            if p.trim() != "0" {
                return refuse(
                    format!("{path}/target@port='{p}'"),
                    "only one serial port (COM1, port 0) is supported",
                );
            }
        }
        if com1.is_some() {
            return refuse(path, "only one serial port is supported");
        }
        com1 = Some((path, s));
    }
    for (i, c) in consoles.iter().enumerate() {
        let path = dev_path("console", i);
        if let Some(t) = c.target_type() {
            if t != "serial" {
                return refuse(
                    format!("{path}/target@type='{t}'"),
                    "not supported (only the serial console)",
                );
            }
        }
        match &com1 {
            None => com1 = Some((path, c)),
            Some((_, s)) if s.chardev_type() != c.chardev_type() => {
                return refuse(
                    format!("{path}@type"),
                    "the console must mirror the serial port",
                )
            }
            Some(_) => {}
        }
    }
    if let Some((path, s)) = com1 {
        match s.chardev_type() {
            Some(ChardevType::Pty) => serial.socket = Some(run.serial()),
            Some(ChardevType::File) => match s.source_path() {
                Some(p) if Path::new(&p).is_absolute() => serial.log = Some(PathBuf::from(p)),
                _ => {
                    return refuse(
                        format!("{path}/source@path"),
                        "a file serial needs an absolute path",
                    )
                }
            },
            Some(ChardevType::Unix) => {
                if s.mode().is_some_and(|m| m != "bind") {
                    return refuse(
                        format!("{path}/source@mode"),
                        "only mode='bind' is supported",
                    );
                }
                match s.source_path() {
                    Some(p) if Path::new(&p).is_absolute() => {
                        serial.socket = Some(PathBuf::from(p))
                    }
                    _ => {
                        return refuse(
                            format!("{path}/source@path"),
                            "a unix serial needs an absolute path",
                        )
                    }
                }
            }
            Some(t) => {
                return refuse(
                    format!("{path}@type='{t}'"),
                    "not supported by the Vireo backend (use pty, file or unix)",
                )
            }
            None => return refuse(path, "missing attribute type"),
        }
    }
    Ok(())
}

//! What makes the clone a machine of its own besides its disks: name, UUID (also in
//! `<sysinfo>`), no title, new MACs, automatic VNC ports, and socket and serial-file paths of
//! its own.

use super::naming::derived_path;
use super::{io, CloneError, CloneRequest};
use crate::Connection;
use std::path::Path;
use vireo_domain::{ChardevType, Domain, Mac};

/// A path of the clone's own for a socket or log file of the original: the same name under the
/// clone's runtime directory when it was under the original's, else [`derived_path`].
fn own_path(conn: &Connection, path: &str, original: &str, new: &str) -> String {
    let p = Path::new(path);
    let run = conn.paths().machine_runtime(original);
    match p.strip_prefix(&run) {
        Ok(rest) if !rest.as_os_str().is_empty() => conn.paths().machine_runtime(new).join(rest),
        _ => derived_path(p, original, new),
    }
    .display()
    .to_string()
}

/// The clone's MACs: the request's in order (`RANDOM` for a new one), new ones for the rest.
fn next_mac(req: &CloneRequest, i: usize) -> Result<String, CloneError> {
    match req.macs.get(i).map(|m| m.trim()) {
        Some(m) if !m.eq_ignore_ascii_case("random") => match Mac::parse(m) {
            Some(mac) if !mac.is_multicast() => Ok(mac.to_string()),
            _ => Err(CloneError::BadMac(m.to_owned())),
        },
        _ => Ok(Mac::new_qemu()
            .map_err(io(Path::new("/dev/urandom")))?
            .to_string()),
    }
}

/// Gives the document its new identity: name, UUID (also in `<sysinfo>`), no title.
pub(super) fn set_identity(dom: &mut Domain, name: &str, uuid: &str) {
    dom.set_name(name);
    dom.set_uuid(uuid);
    dom.set_title(None);
    for sysinfo in dom.document_mut().root_mut().children_named_mut("sysinfo") {
        for system in sysinfo.children_named_mut("system") {
            for entry in system.children_named_mut("entry") {
                if entry.attr("name").as_deref() == Some("uuid") {
                    entry.set_text(uuid);
                }
            }
        }
    }
}

/// New MACs, no host-side interface names, automatic VNC ports and paths of its own for
/// sockets and serial files.
pub(super) fn set_devices(
    conn: &Connection,
    req: &CloneRequest,
    dom: &mut Domain,
    names: (&str, &str),
    notes: &mut Vec<String>,
) -> Result<(), CloneError> {
    let Some(devices) = dom.devices() else {
        return Ok(());
    };
    let counts = (
        devices.count("interface"),
        devices.count("graphics"),
        devices.count("serial"),
        devices.count("console"),
    );
    let mut devices = dom.devices_mut();
    for i in 0..counts.0 {
        let mac = next_mac(req, i)?;
        if let Some(mut iface) = devices.interface_mut(i) {
            iface.set_mac(Some(&mac));
            iface.element_mut().remove_children_named("target");
        }
    }
    for i in 0..counts.1 {
        let Some(mut g) = devices.graphics_mut(i) else {
            continue;
        };
        if let Some(port) = g.port().filter(|&p| p > 0) {
            if g.autoport() != Some(true) {
                g.set_port(Some(-1), Some(true));
                notes.push(format!("VNC port {port} made automatic (autoport)"));
            }
        }
        if let Some(socket) = g.socket() {
            let own = own_path(conn, &socket, names.0, names.1);
            let had_attr = g.element().attr("socket").is_some();
            g.set_socket(&own);
            if had_attr {
                g.element_mut().set_attr("socket", &own);
            }
        }
    }
    for serial in [true, false] {
        let n = if serial { counts.2 } else { counts.3 };
        for i in 0..n {
            let c = if serial {
                devices.serial_mut(i)
            } else {
                devices.console_mut(i)
            };
            let Some(mut c) = c else { continue };
            if !matches!(
                c.chardev_type(),
                Some(ChardevType::File | ChardevType::Unix)
            ) {
                continue;
            }
            if let Some(p) = c.source_path() {
                c.set_source_path(Some(&own_path(conn, &p, names.0, names.1)));
            }
        }
    }
    Ok(())
}

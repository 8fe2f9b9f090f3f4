//! `<interface>`: user-mode networking with port forwards.

use super::{attr_or_empty, dev_path, not_supported, refuse, TranslateError};
use vireo_domain::{Devices, Domain, Element, Interface, InterfaceType, PortProto, Uuid};
use vireo_vmm_api::config::{MacAddr, NetBackend, NetConfig, PortForward, Protocol};

/// Every interface, in document order. `name` seeds the MAC of an interface without one when
/// the document has no UUID either.
pub(super) fn interfaces(
    dom: &Domain,
    devices: &Devices<&Element>,
    name: &str,
) -> Result<Vec<NetConfig>, TranslateError> {
    let mut out = Vec::new();
    let mac_seed = dom
        .uuid()
        .and_then(|u| Uuid::parse(&u))
        .map(|u| u.to_string())
        .unwrap_or_else(|| name.to_owned());
    for (i, iface) in devices.interfaces().iter().enumerate() {
        out.push(interface(&dev_path("interface", i), iface, &mac_seed)?);
    }
    Ok(out)
}

/// `mac_seed` (the canonical UUID, else the name) gives an interface without a MAC a stable one.
fn interface(
    path: &str,
    i: &Interface<&Element>,
    mac_seed: &str,
) -> Result<NetConfig, TranslateError> {
    match i.iface_type() {
        Some(InterfaceType::User) => {}
        _ => {
            return refuse(
                format!("{path}@type='{}'", attr_or_empty(i.element(), "type")),
                "not supported by the Vireo backend (use type='user')",
            )
        }
    }
    if let Some(m) = i.model() {
        if m != "virtio" {
            return refuse(
                format!("{path}/model@type='{m}'"),
                "not supported (use virtio)",
            );
        }
    }
    let mac = match i.mac() {
        Some(a) => a.parse::<MacAddr>().map_err(|e| TranslateError {
            path: format!("{path}/mac@address"),
            message: e,
        })?,
        None => {
            // Stable across starts for an old definition that has no MAC: derived from the UUID.
            let h = mac_seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            MacAddr([0x52, 0x54, 0x00, (h >> 16) as u8, (h >> 8) as u8, h as u8])
        }
    };
    if mac.0[0] & 1 != 0 {
        return refuse(
            format!("{path}/mac@address"),
            format!("{mac} is a multicast address"),
        );
    }
    let mut port_forwards = Vec::new();
    for (j, pf) in i.port_forwards().iter().enumerate() {
        let pfp = format!("{path}/portForward[{}]", j + 1);
        let protocol = match &pf.proto {
            PortProto::Tcp => Protocol::Tcp,
            PortProto::Udp => Protocol::Udp,
            PortProto::Other(p) => return refuse(format!("{pfp}@proto='{p}'"), "use tcp or udp"),
        };
        if pf.dev.is_some() {
            return not_supported(format!("{pfp}@dev"));
        }
        let host_address = match &pf.address {
            None => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            Some(a) => a.parse().map_err(|_| TranslateError {
                path: format!("{pfp}@address"),
                message: format!("'{a}' is not an IP address"),
            })?,
        };
        for (k, r) in pf.ranges.iter().enumerate() {
            let rp = format!("{pfp}/range[{}]", k + 1);
            if r.exclude {
                return not_supported(format!("{rp}@exclude"));
            }
            let start = r.start;
            let end = r.end.unwrap_or(start);
            let to = r.to.unwrap_or(start);
            if end < start || end - start > 256 {
                return refuse(
                    format!("{rp}@end"),
                    "must be >= start and span at most 256 ports",
                );
            }
            for off in 0..=(end - start) {
                let guest_port = to.checked_add(off).ok_or_else(|| TranslateError {
                    path: format!("{rp}@to"),
                    message: "range goes past 65535".into(),
                })?;
                port_forwards.push(PortForward {
                    protocol,
                    host_address,
                    host_port: start + off,
                    guest_port,
                });
            }
        }
    }
    for c in i.element().elements() {
        match c.name() {
            "mac" | "model" | "portForward" | "alias" | "address" | "target" => {}
            "backend" => {
                if let Some(t) = i.backend() {
                    if t != "passt" && t != "default" {
                        return refuse(format!("{path}/backend@type='{t}'"), "not supported");
                    }
                }
            }
            "boot" => {
                return refuse(
                    format!("{path}/boot"),
                    "network boot is not supported yet (boot from a disk or CD-ROM)",
                )
            }
            other => return not_supported(format!("{path}/{other}")),
        }
    }
    Ok(NetConfig {
        mac,
        backend: NetBackend::UserNet { port_forwards },
    })
}

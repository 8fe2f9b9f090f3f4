//! `<graphics>` and `<video>`: the VNC server and the display device behind it.
//!
//! The display device depends on the machine. Vireo's own machine has a linear framebuffer
//! whatever `video/model@type` names (vga, virtio, bochs, cirrus, qxl, ramfb), so definitions
//! written for any of them keep working. The pc machine has QEMU's standard VGA (`vga`, also
//! for a video without a model and for graphics without a video, libvirt's default on pc) or
//! the plain linear framebuffer (`ramfb`); the models it does not have are refused, since a
//! guest written for them would look for a device that is not there.

use super::{attr_or_empty, dev_path, not_supported, refuse, TranslateError};
use crate::rundir::RunDir;
use std::path::{Path, PathBuf};
use vireo_domain::{Devices, Element, GraphicsType, VideoModel};
use vireo_vmm_api::config::{DisplayConfig, DisplayModel, Machine, VncConfig};
use vireo_vmm_api::limits;

/// The display, if the document asks for one, and the VNC TCP port chosen for it.
pub(super) struct Display {
    pub display: Option<DisplayConfig>,
    pub vnc_port: Option<u16>,
}

/// `machine`: the machine the display is on (it decides the display device, see the module
/// docs).
pub(super) fn display(
    devices: &Devices<&Element>,
    machine: Machine,
    run: &RunDir,
    pick_vnc_port: &mut dyn FnMut() -> Option<u16>,
    notes: &mut Vec<String>,
) -> Result<Display, TranslateError> {
    let mut vnc_port = None;
    let mut display = None;
    let mut graphics_seen = false;
    let mut vnc = VncConfig::default();
    for (i, g) in devices.graphics().iter().enumerate() {
        let path = dev_path("graphics", i);
        if graphics_seen {
            return refuse(path, "only one graphics device is supported");
        }
        graphics_seen = true;
        match g.graphics_type() {
            Some(GraphicsType::Vnc) => {}
            _ => {
                return refuse(
                    format!("{path}@type='{}'", attr_or_empty(g.element(), "type")),
                    "not supported by the Vireo backend (use type='vnc')",
                )
            }
        }
        vnc.unix_socket = Some(run.vnc());
        let ge = g.element();
        let listen = ge.child("listen");
        let listen_type = listen.and_then(|l| l.attr("type"));
        let listen_none = listen_type.as_deref() == Some("none");
        if let Some(s) = g.socket() {
            if !Path::new(&s).is_absolute() {
                return refuse(
                    format!("{path}@socket"),
                    format!("{s}: must be an absolute path"),
                );
            }
            vnc.unix_socket = Some(PathBuf::from(s));
        } else if !listen_none && listen_type.as_deref() != Some("socket") {
            for addr in [ge.attr("listen"), listen.and_then(|l| l.attr("address"))]
                .into_iter()
                .flatten()
            {
                let loopback = addr
                    .parse::<std::net::IpAddr>()
                    .map(|a| a.is_loopback())
                    .unwrap_or(addr == "localhost");
                if !loopback {
                    return refuse(
                        format!("{path}@listen='{addr}'"),
                        "VNC listens on loopback only (use 127.0.0.1)",
                    );
                }
            }
            if let Some(t) = &listen_type {
                if t != "address" {
                    return refuse(
                        format!("{path}/listen@type='{t}'"),
                        "not supported (use address or socket)",
                    );
                }
            }
            // Validation refused a port that is not a number, so `None` is "no port".
            let port = g.port();
            let auto = g.autoport() == Some(true) || port.is_none() || port == Some(-1);
            let chosen = if auto {
                match pick_vnc_port() {
                    Some(p) => {
                        notes.push(format!("VNC autoport: 127.0.0.1:{p}"));
                        p
                    }
                    None => {
                        return refuse(format!("{path}@autoport"), "no free TCP port in 5900..6000")
                    }
                }
            } else {
                match port.and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0) {
                    Some(p) => p,
                    None => return refuse(format!("{path}@port"), "must be 1..65535 or -1"),
                }
            };
            vnc.tcp_port = Some(chosen);
            vnc_port = Some(chosen);
        }
        if let Some(pw) = g.passwd() {
            vnc.password = Some(pw);
        }
        if vnc.tcp_port.is_some() && vnc.password.as_deref().is_none_or(str::is_empty) {
            return refuse(
                path,
                "a VNC TCP listener needs a password (add passwd='...', or use <listen type='none'/> for local clients only)",
            );
        }
        for c in ge.elements() {
            if c.name() != "listen" {
                return not_supported(format!("{path}/{}", c.name()));
            }
        }
    }
    let mut display_size: Option<(u32, u32)> = None;
    let mut video_none = false;
    // libvirt's default on pc (no video, or one without a model) is the VGA.
    let mut model = match machine {
        Machine::Microvm => DisplayModel::Linear,
        Machine::Pc => DisplayModel::Vga,
    };
    let videos = devices.videos();
    for (i, v) in videos.iter().enumerate() {
        let path = dev_path("video", i);
        if i > 0 {
            return refuse(path, "only one video device is supported");
        }
        match (machine, v.model()) {
            (_, Some(VideoModel::None)) => video_none = true,
            (
                Machine::Microvm,
                Some(
                    VideoModel::Vga
                    | VideoModel::Virtio
                    | VideoModel::Bochs
                    | VideoModel::Cirrus
                    | VideoModel::Qxl
                    | VideoModel::Ramfb,
                )
                | None,
            ) => {}
            (Machine::Pc, Some(VideoModel::Vga) | None) => model = DisplayModel::Vga,
            (Machine::Pc, Some(VideoModel::Ramfb)) => model = DisplayModel::Linear,
            (Machine::Pc, Some(t)) => {
                return refuse(
                    format!("{path}/model@type='{t}'"),
                    "not supported on the pc machine, which offers 'vga' and 'ramfb' (use \
                     type='vga')",
                )
            }
            (Machine::Microvm, Some(t)) => {
                return refuse(
                    format!("{path}/model@type='{t}'"),
                    "not supported (the guest gets a linear framebuffer)",
                )
            }
        }
        let heads = v
            .element()
            .child("model")
            .and_then(|m| m.attr("heads"))
            .map(|h| h.trim().parse::<u32>());
        if let Some(h) = heads {
            if h != Ok(1) {
                return refuse(
                    format!("{path}/model@heads"),
                    "the display has one head (heads='1')",
                );
            }
        }
        if let Some(r) = v
            .element()
            .child("model")
            .and_then(|m| m.child("resolution"))
        {
            let side = |a: &str| r.attr(a).and_then(|x| x.trim().parse::<u32>().ok());
            match (side("x"), side("y")) {
                (Some(x), Some(y))
                    if (1..=limits::MAX_DISPLAY_SIDE).contains(&x)
                        && (1..=limits::MAX_DISPLAY_SIDE).contains(&y) =>
                {
                    display_size = Some((x, y))
                }
                _ => {
                    return refuse(
                        format!("{path}/model/resolution"),
                        format!("x and y must be 1..{}", limits::MAX_DISPLAY_SIDE),
                    )
                }
            }
        }
    }
    if let (DisplayModel::Vga, Some((x, y))) = (model, display_size) {
        if x > limits::VGA_MAX_WIDTH || y > limits::VGA_MAX_HEIGHT {
            return refuse(
                format!("{}/model/resolution", dev_path("video", 0)),
                format!(
                    "{x}x{y} is larger than the VGA's largest mode, {}x{}",
                    limits::VGA_MAX_WIDTH,
                    limits::VGA_MAX_HEIGHT
                ),
            );
        }
    }
    if video_none && graphics_seen {
        return refuse(
            "devices/video[1]/model@type='none'",
            "a graphics device needs a video device",
        );
    }
    if graphics_seen || (!video_none && !videos.is_empty()) {
        let mut d = DisplayConfig {
            model,
            vnc,
            ..DisplayConfig::default()
        };
        if let Some((w, h)) = display_size {
            d.width = w;
            d.height = h;
        }
        display = Some(d);
    }
    Ok(Display { display, vnc_port })
}

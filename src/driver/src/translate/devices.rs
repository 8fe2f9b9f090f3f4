//! The `<devices>` list as a whole (which kinds the backend has, controllers, memballoon) and
//! the small devices: input and rng.

use super::{attr_or_empty, dev_path, machine, not_supported, refuse, TranslateError};
use vireo_domain::{Devices, Element, InputBus, InputType, RngBackend};
use vireo_vmm_api::config::{Machine, VmConfig};

/// Refuses a device kind the backend does not have, and controllers and balloons that would
/// be devices.
pub(super) fn kinds(devices: &Devices<&Element>) -> Result<(), TranslateError> {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for el in devices.element().elements() {
        let idx = counts.entry(el.name()).or_insert(0);
        *idx += 1;
        let path = format!("devices/{}[{}]", el.name(), idx);
        match el.name() {
            "emulator" | "disk" | "interface" | "graphics" | "video" | "serial" | "console"
            | "input" | "rng" => {}
            "controller" => {
                let ok = matches!(
                    (el.attr("type").as_deref(), el.attr("model").as_deref()),
                    (Some("pci"), Some("pci-root") | Some("pcie-root"))
                        | (Some("sata" | "ide" | "scsi"), _)
                        | (Some("usb"), Some("none"))
                );
                if !ok {
                    return refuse(
                        format!("{path}@type='{}'", attr_or_empty(el, "type")),
                        "not supported by the Vireo backend (only pci-root, scsi model='virtio-scsi', sata, ide and usb model='none')",
                    );
                }
            }
            "memballoon" => {
                if el.attr("model").as_deref() != Some("none") {
                    return refuse(
                        format!("{path}@model='{}'", attr_or_empty(el, "model")),
                        "memory ballooning is not supported (use model='none')",
                    );
                }
            }
            other => return not_supported(format!("devices/{other}[{idx}]")),
        }
    }
    Ok(())
}

/// Keyboard and tablet; a tablet needs the display, so this runs after graphics.
pub(super) fn inputs(
    devices: &Devices<&Element>,
    cfg: &mut VmConfig,
) -> Result<(), TranslateError> {
    for (i, input) in devices.inputs().iter().enumerate() {
        let path = dev_path("input", i);
        match (input.input_type(), input.bus()) {
            (Some(InputType::Keyboard), Some(InputBus::Ps2) | None) => {}
            (Some(InputType::Keyboard), Some(InputBus::Virtio)) => cfg.input.keyboard = true,
            (Some(InputType::Tablet), Some(InputBus::Usb | InputBus::Virtio) | None) => {
                if cfg.display.is_none() {
                    return refuse(path, "a tablet needs a graphics device");
                }
                cfg.input.tablet = true
            }
            (Some(t @ (InputType::Keyboard | InputType::Tablet)), Some(b)) => {
                return refuse(
                    format!("{path}@bus='{b}'"),
                    format!("not supported for a {t} (use bus='virtio')"),
                )
            }
            _ => {
                return refuse(
                    format!("{path}@type='{}'", attr_or_empty(input.element(), "type")),
                    "not supported by the Vireo backend (use keyboard or tablet)",
                )
            }
        }
    }
    Ok(())
}

pub(super) fn rng(devices: &Devices<&Element>, cfg: &mut VmConfig) -> Result<(), TranslateError> {
    for (i, r) in devices.rngs().iter().enumerate() {
        let path = dev_path("rng", i);
        if cfg.rng {
            return refuse(path, "only one rng device is supported");
        }
        if r.model().as_deref() != Some("virtio") {
            return refuse(
                format!("{path}@model='{}'", r.model().unwrap_or_default()),
                "not supported (use model='virtio')",
            );
        }
        if r.element().child("backend").is_some() && r.backend() != Some(RngBackend::Random) {
            return refuse(
                format!(
                    "{path}/backend@model='{}'",
                    r.backend().map(|b| b.to_string()).unwrap_or_default()
                ),
                "not supported (use model='random')",
            );
        }
        cfg.rng = true;
    }
    Ok(())
}

/// The machine's virtio slots (mmio windows, or PCI device numbers) bound the number of
/// virtio devices; the VMM would refuse the config, this says so with the document's terms.
pub(super) fn virtio_count(cfg: &VmConfig) -> Result<(), TranslateError> {
    let n = cfg.virtio_device_count();
    let max = cfg.machine.virtio_max();
    if n <= max {
        return Ok(());
    }
    let mut message = format!(
        "{n} virtio devices, at most {max} on the {} machine type",
        machine::name(cfg.machine)
    );
    // The way out, when there is one.
    if n <= Machine::Pc.virtio_max() {
        message.push_str(&format!(
            " (machine='pc' has room for {})",
            Machine::Pc.virtio_max()
        ));
    }
    refuse("devices", message)
}

//! `os/type@machine`: the platform the devices sit on. Vireo's own virtio-mmio machine
//! (`vireo`, the default) boots a kernel in the least time; `pc` is QEMU's i440FX + PIIX
//! machine with virtio-pci devices, what installers and firmware expect.

use super::{refuse, TranslateError};
use vireo_vmm_api::config::Machine;

/// The names the capabilities list, the default first.
pub(crate) const NAMES: &[&str] = &[name(Machine::Microvm), name(Machine::Pc)];

/// The name capabilities and refusals use for `m`.
pub(crate) const fn name(m: Machine) -> &'static str {
    match m {
        Machine::Microvm => "vireo",
        Machine::Pc => "pc",
    }
}

/// The machine `os/type@machine` asks for (`value`; None when absent). libvirt's versioned
/// i440FX names (`pc-i440fx-7.2`) are the same platform to Vireo: it has one version of it.
pub(crate) fn machine(value: Option<&str>) -> Result<Machine, TranslateError> {
    let Some(v) = value else {
        return Ok(Machine::Microvm);
    };
    let versioned = |prefix: &str| v.strip_prefix(prefix).is_some_and(|s| !s.is_empty());
    match v {
        // QEMU calls its own virtio-mmio machine `microvm`; a document written for it asks
        // for the same thing.
        "vireo" | "microvm" => Ok(Machine::Microvm),
        "pc" => Ok(Machine::Pc),
        _ if versioned("pc-i440fx-") => Ok(Machine::Pc),
        _ if v == "q35" || v.starts_with("pc-q35-") => refuse(
            format!("os/type@machine='{v}'"),
            "Vireo's PC platform is i440FX, it has no Q35 machine (use machine='pc')",
        ),
        _ => refuse(
            format!("os/type@machine='{v}'"),
            "not supported by the Vireo backend (use pc, pc-i440fx-*, vireo or microvm)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_the_machine() {
        for (value, want) in [
            (None, Machine::Microvm),
            (Some("vireo"), Machine::Microvm),
            (Some("microvm"), Machine::Microvm),
            (Some("pc"), Machine::Pc),
            (Some("pc-i440fx-7.2"), Machine::Pc),
            (Some("pc-i440fx-2.12"), Machine::Pc),
        ] {
            assert_eq!(machine(value), Ok(want), "for {value:?}");
        }
    }

    #[test]
    fn q35_is_refused_with_the_way_out() {
        for v in ["q35", "pc-q35-8.2"] {
            let e = machine(Some(v)).unwrap_err();
            assert_eq!(e.path, format!("os/type@machine='{v}'"));
            assert_eq!(
                e.to_string(),
                format!(
                    "os/type@machine='{v}': Vireo's PC platform is i440FX, it has no Q35 \
                     machine (use machine='pc')"
                )
            );
        }
    }

    #[test]
    fn other_names_are_refused_naming_the_accepted_ones() {
        for v in ["virt", "", "PC", "pc-i440fx-", "isapc"] {
            let e = machine(Some(v)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "os/type@machine='{v}': not supported by the Vireo backend (use pc, \
                     pc-i440fx-*, vireo or microvm)"
                ),
            );
        }
    }

    #[test]
    fn capabilities_list_the_default_first() {
        assert_eq!(NAMES, ["vireo", "pc"]);
        assert_eq!(name(Machine::default()), NAMES[0]);
    }
}

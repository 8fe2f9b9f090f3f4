//! `<os>`: the guest type, and how the machine boots: a kernel given in `os/kernel` is loaded
//! directly (the fast path); without one the machine boots its firmware ([`super::firmware`]).

use super::firmware::{self, FirmwareOs};
use super::uefi::{self, Kind};
use super::{check_file, not_supported, refuse, Sources, TranslateError};
use std::path::PathBuf;
use vireo_domain::{Domain, OsType};
use vireo_vmm_api::config::Machine;
use vireo_vmm_api::limits;

/// What `<os>` gives the VMM config.
pub(super) enum Boot {
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    Firmware(FirmwareOs),
}

/// `machine`: the platform (UEFI needs pc); `name`: the machine's; `sources`: where the
/// firmware is looked for and the variable stores kept.
pub(super) fn boot(
    dom: &Domain,
    machine: Machine,
    name: &str,
    sources: &Sources,
) -> Result<Boot, TranslateError> {
    let Some(os) = dom.os() else {
        return refuse("os", "missing element os");
    };
    if let Some(ty) = os.os_type() {
        if ty != OsType::Hvm {
            return refuse(format!("os/type='{ty}'"), "only hvm guests are supported");
        }
    }
    if let Some(a) = os.arch() {
        if a != "x86_64" {
            return refuse(
                format!("os/type@arch='{a}'"),
                "only x86_64 guests are supported",
            );
        }
    }
    let kind = uefi::kind(&os)?;
    let kernel = match os.kernel().map(|k| k.trim().to_owned()) {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Ok(Boot::Firmware(firmware::os(
                &os, &kind, machine, name, sources,
            )?))
        }
    };
    if let Kind::Uefi { at } = kind {
        return refuse(
            at,
            "a kernel in os/kernel is booted directly, without firmware (leave out the UEFI \
             firmware or os/kernel)",
        );
    }
    for el in os.element().elements() {
        match el.name() {
            "type" | "kernel" | "initrd" | "cmdline" | "boot" => {}
            "loader" => {
                return refuse(
                    "os/loader",
                    "a kernel in os/kernel is booted directly, without firmware (leave out \
                     os/loader or os/kernel)",
                )
            }
            other => return not_supported(format!("os/{other}")),
        }
    }
    let kernel = check_file("os/kernel", &kernel)?;
    let initrd = match os.initrd().map(|i| i.trim().to_owned()) {
        Some(i) if !i.is_empty() => Some(check_file("os/initrd", &i)?),
        _ => None,
    };
    let cmdline = os
        .cmdline()
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    if cmdline.len() >= limits::CMDLINE_MAX {
        return refuse(
            "os/cmdline",
            format!("longer than {} bytes", limits::CMDLINE_MAX - 1),
        );
    }
    if !cmdline.is_ascii() {
        return refuse("os/cmdline", "must be ASCII");
    }
    Ok(Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    })
}

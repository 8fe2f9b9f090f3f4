//! `<os>`: the guest type, and the direct kernel boot (kernel, initrd, cmdline) that is the
//! only boot the backend does.

use super::{check_file, not_supported, refuse, TranslateError};
use std::path::PathBuf;
use vireo_domain::{Domain, OsType};
use vireo_vmm_api::limits;

/// What `<os>` gives the VMM config.
pub(super) struct Boot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

pub(super) fn boot(dom: &Domain) -> Result<Boot, TranslateError> {
    let no_kernel = || {
        refuse(
            "os",
            "Vireo boots only a kernel given in os/kernel (firmware boot is not supported)",
        )
    };
    let Some(os) = dom.os() else {
        return no_kernel();
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
    if let Some(fw) = os.firmware() {
        return refuse(
            format!("os@firmware='{fw}'"),
            "firmware boot is not supported (use os/kernel)",
        );
    }
    for el in os.element().elements() {
        match el.name() {
            "type" | "kernel" | "initrd" | "cmdline" | "boot" => {}
            "loader" | "nvram" => {
                return refuse(
                    format!("os/{}", el.name()),
                    "firmware boot is not supported (use os/kernel)",
                )
            }
            other => return not_supported(format!("os/{other}")),
        }
    }
    let kernel = match os.kernel().map(|k| k.trim().to_owned()) {
        Some(k) if !k.is_empty() => check_file("os/kernel", &k)?,
        _ => return no_kernel(),
    };
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
    Ok(Boot {
        kernel,
        initrd,
        cmdline,
    })
}

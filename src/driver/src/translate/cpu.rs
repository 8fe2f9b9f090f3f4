//! `<vcpu>`, `<cpu>` (mode, topology), `<features>`, `<clock>` and `<pm>`: the virtual CPUs and
//! the platform around them.

use super::{not_supported, refuse, view_error, TranslateError};
use vireo_domain::{ClockOffset, CpuMode, Domain};

/// The number of vCPUs.
pub(super) fn vcpus(dom: &Domain) -> Result<u8, TranslateError> {
    let root = dom.root();
    let vcpu_count = dom.vcpu().map_err(|e| view_error("vcpu", e))?.unwrap_or(1);
    if let Some(v) = root.child("vcpu") {
        if let Some(c) = v.attr("current") {
            if c.trim().parse::<u32>().ok() != Some(vcpu_count) {
                return refuse(
                    "vcpu@current",
                    "vCPU hotplug is not supported (current must equal the count)",
                );
            }
        }
        if let Some(p) = v.attr("placement") {
            if p != "static" {
                return refuse(
                    format!("vcpu@placement='{p}'"),
                    "only static placement is supported",
                );
            }
        }
        if v.attr("cpuset").is_some() {
            return not_supported("vcpu@cpuset");
        }
    }
    let vcpus = match u8::try_from(vcpu_count) {
        Ok(n) => n,
        Err(_) => return refuse("vcpu", format!("{vcpu_count} vCPUs is more than 255")),
    };
    if let Some(m) = dom.cpu_mode() {
        if !matches!(
            m,
            CpuMode::HostPassthrough | CpuMode::HostModel | CpuMode::Maximum
        ) {
            return refuse(
                format!("cpu@mode='{m}'"),
                "only host-passthrough, host-model or maximum is supported",
            );
        }
    }
    if let Some(cpu) = root.child("cpu") {
        for el in cpu.elements() {
            match el.name() {
                "topology" => {
                    let n = |a: &str| {
                        el.attr(a)
                            .and_then(|v| v.trim().parse::<u32>().ok())
                            .unwrap_or(1)
                    };
                    let product = n("sockets")
                        .saturating_mul(n("dies"))
                        .saturating_mul(n("cores"))
                        .saturating_mul(n("threads"));
                    if product != vcpu_count {
                        return refuse(
                            "cpu/topology",
                            format!("{product} CPUs in the topology, {vcpu_count} in vcpu"),
                        );
                    }
                }
                other => return not_supported(format!("cpu/{other}")),
            }
        }
    }
    if let Some(f) = root.child("features") {
        for el in f.elements() {
            if !matches!(el.name(), "acpi" | "apic" | "pae") {
                return not_supported(format!("features/{}", el.name()));
            }
        }
    }
    if let Some(o) = dom.clock_offset() {
        if o != ClockOffset::Utc {
            return refuse(
                format!("clock@offset='{o}'"),
                "the guest clock is always UTC (use offset='utc')",
            );
        }
    }
    if let Some(pm) = root.child("pm") {
        for el in pm.elements() {
            if el.attr("enabled").as_deref() != Some("no") {
                return refuse(
                    format!("pm/{}", el.name()),
                    "guest suspend is not supported (use enabled='no')",
                );
            }
        }
    }
    Ok(vcpus)
}

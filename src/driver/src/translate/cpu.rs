//! `<vcpu>`, `<cpu>` (mode, topology), `<features>`, `<clock>` and `<pm>`: the virtual CPUs and
//! the platform around them.

use super::{not_supported, refuse, view_error, TranslateError};
use vireo_domain::{ClockOffset, CpuMode, Domain};
use vireo_vmm_api::config::CpuFeature;

/// The CPU features `<cpu><feature policy='disable|forbid' name='...'/>` takes away. The
/// backend can take away x2apic (some guests and nested hypervisors misbehave with it); every
/// other feature, and every other policy, is refused rather than silently ignored.
pub(super) fn features_off(dom: &Domain) -> Result<Vec<CpuFeature>, TranslateError> {
    let Some(cpu) = dom.root().child("cpu") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, el) in cpu.children_named("feature").enumerate() {
        let name = el.attr("name").map(|v| v.into_owned()).unwrap_or_default();
        let policy = el
            .attr("policy")
            .map(|v| v.into_owned())
            .unwrap_or_default();
        let path = format!("cpu/feature[{}]", i + 1);
        if !matches!(policy.as_str(), "disable" | "forbid") {
            return refuse(
                format!("{path}@policy='{policy}'"),
                "the backend passes the host's CPU through; it can only take features away \
                 (policy='disable')",
            );
        }
        match name.as_str() {
            "x2apic" => {
                if !out.contains(&CpuFeature::X2apic) {
                    out.push(CpuFeature::X2apic);
                }
            }
            _ => {
                return refuse(
                    format!("{path}@name='{name}'"),
                    "the backend can take away x2apic only",
                )
            }
        }
    }
    Ok(out)
}

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
                // Handled by `features_off`.
                "feature" => {}
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

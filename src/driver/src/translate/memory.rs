//! `<memory>` and `<currentMemory>`: the guest's RAM in MiB.

use super::{refuse, view_error, TranslateError};
use vireo_domain::Domain;
use vireo_vmm_api::limits;

/// The guest's memory in MiB (rounded up; a note says so).
pub(super) fn memory_mib(dom: &Domain, notes: &mut Vec<String>) -> Result<u64, TranslateError> {
    let memory_kib = match dom.memory().map_err(|e| view_error("memory", e))? {
        Some(b) if b > 0 => b.div_ceil(1024),
        // Validation accepts a zero size when NUMA cells give the memory; the backend has no NUMA.
        _ => return refuse("memory", "must be greater than 0"),
    };
    if let Some(cur) = dom
        .current_memory()
        .map_err(|e| view_error("currentMemory", e))?
    {
        if cur.div_ceil(1024) != memory_kib {
            return refuse(
                "currentMemory",
                "memory ballooning is not supported (make it equal to memory)",
            );
        }
    }
    let memory_mib = memory_kib.div_ceil(1024);
    if memory_mib > limits::MAX_MEMORY_MIB {
        return refuse(
            "memory",
            format!(
                "{memory_mib} MiB is more than {} MiB",
                limits::MAX_MEMORY_MIB
            ),
        );
    }
    if memory_kib % 1024 != 0 {
        notes.push(format!("memory rounded up to {memory_mib} MiB"));
    }
    Ok(memory_mib)
}

//! vCPU setup: CPUID with the topology fixed up, boot MSRs, registers for the chosen entry
//! point, FPU and local APIC LINT pins.

use crate::boot::{Entry, GDT};
use crate::config::CpuFeature;
use crate::layout;
use kvm_bindings::{
    kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_xcrs, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuFd};

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("vCPU {id}: {what}: {err}")]
    Kvm {
        id: u8,
        what: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error("vCPU {0}: building the MSR list failed")]
    Msrs(u8),
}

fn kvm(id: u8, what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> CpuError {
    move |err| CpuError::Kvm { id, what, err }
}

/// KVM's supported CPUID, fetched once per VM.
pub fn supported_cpuid(kvm_: &Kvm) -> Result<CpuId, kvm_ioctls::Error> {
    kvm_.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
}

/// Takes `off` out of what the guest's CPUID offers.
pub fn disable_features(cpuid: &mut CpuId, off: &[CpuFeature]) {
    for f in off {
        let (function, ecx_bit) = match f {
            CpuFeature::X2apic => (1, 21),
        };
        for e in cpuid.as_mut_slice() {
            if e.function == function {
                e.ecx &= !(1 << ecx_bit);
            }
        }
    }
}

fn is_amd(cpuid: &CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|e| e.function == 0 && e.ebx == 0x6874_7541) // "Auth"
}

/// Bits needed to number `n` things.
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Per-vCPU CPUID: APIC IDs and one socket with `vcpus` cores, one thread each.
pub fn fixup_cpuid(base: &CpuId, id: u8, vcpus: u8) -> CpuId {
    let mut c = base.clone();
    let n = u32::from(vcpus);
    let apic = u32::from(id);
    let amd = is_amd(base);
    let core_bits = bits_for(n);
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (apic << 24) | ((n.max(1) & 0xff) << 16);
                if n > 1 {
                    e.edx |= 1 << 28;
                }
                e.ecx |= 1 << 31; // hypervisor
            }
            4 if !amd => {
                let level = (e.eax >> 5) & 7;
                let sharing = if level >= 3 { n - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((n - 1) << 26);
            }
            0xb | 0x1f => {
                e.edx = apic;
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = (1 << 8) | e.index;
                    }
                    1 => {
                        e.eax = core_bits;
                        e.ebx = n;
                        e.ecx = (2 << 8) | e.index;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            0x8000_0001 if amd && n > 1 => e.ecx |= 1 << 1, // CmpLegacy
            0x8000_0008 if amd => e.ecx = (e.ecx & !0xf0ff) | (core_bits << 12) | (n - 1),
            0x8000_001e if amd => {
                e.eax = apic;
                e.ebx = apic & 0xff; // compute unit = core, one thread per core
                e.ecx = 0; // node 0, one node
                e.edx = 0;
            }
            _ => {}
        }
    }
    c
}

/// XCR0 bits for x87, SSE, AVX and the three AVX-512 components: user state that needs no
/// permission from the host (AMX does) and that XCR0's rules let us set together.
const XCR0_X87_SSE_AVX: u64 = 0b111;
const XCR0_AVX512: u64 = 0b1110_0000;

/// The XCR0 a booting guest gets: the user state components CPUID leaf 0xD offers, among x87,
/// SSE, AVX and AVX-512 (all three or none, and only with AVX); `None` without XSAVE.
fn boot_xcr0(cpuid: &CpuId) -> Option<u64> {
    let entries = cpuid.as_slice();
    let xsave = entries
        .iter()
        .any(|e| e.function == 1 && e.index == 0 && e.ecx & (1 << 26) != 0);
    let leaf = entries.iter().find(|e| e.function == 0xd && e.index == 0)?;
    if !xsave {
        return None;
    }
    let offered = u64::from(leaf.eax) | (u64::from(leaf.edx) << 32);
    let mut xcr0 = offered & XCR0_X87_SSE_AVX;
    if xcr0 & 0b11 != 0b11 {
        return None;
    }
    if xcr0 & 0b100 != 0 && offered & XCR0_AVX512 == XCR0_AVX512 {
        xcr0 |= XCR0_AVX512;
    }
    Some(xcr0)
}

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;

/// Sets everything the vCPU needs before its first KVM_RUN.
pub fn setup_vcpu(
    vcpu: &VcpuFd,
    id: u8,
    vcpus: u8,
    cpuid: &CpuId,
    entry: Entry,
) -> Result<(), CpuError> {
    setup_common(vcpu, id, vcpus, cpuid)?;
    if id == 0 {
        setup_boot_regs(vcpu, id, entry)?;
    }
    Ok(())
}

/// Firmware boot: CPUID, MSRs, FPU and LAPIC as for a kernel, registers as KVM created them.
/// That is the reset state: vCPU 0 runs from the reset vector (CS base 0xFFFF0000, IP 0xFFF0,
/// real mode); with the in-kernel irqchip KVM leaves every other vCPU uninitialized, waiting
/// for the INIT/SIPI the firmware sends.
pub fn setup_vcpu_firmware(
    vcpu: &VcpuFd,
    id: u8,
    vcpus: u8,
    cpuid: &CpuId,
) -> Result<(), CpuError> {
    setup_common(vcpu, id, vcpus, cpuid)
}

fn setup_common(vcpu: &VcpuFd, id: u8, vcpus: u8, cpuid: &CpuId) -> Result<(), CpuError> {
    let cpuid = fixup_cpuid(cpuid, id, vcpus);
    vcpu.set_cpuid2(&cpuid).map_err(kvm(id, "KVM_SET_CPUID2"))?;
    // XCR0 starts with the state components the guest will enable anyway (Linux sets XCR0 to
    // every one CPUID offers before it uses any). Where the guest's XSETBV does not reach KVM
    // (QEMU's TCG emulation of nested SVM does not intercept it, and the rig runs there),
    // KVM's XCR0 would otherwise stay at x87 only: it would load that on every entry, and the
    // guest's XSAVE would silently drop its SSE and AVX registers across task switches. On a
    // host that refuses this the guest loses nothing: it writes XCR0 itself.
    if let Some(xcr0) = boot_xcr0(&cpuid) {
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = xcr0;
        let _ = vcpu.set_xcrs(&xcrs);
    }
    let entries: Vec<kvm_msr_entry> = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, 1),             // fast strings
        (MSR_MTRR_DEF_TYPE, (1 << 11) | 6u64), // MTRRs on, default write-back
    ]
    .iter()
    .map(|(index, data)| kvm_msr_entry {
        index: *index,
        data: *data,
        ..Default::default()
    })
    .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|_| CpuError::Msrs(id))?;
    // A host that refuses some of these is tolerable; the kernel sets what it needs itself.
    let _ = vcpu.set_msrs(&msrs);
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm(id, "KVM_SET_FPU"))?;
    setup_lapic(vcpu, id)
}

fn setup_lapic(vcpu: &VcpuFd, id: u8) -> Result<(), CpuError> {
    let mut lapic = vcpu.get_lapic().map_err(kvm(id, "KVM_GET_LAPIC"))?;
    let set = |regs: &mut [i8], off: usize, mode: u32| {
        let mut v = u32::from_le_bytes([
            regs[off] as u8,
            regs[off + 1] as u8,
            regs[off + 2] as u8,
            regs[off + 3] as u8,
        ]);
        v = (v & !0x700) | (mode << 8);
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            regs[off + i] = *b as i8;
        }
    };
    set(&mut lapic.regs, 0x350, 7); // LINT0: ExtINT (the 8259)
    set(&mut lapic.regs, 0x360, 4); // LINT1: NMI
    vcpu.set_lapic(&lapic).map_err(kvm(id, "KVM_SET_LAPIC"))
}

/// A KVM segment from a GDT entry.
pub fn segment(index: u16, entry: u64) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let limit = (((entry >> 32) & 0xf_0000) | (entry & 0xffff)) as u32;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | (((entry >> 56) & 0xff) << 24),
        limit: if g == 1 { (limit << 12) | 0xfff } else { limit },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

fn setup_boot_regs(vcpu: &VcpuFd, id: u8, entry: Entry) -> Result<(), CpuError> {
    let mut sregs = vcpu.get_sregs().map_err(kvm(id, "KVM_GET_SREGS"))?;
    let (code, rip) = match entry {
        Entry::Linux64 { rip } => (segment(2, GDT[2]), rip),
        Entry::Pvh { rip } => (segment(1, GDT[1]), rip),
    };
    let data = segment(3, GDT[3]);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(4, GDT[4]);
    sregs.gdt.base = layout::BOOT_GDT;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = layout::BOOT_IDT;
    sregs.idt.limit = 7;
    let mut regs = kvm_regs {
        rflags: 2,
        rip,
        ..Default::default()
    };
    match entry {
        Entry::Linux64 { .. } => {
            sregs.cr3 = layout::PML4;
            sregs.cr4 |= 0x20; // PAE
            sregs.cr0 |= 0x8000_0001 | 0x10; // PG | PE | ET
            sregs.efer |= 0x500; // LME | LMA
            regs.rsi = layout::ZERO_PAGE;
            regs.rsp = layout::BOOT_STACK;
            regs.rbp = layout::BOOT_STACK;
        }
        Entry::Pvh { .. } => {
            sregs.cr0 = 0x11; // PE | ET
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rbx = layout::PVH_START_INFO;
        }
    }
    vcpu.set_sregs(&sregs).map_err(kvm(id, "KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(kvm(id, "KVM_SET_REGS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_feature_leaves_cpuid() {
        let kvm = match kvm_ioctls::Kvm::new() {
            Ok(k) => k,
            Err(_) => return,
        };
        let mut c = supported_cpuid(&kvm).unwrap();
        disable_features(&mut c, &[CpuFeature::X2apic]);
        let l1 = c.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(l1.ecx & (1 << 21), 0);
    }

    #[test]
    fn segment_decoding() {
        let cs = segment(2, GDT[2]);
        assert_eq!(
            (cs.selector, cs.l, cs.db, cs.type_, cs.limit),
            (0x10, 1, 0, 0xb, 0xffff_ffff)
        );
        let ds = segment(3, GDT[3]);
        assert_eq!((ds.db, ds.type_, ds.s, ds.present), (1, 3, 1, 1));
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(3), 2);
        assert_eq!(bits_for(4), 2);
    }

    #[test]
    fn topology_leaves_carry_the_apic_id_and_count() {
        use kvm_bindings::kvm_cpuid_entry2;
        let e = |function: u32, index: u32, ebx: u32| kvm_cpuid_entry2 {
            function,
            index,
            ebx,
            ..Default::default()
        };
        let base = CpuId::from_entries(&[
            e(0, 0, 0x6874_7541), // AuthenticAMD
            e(1, 0, 0x00ff_0800),
            e(0xb, 0, 0),
            e(0xb, 1, 0),
            e(0x8000_0008, 0, 0),
            e(0x8000_001e, 0, 0),
        ])
        .unwrap();
        let c = fixup_cpuid(&base, 3, 4);
        let get = |f: u32, i: u32| {
            *c.as_slice()
                .iter()
                .find(|x| x.function == f && x.index == i)
                .unwrap()
        };
        let l1 = get(1, 0);
        assert_eq!(l1.ebx >> 24, 3, "initial APIC ID");
        assert_eq!((l1.ebx >> 16) & 0xff, 4, "logical processor count");
        assert_eq!(l1.ebx & 0xffff, 0x0800, "other bits kept");
        assert_ne!(l1.edx & (1 << 28), 0, "HTT");
        assert_ne!(l1.ecx & (1 << 31), 0, "hypervisor");
        let smt = get(0xb, 0);
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8, smt.edx), (0, 1, 1, 3));
        let core = get(0xb, 1);
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (2, 4, 2, 3));
        assert_eq!(get(0x8000_0008, 0).ecx & 0xff, 3, "NC = cores - 1");
        assert_eq!(get(0x8000_001e, 0).eax, 3, "extended APIC ID");
    }

    #[test]
    fn boot_xcr0_follows_cpuid_leaf_0xd() {
        use kvm_bindings::kvm_cpuid_entry2;
        let cpuid = |xsave: bool, eax: u32| {
            CpuId::from_entries(&[
                kvm_cpuid_entry2 {
                    function: 1,
                    ecx: if xsave { 1 << 26 } else { 0 },
                    ..Default::default()
                },
                kvm_cpuid_entry2 {
                    function: 0xd,
                    eax,
                    ..Default::default()
                },
            ])
            .unwrap()
        };
        assert_eq!(boot_xcr0(&cpuid(true, 0b111)), Some(0b111), "x87 SSE AVX");
        assert_eq!(boot_xcr0(&cpuid(true, 0b1110_0111)), Some(0b1110_0111));
        // MPX, PKRU and AMX (bits 3, 4, 9, 17, 18) are left to the guest.
        assert_eq!(boot_xcr0(&cpuid(true, 0x6_021f)), Some(0b111));
        // Partial AVX-512 is no valid XCR0: left out.
        assert_eq!(boot_xcr0(&cpuid(true, 0b0110_0111)), Some(0b111));
        assert_eq!(boot_xcr0(&cpuid(true, 0b1110_0011)), Some(0b11), "no AVX");
        assert_eq!(boot_xcr0(&cpuid(false, 0b111)), None, "no XSAVE");
        assert_eq!(boot_xcr0(&cpuid(true, 0b01)), None, "no SSE");
    }
}

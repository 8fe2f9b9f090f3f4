//! ACPI tables: RSDP, XSDT, FADT, MADT and a DSDT, written into the BIOS area at
//! [`crate::layout::ACPI_START`] for the direct boot, or handed to PC firmware as fw_cfg
//! files with a linker/loader script ([`loader`]). Both placements share the builders below,
//! so both boot paths describe one machine.
//!
//! The platform is full (not hardware-reduced) ACPI so that the fixed power button, the PM1
//! sleep control (S5 poweroff) and the FADT reset register work with Debian's stock kernel,
//! with the SCI on GSI 9. SMI_CMD is 0: the machine is always in ACPI mode.
//!
//! The DSDT declares the i8042 keyboard (PNP0303: with ACPI, Linux probes the i8042 only if
//! it is declared), COM1 (PNP0501), `\_S5` and every virtio-mmio device in
//! [`AcpiConfig::virtio_mmio`] as `LNRO0005` with its window and GSI, the way Firecracker
//! does, because Debian's kernel lacks `virtio_mmio.device=`.

pub mod aml;
pub mod loader;

use crate::layout;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// One virtio-mmio device as the guest's ACPI sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioAcpi {
    pub base: u64,
    pub size: u64,
    pub gsi: u32,
}

/// What the table builder needs to know about the machine.
#[derive(Debug, Clone, Default)]
pub struct AcpiConfig {
    pub vcpus: u8,
    /// virtio-mmio devices, in slot order; the VM builder appends one per attached device.
    pub virtio_mmio: Vec<VirtioMmioAcpi>,
    /// The `pc` machine's part; `None` on Vireo's own machine (fixed PM ports, no PCI).
    pub pc: Option<PcAcpi>,
}

/// The `pc` machine: PCI bus 0 as `\_SB.PCI0` with its windows and interrupt routing, the PM
/// block where PIIX4's PMBA puts it, MSI allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcAcpi {
    /// The PM block's base ([`layout::pc_pm_base`]).
    pub pm_base: u16,
    /// The 64-bit BAR window [start, end), if it has one.
    pub mmio64: Option<(u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error("ACPI tables need {0} bytes, more than the {size} reserved", size = layout::ACPI_SIZE)]
    TooLarge(usize),
    #[error("ACPI tables for the firmware need {0} bytes, more than the {max} it can take", max = loader::TABLES_MAX)]
    LoaderTooLarge(usize),
    #[error("writing ACPI tables to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

const OEM_ID: &[u8; 6] = b"VIREO ";
const OEM_TABLE: &[u8; 8] = b"VIREOVMM";

/// Offsets into the FADT of the fields that point at other tables.
const FADT_FIRMWARE_CTRL: usize = 36;
const FADT_DSDT: usize = 40;
const FADT_X_DSDT: usize = 140;
/// Offset of the checksum byte in every table with the standard header, and that header's size.
const SDT_CHECKSUM: usize = 9;
const SDT_HEADER_LEN: usize = 36;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A table with its standard 36-byte header; the length and checksum are fixed in `finish`.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"VIRO");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    t[SDT_CHECKSUM] = checksum(&t);
    t
}

/// Generic Address Structure for an I/O port register.
fn gas_io(port: u16, bits: u8, access: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1;
    g[1] = bits;
    g[3] = access;
    g[4..6].copy_from_slice(&port.to_le_bytes());
    g
}

/// The FADT. `facs_addr` is `None` for the direct boot, which has no firmware to own a FACS.
/// The DSDT is named by both the 32- and the 64-bit field (SeaBIOS reads the 32-bit one); the
/// FACS only by the 32-bit one, since ACPI 6 wants X_FIRMWARE_CTRL zero when FIRMWARE_CTRL is
/// set and the FACS is always below 4 GiB.
/// `pc_pm`: the `pc` machine's PM block base (`None`: the fixed ports, no PM timer, no PCI).
fn fadt(dsdt_addr: u64, facs_addr: Option<u64>, pc_pm: Option<u16>) -> Vec<u8> {
    let pci = pc_pm.is_some();
    let mut f = vec![0u8; 276 - 36];
    let put = |f: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        f[off - 36..off - 36 + bytes.len()].copy_from_slice(bytes);
    };
    if let Some(facs) = facs_addr {
        put(&mut f, FADT_FIRMWARE_CTRL, &(facs as u32).to_le_bytes());
    }
    put(&mut f, FADT_DSDT, &(dsdt_addr as u32).to_le_bytes());
    put(&mut f, 45, &[1]); // preferred PM profile: desktop
    put(&mut f, 46, &(layout::SCI_GSI as u16).to_le_bytes());
    let (evt, cnt) = pm1_ports(pc_pm);
    put(&mut f, 56, &u32::from(evt).to_le_bytes());
    put(&mut f, 64, &u32::from(cnt).to_le_bytes());
    put(&mut f, 88, &[layout::PM1_EVT_LEN, layout::PM1_CNT_LEN]);
    if let Some(base) = pc_pm {
        // PIIX4's 24-bit PM timer.
        let timer = base + layout::PC_PM_TIMER_OFFSET;
        put(&mut f, 76, &u32::from(timer).to_le_bytes());
        put(&mut f, 91, &[4]);
        put(&mut f, 208, &gas_io(timer, 32, 3));
    }
    // IAPC_BOOT_ARCH: legacy devices, 8042, no VGA; "MSI not supported" on the machine
    // without PCI (on `pc` it would turn MSI off in Linux).
    let boot_arch: u16 = if pci { 0b0111 } else { 0b1111 };
    put(&mut f, 109, &boot_arch.to_le_bytes());
    // Flags: WBINVD, SLP_BUTTON (no sleep button), FIX_RTC, RESET_REG_SUP. PWR_BUTTON clear:
    // the power button is the fixed-feature one in PM1.
    let flags: u32 = 1 | (1 << 5) | (1 << 6) | (1 << 10);
    put(&mut f, 112, &flags.to_le_bytes());
    put(&mut f, 116, &gas_io(layout::RESET_PORT, 8, 1));
    put(&mut f, 128, &[layout::RESET_VALUE]);
    put(&mut f, FADT_X_DSDT, &dsdt_addr.to_le_bytes());
    put(&mut f, 148, &gas_io(evt, layout::PM1_EVT_LEN * 8, 2));
    put(&mut f, 172, &gas_io(cnt, layout::PM1_CNT_LEN * 8, 2));
    put(&mut f, 268, b"VIREOVMM");
    sdt(b"FACP", 6, &f)
}

/// The PM1a event and control blocks: fixed ports on microvm, PIIX4's block on `pc`.
fn pm1_ports(pc_pm: Option<u16>) -> (u16, u16) {
    match pc_pm {
        Some(base) => (base, base + 4),
        None => (layout::PM1A_EVT_PORT, layout::PM1A_CNT_PORT),
    }
}

/// `\_SB.PCI0`: bus 0 behind 0xCF8, the windows its BARs may use (all I/O but the
/// configuration ports, the legacy VGA window, the 32-bit MMIO hole below the IOAPIC, the
/// 64-bit window above RAM) and
/// `_PRT`, the GSI of each device's INTx pins ([`layout::pci_intx_gsi`]), straight to IOAPIC
/// pins: no interrupt link devices, so nothing for the guest to program.
fn pci0(mmio64: Option<(u64, u64)>) -> Vec<u8> {
    use aml::*;
    let mut routes = Vec::new();
    for device in 1..32u8 {
        for pin in 0..4u8 {
            routes.push(package(vec![
                integer(u64::from(device) << 16 | 0xffff),
                integer(u64::from(pin)),
                integer(0),
                integer(u64::from(layout::pci_intx_gsi(device, pin))),
            ]));
        }
    }
    device(
        "PCI0",
        vec![
            name_decl("_HID", eisa_id("PNP0A03")),
            name_decl("_ADR", integer(0)),
            name_decl("_UID", integer(0)),
            name_decl("_BBN", integer(0)),
            name_decl(
                "_CRS",
                resource_template(
                    vec![
                        word_bus_number(0, 0xff),
                        io_port(0xcf8, 8),
                        word_io(0, 0x0cf7),
                        word_io(0x0d00, 0xffff),
                        dword_memory(0x000a_0000, 0x000b_ffff),
                        dword_memory(
                            layout::PCI_MMIO32_START as u32,
                            (layout::PCI_MMIO32_END - 1) as u32,
                        ),
                    ]
                    .into_iter()
                    .chain(mmio64.map(|(start, end)| qword_memory(start, end - 1)))
                    .collect(),
                ),
            ),
            name_decl("_PRT", package(routes)),
        ],
    )
}

fn madt(vcpus: u8) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&(layout::APIC_START as u32).to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: there are 8259s
    for id in 0..vcpus {
        m.extend_from_slice(&[0, 8, id, id]);
        m.extend_from_slice(&1u32.to_le_bytes());
    }
    m.extend_from_slice(&[1, 12, 0, 0]);
    m.extend_from_slice(&(layout::IOAPIC_START as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    // The SCI is level-triggered, active high (KVM_IRQ_LINE drives it high while pending).
    m.extend_from_slice(&[2, 10, 0, layout::SCI_GSI as u8]);
    m.extend_from_slice(&layout::SCI_GSI.to_le_bytes());
    m.extend_from_slice(&0x000du16.to_le_bytes());
    sdt(b"APIC", 5, &m)
}

fn dsdt(cfg: &AcpiConfig) -> Vec<u8> {
    use aml::*;
    let mut sb = Vec::new();
    sb.push(device(
        "COM1",
        vec![
            name_decl("_HID", eisa_id("PNP0501")),
            name_decl("_UID", integer(1)),
            name_decl(
                "_CRS",
                resource_template(vec![
                    io_port(layout::COM1_PORT, 8),
                    irq_no_flags(layout::COM1_GSI as u8),
                ]),
            ),
        ],
    ));
    sb.push(device(
        "PS2K",
        vec![
            name_decl("_HID", eisa_id("PNP0303")),
            name_decl(
                "_CRS",
                resource_template(vec![
                    io_port(layout::I8042_DATA_PORT, 1),
                    io_port(layout::I8042_CMD_PORT, 1),
                    irq_no_flags(layout::KEYBOARD_GSI as u8),
                ]),
            ),
        ],
    ));
    sb.push(device(
        "RTC",
        vec![
            name_decl("_HID", eisa_id("PNP0B00")),
            name_decl(
                "_CRS",
                resource_template(vec![
                    io_port(layout::RTC_PORT, 2),
                    irq_no_flags(layout::RTC_GSI as u8),
                ]),
            ),
        ],
    ));
    if let Some(pc) = cfg.pc {
        sb.push(pci0(pc.mmio64));
    }
    for (i, v) in cfg.virtio_mmio.iter().enumerate() {
        sb.push(device(
            &format!("V{i:03X}"),
            vec![
                name_decl("_HID", string("LNRO0005")),
                name_decl("_UID", integer(i as u64)),
                name_decl("_CCA", integer(1)),
                name_decl(
                    "_CRS",
                    resource_template(vec![
                        memory32_fixed(v.base as u32, v.size as u32),
                        interrupt_edge(v.gsi),
                    ]),
                ),
            ],
        ));
    }
    let mut body = scope("\\_SB", sb);
    // SLP_TYPa for S5 is what the guest writes into PM1a_CNT to power off.
    body.extend(name_decl(
        "\\_S5",
        package(vec![integer(5), integer(0), integer(0), integer(0)]),
    ));
    sdt(b"DSDT", 2, &body)
}

/// The FACS: no waking vector (the machine has no sleep states but S5) and no global lock
/// owner; only firmware boot has one, and it must sit 64-byte aligned.
fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version: the layout with X_Firmware_Waking_Vector
    f
}

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

fn rsdt(entries: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    sdt(b"RSDT", 1, &body)
}

/// Offsets into the RSDP of its table pointers and checksums.
const RSDP_CHECKSUM: usize = 8;
const RSDP_RSDT: usize = 16;
const RSDP_XSDT: usize = 24;
const RSDP_EXT_CHECKSUM: usize = 32;
/// The ACPI 1.0 checksum covers the first 20 bytes, the extended one all 36.
const RSDP_V1_LEN: usize = 20;
const RSDP_LEN: usize = 36;

/// A revision-2 RSDP; `rsdt_addr` 0 means the machine has only an XSDT.
fn rsdp(rsdt_addr: u32, xsdt_addr: u64) -> Vec<u8> {
    let mut rsdp = Vec::with_capacity(RSDP_LEN);
    rsdp.extend_from_slice(b"RSD PTR ");
    rsdp.push(0);
    rsdp.extend_from_slice(OEM_ID);
    rsdp.push(2);
    rsdp.extend_from_slice(&rsdt_addr.to_le_bytes());
    rsdp.extend_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    rsdp.extend_from_slice(&xsdt_addr.to_le_bytes());
    rsdp.extend_from_slice(&[0, 0, 0, 0]);
    rsdp[RSDP_CHECKSUM] = checksum(&rsdp[..RSDP_V1_LEN]);
    rsdp[RSDP_EXT_CHECKSUM] = checksum(&rsdp);
    rsdp
}

/// The tables that describe the machine itself, generated once per boot and then placed by
/// either path; only the FADT, XSDT and RSDP (which hold addresses) are built per placement.
struct MachineTables {
    madt: Vec<u8>,
    dsdt: Vec<u8>,
}

impl MachineTables {
    fn new(cfg: &AcpiConfig) -> MachineTables {
        MachineTables {
            madt: madt(cfg.vcpus),
            dsdt: dsdt(cfg),
        }
    }
}

/// SLP_TYP value that `\_S5` announces.
pub const S5_SLP_TYP: u16 = 5;

/// Writes all tables; returns the RSDP's guest address.
pub fn write_tables(mem: &GuestMemoryMmap, cfg: &AcpiConfig) -> Result<u64, AcpiError> {
    let MachineTables { madt, dsdt } = MachineTables::new(cfg);
    let base = layout::ACPI_START;
    let xsdt_addr = base + 64;
    let fadt_addr = xsdt_addr + 64;
    let madt_addr = fadt_addr + 288;
    let dsdt_addr = (madt_addr + madt.len() as u64 + 15) & !15;
    let end = dsdt_addr + dsdt.len() as u64;
    if end > base + layout::ACPI_SIZE {
        return Err(AcpiError::TooLarge((end - base) as usize));
    }
    let fadt = fadt(dsdt_addr, None, cfg.pc.map(|pc| pc.pm_base));
    let xsdt = xsdt(&[fadt_addr, madt_addr]);
    let rsdp = rsdp(0, xsdt_addr);

    for (addr, bytes) in [
        (base, &rsdp),
        (xsdt_addr, &xsdt),
        (fadt_addr, &fadt),
        (madt_addr, &madt),
        (dsdt_addr, &dsdt),
    ] {
        mem.write_slice(bytes, GuestAddress(addr))?;
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_checksum_and_fit() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let cfg = full_config(4);
        let rsdp = write_tables(&mem, &cfg).unwrap();
        let mut r = [0u8; 36];
        mem.read_slice(&mut r, GuestAddress(rsdp)).unwrap();
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(r[..20].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(r.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let xsdt = u64::from_le_bytes(r[24..32].try_into().unwrap());
        for t in [fadt(0x1000, None, None), madt(4), dsdt(&cfg)] {
            assert_eq!(t.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            assert_eq!(
                u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
                t.len()
            );
        }
        let mut hdr = [0u8; 4];
        mem.read_slice(&mut hdr, GuestAddress(xsdt)).unwrap();
        assert_eq!(&hdr, b"XSDT");
        let d = dsdt(&cfg);
        assert!(d.windows(8).any(|w| w == b"LNRO0005"));
    }

    #[test]
    fn the_pc_machine_has_pci0_its_pm_block_and_msi() {
        let cfg = AcpiConfig {
            vcpus: 2,
            virtio_mmio: Vec::new(),
            pc: Some(PcAcpi {
                pm_base: layout::PC_PM_BASE,
                mmio64: layout::pci_mmio64_window(1 << 30),
            }),
        };
        let d = dsdt(&cfg);
        assert!(d.windows(4).any(|w| w == b"PCI0"));
        assert!(d.windows(4).any(|w| w == b"_PRT"));
        // PNP0A03 as an EISA ID.
        assert!(d
            .windows(5)
            .any(|w| w == aml::eisa_id("PNP0A03").as_slice()));
        assert!(!dsdt(&full_config(2)).windows(4).any(|w| w == b"PCI0"));
        let f = fadt(0x1000, None, Some(layout::PC_PM_BASE_UEFI));
        let at = |off: usize, n: usize| f[off..off + n].to_vec();
        assert_eq!(at(56, 4), 0xb000u32.to_le_bytes());
        assert_eq!(at(64, 4), 0xb004u32.to_le_bytes());
        assert_eq!(at(76, 4), 0xb008u32.to_le_bytes());
        assert_eq!(f[91], 4);
        assert_eq!(f[109] & 0b1000, 0, "MSI allowed");
        assert_eq!(fadt(0x1000, None, None)[109] & 0b1000, 0b1000);
    }

    /// FNV-1a: a stable digest to pin bytes with, independent of std's hasher.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn full_config(vcpus: u8) -> AcpiConfig {
        let mut cfg = AcpiConfig {
            vcpus,
            virtio_mmio: Vec::new(),
            pc: None,
        };
        for i in 0..layout::VIRTIO_MMIO_MAX {
            let (base, gsi) = layout::virtio_mmio_slot(i).unwrap();
            cfg.virtio_mmio.push(VirtioMmioAcpi {
                base,
                size: layout::VIRTIO_MMIO_SIZE,
                gsi,
            });
        }
        cfg
    }

    /// The bytes the direct boot writes, pinned: the firmware path shares the table builders,
    /// and sharing them must not change what a directly booted kernel sees.
    #[test]
    fn direct_boot_bytes_are_pinned() {
        let small = AcpiConfig {
            vcpus: 1,
            virtio_mmio: full_config(1).virtio_mmio[..2].to_vec(),
            pc: None,
        };
        for (cfg, want) in [
            (small, 0x246e_3750_5be7_ff8b),
            (full_config(8), 0xb208_3415_6788_b6ff),
        ] {
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
            write_tables(&mem, &cfg).unwrap();
            let mut area = vec![0u8; layout::ACPI_SIZE as usize];
            mem.read_slice(&mut area, GuestAddress(layout::ACPI_START))
                .unwrap();
            assert_eq!(fnv1a(&area), want, "{} vCPUs", cfg.vcpus);
        }
    }
}

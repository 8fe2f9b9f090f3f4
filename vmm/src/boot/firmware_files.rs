//! What fw_cfg tells the firmware about this machine: the legacy keys SeaBIOS reads, `etc/e820`,
//! `bootorder`, the boot menu, SMBIOS, the ACPI tables through the BIOS linker/loader, and
//! (with a display) the ramfb VGA ROM and `etc/ramfb`.

use crate::acpi::loader::LoaderFiles;
use crate::config::{BootDevice, FirmwareConfig, Machine, VmConfig};
use crate::devices::fw_cfg::files::{
    KEY_BOOT_MENU, KEY_IRQ0_OVERRIDE, KEY_MAX_CPUS, KEY_NB_CPUS, KEY_NOGRAPHIC, KEY_RAM_SIZE,
};
use crate::devices::fw_cfg::{FwCfgBuilder, FwCfgError, FwCfgWriteHook};
use crate::layout::{self, E820Kind};
use crate::smbios::{self, SmbiosMachine};
use vireo_vmm_api::pci::VirtioRef;

/// Size of `etc/ramfb`: BE {u64 address, u32 fourcc, u32 flags, u32 width, u32 height,
/// u32 stride}.
pub const RAMFB_CONFIG_SIZE: usize = 28;

/// `etc/e820` as QEMU's pc machine gives it: RAM only (SeaBIOS reserves its own areas: the
/// EBDA, 0xC0000..0xFFFFF and the BIOS below 4 GiB), plus KVM's private pages. Entries are
/// packed {LE64 address, LE64 length, LE32 type}.
pub fn e820(mem_size: u64) -> Vec<u8> {
    let mut entries: Vec<(u64, u64, E820Kind)> = layout::ram_regions(mem_size)
        .into_iter()
        .map(|(base, size)| (base, size, E820Kind::Ram))
        .collect();
    entries.push((
        layout::KVM_IDENTITY_MAP,
        layout::KVM_PRIVATE_SIZE,
        E820Kind::Reserved,
    ));
    let mut out = Vec::with_capacity(entries.len() * 20);
    for (base, len, kind) in entries {
        out.extend(base.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend((kind as u32).to_le_bytes());
    }
    out
}

/// The device path SeaBIOS builds for a virtio-mmio device at `base` is
/// `/virtio-mmio@%016x/*` (boot.c, bootprio_find_mmio_device, a glob where `*` matches one
/// path element): the entry names the element so the glob matches it.
pub fn mmio_boot_path(base: u64) -> String {
    format!("/virtio-mmio@{base:016x}/virtio-blk@0")
}

/// The device path of a SCSI device at (`target`, `lun`) behind the virtio-scsi controller at
/// `base`. SeaBIOS looks for it with `"/virtio-mmio@%016x/*@0/*@%x,%x"` (src/boot.c,
/// bootprio_find_scsi_mmio_device, called from src/hw/virtio-scsi.c virtio_scsi_add_lun for
/// each LUN REPORT LUNS lists): the controller's 32-bit base, then two path elements, the
/// first ending in `@0`, the second in `@target,lun` in lower-case hex. The names are QEMU's
/// (`channel@0/disk@T,L`, from its SCSI bus's firmware path), which the globs match.
pub fn scsi_mmio_boot_path(base: u64, target: u16, lun: u16) -> String {
    format!("/virtio-mmio@{base:016x}/channel@0/disk@{target:x},{lun:x}")
}

/// The device path of a virtio-blk function in PCI slot `device` of bus 0, as QEMU writes it:
/// SeaBIOS looks for `/pci@i0cf8/*@%x` (bootprio_find_pci_device; `,%x` follows for functions
/// other than 0), which matches up to the `/` after the slot; OVMF translates exactly this
/// shape (`scsi@slot/disk@0,0`) to the UEFI path of the function.
pub fn pci_boot_path(device: u8) -> String {
    format!("/pci@i0cf8/scsi@{device:x}/disk@0,0")
}

/// A SCSI device behind the virtio-scsi function in PCI slot `device`: SeaBIOS's glob is
/// `/pci@i0cf8/*@%x/*@0/*@%x,%x` (bootprio_find_scsi_device).
pub fn scsi_pci_boot_path(device: u8, target: u16, lun: u16) -> String {
    format!("/pci@i0cf8/scsi@{device:x}/channel@0/disk@{target:x},{lun:x}")
}

/// `bootorder`: one device path per line, NUL-terminated as QEMU writes it. On microvm disk
/// `i` sits in virtio-mmio slot `i` and SCSI controller `c` in slot `disks + c`
/// (`virtio::attach` attaches disks first, then the controllers, in config order); on `pc`
/// each device sits in the PCI slot [`vireo_vmm_api::pci::slots`] gives it. Network devices have no
/// line: SeaBIOS boots from the network only through a NIC's option ROM, which Vireo's NICs
/// do not have. `None` when nothing is listed (the firmware's own order then).
pub fn bootorder(config: &VmConfig, order: &[BootDevice]) -> Option<Vec<u8>> {
    let disks = config.disks.len();
    let machine = config.machine;
    let pci_slot = |device: VirtioRef| vireo_vmm_api::pci::slot_of(config, device);
    let lines: Vec<String> = order
        .iter()
        .filter_map(|d| match (*d, machine) {
            (BootDevice::Disk { index }, Machine::Microvm) => {
                layout::virtio_mmio_slot(index).map(|(base, _)| mmio_boot_path(base))
            }
            (BootDevice::Disk { index }, Machine::Pc) => {
                pci_slot(VirtioRef::Disk { index }).map(pci_boot_path)
            }
            (BootDevice::Net { .. }, _) => None,
            (
                BootDevice::Scsi {
                    controller,
                    target,
                    lun,
                },
                Machine::Microvm,
            ) => layout::virtio_mmio_slot(crate::virtio::attach::scsi_slot(disks, controller))
                .map(|(base, _)| scsi_mmio_boot_path(base, target, lun)),
            (
                BootDevice::Scsi {
                    controller,
                    target,
                    lun,
                },
                Machine::Pc,
            ) => {
                pci_slot(VirtioRef::Scsi { controller }).map(|d| scsi_pci_boot_path(d, target, lun))
            }
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let mut out = lines.join("\n").into_bytes();
    out.push(0);
    Some(out)
}

/// Legacy key 0x0e (SeaBIOS's `etc/show-boot-menu`) and the file `etc/boot-menu-wait`
/// (LE16 milliseconds, at most 65535) for a timeout; `None` hides the menu.
pub fn boot_menu(timeout_ms: Option<u32>) -> (u16, Option<Vec<u8>>) {
    match timeout_ms {
        Some(ms) => {
            let ms = u16::try_from(ms).unwrap_or(u16::MAX);
            (1, Some(ms.to_le_bytes().to_vec()))
        }
        None => (0, None),
    }
}

/// The ramfb display for the firmware stage: the VGA ROM's bytes and the device behind
/// `etc/ramfb`.
pub struct Ramfb {
    /// SeaBIOS's VGA ROM for ramfb; UEFI firmware has its own driver and takes none.
    pub vga_rom: Option<Vec<u8>>,
    pub hook: Box<dyn FwCfgWriteHook>,
}

/// What the firmware shows its screen on.
pub enum FirmwareDisplay {
    Ramfb(Ramfb),
    /// The standard VGA on PCI; SeaBIOS finds its option ROM by the device's IDs (UEFI
    /// firmware drives the card itself and takes none).
    Vga {
        rom: Option<Vec<u8>>,
    },
}

/// Every fw_cfg item of the firmware machine. `acpi` is what [`crate::acpi::loader::build`]
/// made of the machine's tables (SeaBIOS takes ACPI only that way); `display` is offered only
/// when the machine has one.
pub fn fw_cfg_builder(
    config: &VmConfig,
    fw: &FirmwareConfig,
    bios_size: u64,
    acpi: &LoaderFiles,
    display: Option<FirmwareDisplay>,
) -> Result<FwCfgBuilder, FwCfgError> {
    let mem_size = config.memory_mib << 20;
    let vcpus = u16::from(config.vcpus).to_le_bytes().to_vec();
    let (show_menu, menu_wait) = boot_menu(fw.boot_menu_timeout_ms);
    let nographic = u16::from(config.display.is_none());
    let mut b = FwCfgBuilder::new();
    b.legacy(KEY_RAM_SIZE, mem_size.to_le_bytes().to_vec())?
        .legacy(KEY_NOGRAPHIC, nographic.to_le_bytes().to_vec())?
        .legacy(KEY_NB_CPUS, vcpus.clone())?
        .legacy(KEY_MAX_CPUS, vcpus)?
        .legacy(KEY_BOOT_MENU, show_menu.to_le_bytes().to_vec())?
        // KVM's default routing wires the PIT to IOAPIC pin 0, not 2 as QEMU's does.
        .legacy(KEY_IRQ0_OVERRIDE, vec![0])?;
    b.file("etc/e820", e820(mem_size))?;
    if let Some(order) = bootorder(config, &fw.boot_order) {
        b.file("bootorder", order)?;
    }
    if let Some(wait) = menu_wait {
        b.file("etc/boot-menu-wait", wait)?;
    }
    let blobs = smbios::build(
        &fw.smbios,
        SmbiosMachine {
            name: &config.name,
            bios_size,
        },
    );
    b.file("etc/smbios/smbios-tables", blobs.tables)?;
    b.file("etc/smbios/smbios-anchor", blobs.anchor)?;
    for (name, data) in acpi.named() {
        b.file(name, data.to_vec())?;
    }
    match (&config.display, display) {
        (Some(_), Some(FirmwareDisplay::Ramfb(r))) => {
            if let Some(rom) = r.vga_rom {
                b.file("vgaroms/vgabios-ramfb.bin", rom)?;
            }
            b.writable_file("etc/ramfb", vec![0; RAMFB_CONFIG_SIZE], r.hook)?;
        }
        (Some(_), Some(FirmwareDisplay::Vga { rom: Some(rom) })) => {
            b.file(crate::devices::vga::ROM_NAME, rom)?;
        }
        _ => {}
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FirmwareConfig, SmbiosConfig};

    fn entries(b: &[u8]) -> Vec<(u64, u64, u32)> {
        b.chunks(20)
            .map(|e| {
                (
                    u64::from_le_bytes(e[0..8].try_into().unwrap()),
                    u64::from_le_bytes(e[8..16].try_into().unwrap()),
                    u32::from_le_bytes(e[16..20].try_into().unwrap()),
                )
            })
            .collect()
    }

    #[test]
    fn e820_is_ram_from_zero_and_above_4g() {
        assert_eq!(
            entries(&e820(512 << 20)),
            [(0, 512 << 20, 1), (0xfeff_c000, 0x4000, 2)]
        );
        assert_eq!(
            entries(&e820(4096 << 20)),
            [
                (0, 0xc000_0000, 1),
                (1 << 32, 1 << 30, 1),
                (0xfeff_c000, 0x4000, 2)
            ]
        );
    }

    /// A config with `disks` disks and one virtio-scsi controller, on `machine`.
    fn machine(disks: usize, machine: Machine) -> VmConfig {
        let mut c = VmConfig::minimal("t", "/k".into(), 64, 1);
        c.machine = machine;
        c.disks = (0..disks)
            .map(|i| crate::config::DiskConfig::raw(format!("/d{i}")))
            .collect();
        c.scsi = vec![crate::config::ScsiControllerConfig {
            devices: Vec::new(),
        }];
        c
    }

    #[test]
    fn bootorder_names_disk_slots_as_seabios_globs_them() {
        let order = [
            BootDevice::Disk { index: 1 },
            BootDevice::Net { index: 0 },
            BootDevice::Disk { index: 0 },
        ];
        let b = bootorder(&machine(2, Machine::Microvm), &order).unwrap();
        assert_eq!(
            b,
            b"/virtio-mmio@00000000d8001000/virtio-blk@0\n\
              /virtio-mmio@00000000d8000000/virtio-blk@0\0"
        );
        assert_eq!(
            bootorder(
                &machine(0, Machine::Microvm),
                &[BootDevice::Net { index: 0 }]
            ),
            None
        );
        assert_eq!(bootorder(&machine(0, Machine::Microvm), &[]), None);
    }

    /// SeaBIOS's glob_prefix (boot.c): `*` eats characters up to a `/` or the glob's next
    /// character; the glob matches when it ends where the entry ends or at a `/`.
    fn glob_prefix(glob: &[u8], s: &[u8]) -> bool {
        let (mut g, mut i) = (0, 0);
        loop {
            let gc = glob.get(g).copied().unwrap_or(0);
            let sc = s.get(i).copied().unwrap_or(0);
            if gc == 0 && (sc == 0 || sc == b'/') {
                return true;
            }
            if gc == b'*' {
                if sc == 0 || sc == b'/' || sc == glob.get(g + 1).copied().unwrap_or(0) {
                    g += 1;
                } else {
                    i += 1;
                }
                continue;
            }
            if gc != sc {
                return false;
            }
            g += 1;
            i += 1;
        }
    }

    #[test]
    fn seabios_glob_for_each_slot_matches_only_its_line() {
        let order = [BootDevice::Disk { index: 2 }, BootDevice::Disk { index: 0 }];
        let text = bootorder(&machine(3, Machine::Microvm), &order).unwrap();
        let text = std::str::from_utf8(&text[..text.len() - 1]).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        for (slot, want) in [(2usize, Some(0)), (0, Some(1)), (1, None)] {
            let (base, _) = layout::virtio_mmio_slot(slot).unwrap();
            // What SeaBIOS formats: "/virtio-mmio@%016x/*" of the 32-bit base.
            let glob = format!("/virtio-mmio@{:016x}/*", base as u32);
            let hit = lines
                .iter()
                .position(|l| glob_prefix(glob.as_bytes(), l.as_bytes()));
            assert_eq!(hit, want, "slot {slot}");
        }
    }

    #[test]
    fn on_pc_boot_devices_are_named_by_pci_slot_as_seabios_globs_them() {
        let order = [
            BootDevice::Scsi {
                controller: 0,
                target: 0,
                lun: 1,
            },
            BootDevice::Disk { index: 1 },
        ];
        let b = bootorder(&machine(2, Machine::Pc), &order).unwrap();
        // Disks take slots 3 and 4, the controller 5.
        assert_eq!(
            b,
            b"/pci@i0cf8/scsi@5/channel@0/disk@0,1\n/pci@i0cf8/scsi@4/disk@0,0\0".to_vec()
        );
        for (glob, want) in [
            ("/pci@i0cf8/*@4", Some(1)),
            ("/pci@i0cf8/*@5/*@0/*@0,1", Some(0)),
            ("/pci@i0cf8/*@5/*@0/*@0,0", None),
            ("/pci@i0cf8/*@3", None),
        ] {
            let text = std::str::from_utf8(&b[..b.len() - 1]).unwrap();
            let hit = text
                .lines()
                .position(|l| glob_prefix(glob.as_bytes(), l.as_bytes()));
            assert_eq!(hit, want, "{glob}");
        }
        // A device the config does not have has no path.
        assert_eq!(
            bootorder(&machine(2, Machine::Pc), &[BootDevice::Disk { index: 2 }]),
            None
        );
        // A disk placed by the config is named at its slot.
        let mut placed = machine(2, Machine::Pc);
        placed.pci_slots = vec![vireo_vmm_api::pci::PciSlot {
            device: VirtioRef::Disk { index: 1 },
            slot: 0x1f,
        }];
        assert_eq!(
            bootorder(&placed, &[BootDevice::Disk { index: 1 }]).unwrap(),
            b"/pci@i0cf8/scsi@1f/disk@0,0\0".to_vec()
        );
    }

    #[test]
    fn a_scsi_boot_device_is_named_after_its_controllers_slot_target_and_lun() {
        // Two disks before the controllers: controller 1 is in slot 3.
        let order = [
            BootDevice::Scsi {
                controller: 1,
                target: 0,
                lun: 0x1a,
            },
            BootDevice::Disk { index: 1 },
        ];
        let b = bootorder(&machine(2, Machine::Microvm), &order).unwrap();
        assert_eq!(
            b,
            b"/virtio-mmio@00000000d8003000/channel@0/disk@0,1a\n\
              /virtio-mmio@00000000d8001000/virtio-blk@0\0"
        );
        assert_eq!(
            scsi_mmio_boot_path(0xd800_0000, 255, 16383),
            "/virtio-mmio@00000000d8000000/channel@0/disk@ff,3fff"
        );
    }

    #[test]
    fn seabios_scsi_glob_matches_only_its_own_lun() {
        let order = [
            BootDevice::Scsi {
                controller: 0,
                target: 1,
                lun: 0,
            },
            BootDevice::Scsi {
                controller: 0,
                target: 0,
                lun: 1,
            },
            BootDevice::Disk { index: 0 },
        ];
        let text = bootorder(&machine(1, Machine::Microvm), &order).unwrap();
        let text = std::str::from_utf8(&text[..text.len() - 1]).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        let (scsi, _) = layout::virtio_mmio_slot(1).unwrap();
        let (blk, _) = layout::virtio_mmio_slot(0).unwrap();
        // What virtio-scsi.c asks for each LUN it finds, and what virtio-blk asks.
        let scsi_glob =
            |t: u16, l: u16| format!("/virtio-mmio@{:016x}/*@0/*@{t:x},{l:x}", scsi as u32);
        let cases = [
            (scsi_glob(1, 0), Some(0)),
            (scsi_glob(0, 1), Some(1)),
            (scsi_glob(0, 0), None),
            (scsi_glob(1, 1), None),
            (scsi_glob(0, 0x10), None),
            (format!("/virtio-mmio@{:016x}/*", blk as u32), Some(2)),
        ];
        for (glob, want) in cases {
            let hit = lines
                .iter()
                .position(|l| glob_prefix(glob.as_bytes(), l.as_bytes()));
            assert_eq!(hit, want, "{glob}");
        }
    }

    #[test]
    fn boot_menu_files_follow_the_timeout() {
        assert_eq!(boot_menu(None), (0, None));
        assert_eq!(boot_menu(Some(3000)), (1, Some(vec![0xb8, 0x0b])));
        assert_eq!(boot_menu(Some(1 << 20)).1, Some(vec![0xff, 0xff]));
    }

    struct Sink;
    impl FwCfgWriteHook for Sink {
        fn written(&mut self, _: &[u8]) {}
    }

    fn config(display: bool) -> (VmConfig, FirmwareConfig) {
        let fw = FirmwareConfig {
            loader: "/bios.bin".into(),
            vga_rom: None,
            boot_order: vec![BootDevice::Disk { index: 0 }],
            boot_menu_timeout_ms: Some(2500),
            smbios: SmbiosConfig::default(),
            nvram: None,
        };
        let mut c = VmConfig::minimal_firmware("m", fw.clone(), 256, 2);
        if display {
            c.display = Some(crate::config::DisplayConfig::default());
        }
        (c, fw)
    }

    #[test]
    fn the_machine_lists_its_files_and_ramfb_only_with_a_display() {
        for display in [false, true] {
            let (c, fw) = config(display);
            let ramfb = Ramfb {
                vga_rom: Some(vec![0x55, 0xaa]),
                hook: Box::new(Sink),
            };
            let acpi = crate::acpi::loader::build(&crate::acpi::AcpiConfig {
                vcpus: 2,
                virtio_mmio: Vec::new(),
                pc: None,
            })
            .unwrap();
            let b = fw_cfg_builder(
                &c,
                &fw,
                256 << 10,
                &acpi,
                Some(FirmwareDisplay::Ramfb(ramfb)),
            )
            .unwrap();
            let names: Vec<&str> = b.names().collect();
            let mut want = vec![
                "etc/e820",
                "bootorder",
                "etc/boot-menu-wait",
                "etc/smbios/smbios-tables",
                "etc/smbios/smbios-anchor",
                "etc/table-loader",
                "etc/acpi/tables",
                "etc/acpi/rsdp",
            ];
            if display {
                want.extend(["vgaroms/vgabios-ramfb.bin", "etc/ramfb"]);
            }
            assert_eq!(names, want);
        }
    }
}

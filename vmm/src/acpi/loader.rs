//! The ACPI tables as PC firmware takes them: fw_cfg files plus a BIOS linker/loader script.
//!
//! SeaBIOS does not look for tables a VMM placed in memory. It runs the script in
//! `etc/table-loader`, which allocates `etc/acpi/tables` in high memory and `etc/acpi/rsdp` in
//! the F segment (where it and the OS look for the RSDP), then patches every pointer by adding
//! the address the target file landed at, then recomputes checksums. So every pointer in the
//! blobs holds an offset into its target file, every checksum byte is zero, and each
//! ADD_CHECKSUM comes after the ADD_POINTERs inside the range it covers.
//!
//! The DSDT and MADT are the direct boot's own; the FADT is built by the same function with the
//! same fields, and points at a FACS as well (the firmware owns one: SeaBIOS reads its waking
//! vector, and an OS expects one on a machine that is not hardware-reduced).

use super::{
    facs, fadt, rsdp, rsdt, xsdt, AcpiConfig, AcpiError, MachineTables, FADT_DSDT,
    FADT_FIRMWARE_CTRL, FADT_X_DSDT, RSDP_CHECKSUM, RSDP_EXT_CHECKSUM, RSDP_LEN, RSDP_RSDT,
    RSDP_V1_LEN, RSDP_XSDT, SDT_CHECKSUM, SDT_HEADER_LEN,
};

/// fw_cfg file names, as SeaBIOS and OVMF expect them.
pub const TABLE_LOADER_FILE: &str = "etc/table-loader";
pub const TABLES_FILE: &str = "etc/acpi/tables";
pub const RSDP_FILE: &str = "etc/acpi/rsdp";

/// The largest `etc/acpi/tables` this builder hands out. SeaBIOS allocates it from its high
/// zone, which it shares with its own tables; a full machine needs a few KiB.
pub const TABLES_MAX: usize = 64 * 1024;

/// Every linker/loader command is 128 bytes: a LE32 command, then its arguments.
pub const COMMAND_SIZE: usize = 128;
/// File names in commands are NUL-terminated within 56 bytes.
pub const FILE_NAME_SIZE: usize = 56;

pub const COMMAND_ALLOCATE: u32 = 1;
pub const COMMAND_ADD_POINTER: u32 = 2;
pub const COMMAND_ADD_CHECKSUM: u32 = 3;

/// ALLOCATE zones: anywhere in 32-bit memory, or the F segment below 1 MiB.
pub const ZONE_HIGH: u8 = 1;
pub const ZONE_FSEG: u8 = 2;

/// The FACS must be 64-byte aligned; it sits at offset 0 of the tables file, so the file is.
const TABLES_ALIGN: u32 = 64;
/// The RSDP is found by a scan on 16-byte boundaries.
const RSDP_ALIGN: u32 = 16;

/// The three fw_cfg files that carry the ACPI tables to the firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderFiles {
    /// `etc/acpi/rsdp`
    pub rsdp: Vec<u8>,
    /// `etc/acpi/tables`
    pub tables: Vec<u8>,
    /// `etc/table-loader`
    pub table_loader: Vec<u8>,
}

impl LoaderFiles {
    /// The files with their fw_cfg names, the script first (the order does not matter to the
    /// firmware, which looks them up by name).
    pub fn named(&self) -> [(&'static str, &[u8]); 3] {
        [
            (TABLE_LOADER_FILE, &self.table_loader),
            (TABLES_FILE, &self.tables),
            (RSDP_FILE, &self.rsdp),
        ]
    }
}

/// Builds the firmware's view of the same tables [`super::write_tables`] writes for a direct
/// boot.
pub fn build(cfg: &AcpiConfig) -> Result<LoaderFiles, AcpiError> {
    let MachineTables { madt, dsdt } = MachineTables::new(cfg);
    let mut tables = Tables::default();
    // The FACS has no header checksum and goes first, where the file's alignment is its own.
    let facs_off = tables.place_raw(facs(), TABLES_ALIGN as usize);
    let dsdt = tables.place(dsdt);
    let madt = tables.place(madt);
    let fadt = tables.place(fadt(dsdt.off, Some(facs_off), cfg.pc.map(|pc| pc.pm_base)));
    let sdt_entries = [fadt.off, madt.off];
    let xsdt = tables.place(xsdt(&sdt_entries));
    // The direct boot has only an XSDT; firmware also serves ACPI 1.0 readers (old boot
    // loaders and DOS tools), which follow the RSDT.
    let rsdt = tables.place(rsdt(&sdt_entries.map(|e| e as u32)));
    if tables.bytes.len() > TABLES_MAX {
        return Err(AcpiError::LoaderTooLarge(tables.bytes.len()));
    }

    let mut script = Script::default();
    script.allocate(TABLES_FILE, TABLES_ALIGN, ZONE_HIGH);
    script.checksum(&dsdt);
    script.checksum(&madt);
    for (field, size) in [(FADT_FIRMWARE_CTRL, 4), (FADT_DSDT, 4), (FADT_X_DSDT, 8)] {
        script.add_pointer(TABLES_FILE, fadt.off + field as u64, size, TABLES_FILE);
    }
    script.checksum(&fadt);
    for i in 0..sdt_entries.len() as u64 {
        let entry = SDT_HEADER_LEN as u64;
        script.add_pointer(TABLES_FILE, xsdt.off + entry + 8 * i, 8, TABLES_FILE);
        script.add_pointer(TABLES_FILE, rsdt.off + entry + 4 * i, 4, TABLES_FILE);
    }
    script.checksum(&xsdt);
    script.checksum(&rsdt);

    let mut rsdp = rsdp(rsdt.off as u32, xsdt.off);
    rsdp[RSDP_CHECKSUM] = 0;
    rsdp[RSDP_EXT_CHECKSUM] = 0;
    script.allocate(RSDP_FILE, RSDP_ALIGN, ZONE_FSEG);
    script.add_pointer(RSDP_FILE, RSDP_RSDT as u64, 4, TABLES_FILE);
    script.add_pointer(RSDP_FILE, RSDP_XSDT as u64, 8, TABLES_FILE);
    // The extended checksum covers the first one, so it comes last.
    script.add_checksum(RSDP_FILE, RSDP_CHECKSUM as u64, 0, RSDP_V1_LEN as u64);
    script.add_checksum(RSDP_FILE, RSDP_EXT_CHECKSUM as u64, 0, RSDP_LEN as u64);

    Ok(LoaderFiles {
        rsdp,
        tables: tables.bytes,
        table_loader: script.bytes,
    })
}

/// Where a table with the standard header sits in the tables file.
struct Placed {
    off: u64,
    len: u64,
}

/// The tables file under construction.
#[derive(Default)]
struct Tables {
    bytes: Vec<u8>,
}

impl Tables {
    /// Alignment between tables: none is required but the FACS's; 8 keeps the XSDT's entries
    /// naturally aligned.
    const ALIGN: usize = 8;

    /// Appends `table` at the next multiple of `align`; returns its offset.
    fn place_raw(&mut self, table: Vec<u8>, align: usize) -> u64 {
        let off = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(off, 0);
        self.bytes.extend(table);
        off as u64
    }

    /// Appends a table with the standard header, its checksum byte cleared for the script's
    /// ADD_CHECKSUM to fill in.
    fn place(&mut self, mut table: Vec<u8>) -> Placed {
        table[SDT_CHECKSUM] = 0;
        let len = table.len() as u64;
        let off = self.place_raw(table, Self::ALIGN);
        Placed { off, len }
    }
}

/// The `etc/table-loader` script under construction.
#[derive(Default)]
struct Script {
    bytes: Vec<u8>,
}

impl Script {
    fn command(&mut self, command: u32) -> &mut [u8] {
        let at = self.bytes.len();
        self.bytes.resize(at + COMMAND_SIZE, 0);
        let cmd = &mut self.bytes[at..];
        cmd[0..4].copy_from_slice(&command.to_le_bytes());
        cmd
    }

    /// The header checksum of a table in the tables file.
    fn checksum(&mut self, table: &Placed) {
        let at = table.off;
        self.add_checksum(TABLES_FILE, at + SDT_CHECKSUM as u64, at, table.len);
    }

    fn allocate(&mut self, file: &str, align: u32, zone: u8) {
        let cmd = self.command(COMMAND_ALLOCATE);
        put_name(&mut cmd[4..60], file);
        cmd[60..64].copy_from_slice(&align.to_le_bytes());
        cmd[64] = zone;
    }

    /// Adds `src`'s address to the `size`-byte little-endian value at `offset` in `dest`.
    fn add_pointer(&mut self, dest: &str, offset: u64, size: u8, src: &str) {
        let cmd = self.command(COMMAND_ADD_POINTER);
        put_name(&mut cmd[4..60], dest);
        put_name(&mut cmd[60..116], src);
        cmd[116..120].copy_from_slice(&(offset as u32).to_le_bytes());
        cmd[120] = size;
    }

    /// Subtracts the byte sum of `start..start + len` in `file` from the byte at `offset`.
    fn add_checksum(&mut self, file: &str, offset: u64, start: u64, len: u64) {
        let cmd = self.command(COMMAND_ADD_CHECKSUM);
        put_name(&mut cmd[4..60], file);
        cmd[60..64].copy_from_slice(&(offset as u32).to_le_bytes());
        cmd[64..68].copy_from_slice(&(start as u32).to_le_bytes());
        cmd[68..72].copy_from_slice(&(len as u32).to_le_bytes());
    }
}

/// The names are this module's constants, all shorter than the field, so the NUL fits.
fn put_name(field: &mut [u8], name: &str) {
    let n = name.len().min(FILE_NAME_SIZE - 1);
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acpi::{dsdt, madt, VirtioMmioAcpi};
    use crate::layout;
    use std::collections::HashMap;

    const FADT_X_FIRMWARE_CTRL: usize = 132;

    fn config(vcpus: u8, devices: usize) -> AcpiConfig {
        let virtio_mmio = (0..devices)
            .map(|i| {
                let (base, gsi) = layout::virtio_mmio_slot(i).unwrap();
                VirtioMmioAcpi {
                    base,
                    size: layout::VIRTIO_MMIO_SIZE,
                    gsi,
                }
            })
            .collect();
        AcpiConfig {
            vcpus,
            virtio_mmio,
            pc: None,
        }
    }

    fn le(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    /// A file name field as SeaBIOS reads it: it refuses one without a NUL in its last byte.
    fn name_of(field: &[u8]) -> String {
        assert_eq!(field.len(), FILE_NAME_SIZE);
        assert_eq!(field[FILE_NAME_SIZE - 1], 0, "file name not NUL-terminated");
        let end = field.iter().position(|b| *b == 0).unwrap();
        String::from_utf8(field[..end].to_vec()).unwrap()
    }

    #[derive(Debug)]
    struct Allocation {
        name: String,
        align: u32,
        zone: u8,
    }

    /// What the firmware ends up with: each file at an address, patched.
    struct Loaded {
        files: HashMap<String, (u64, Vec<u8>)>,
        allocations: Vec<Allocation>,
    }

    impl Loaded {
        /// `len` bytes at guest address `addr`, which must lie inside one loaded file.
        fn at(&self, addr: u64, len: usize) -> &[u8] {
            for (base, bytes) in self.files.values() {
                if addr >= *base && addr + len as u64 <= base + bytes.len() as u64 {
                    let off = (addr - base) as usize;
                    return &bytes[off..off + len];
                }
            }
            panic!("{addr:#x}+{len} is in no loaded file");
        }

        /// A table with the standard header at `addr`, its length checked against its file.
        fn table(&self, addr: u64) -> &[u8] {
            let len = le(self.at(addr + 4, 4)) as usize;
            self.at(addr, len)
        }
    }

    /// Runs the script the way SeaBIOS's romfile loader does: each ALLOCATE puts its file at
    /// the next address `place` picks (checked against the asked alignment), ADD_POINTER adds
    /// the source file's address, ADD_CHECKSUM subtracts the range's byte sum. It also checks
    /// what SeaBIOS would reject and that no pointer is patched inside a range that was
    /// already checksummed.
    fn run(files: &LoaderFiles, mut place: impl FnMut(&str, u32) -> u64) -> Loaded {
        let by_name: HashMap<&str, &[u8]> = files.named().into_iter().collect();
        let script = &files.table_loader;
        assert_eq!(script.len() % COMMAND_SIZE, 0);
        let mut loaded = Loaded {
            files: HashMap::new(),
            allocations: Vec::new(),
        };
        let mut summed: Vec<(String, u64, u64)> = Vec::new();
        for cmd in script.chunks(COMMAND_SIZE) {
            match le(&cmd[0..4]) as u32 {
                COMMAND_ALLOCATE => {
                    let name = name_of(&cmd[4..60]);
                    let align = le(&cmd[60..64]) as u32;
                    assert!(align.is_power_of_two(), "align {align}");
                    assert!(!loaded.files.contains_key(&name), "{name} allocated twice");
                    let bytes = by_name.get(name.as_str()).expect("allocated file exists");
                    assert!(!bytes.is_empty());
                    let addr = place(&name, align);
                    assert_eq!(addr % u64::from(align), 0);
                    loaded.files.insert(name.clone(), (addr, bytes.to_vec()));
                    loaded.allocations.push(Allocation {
                        name,
                        align,
                        zone: cmd[64],
                    });
                }
                COMMAND_ADD_POINTER => {
                    let dest = name_of(&cmd[4..60]);
                    let src = name_of(&cmd[60..116]);
                    let offset = le(&cmd[116..120]);
                    let size = cmd[120] as usize;
                    assert!(matches!(size, 1 | 2 | 4 | 8), "pointer size {size}");
                    for (file, start, len) in &summed {
                        assert!(
                            *file != dest
                                || offset + size as u64 <= *start
                                || offset >= start + len,
                            "pointer at {dest}+{offset:#x} patched after the checksum over it"
                        );
                    }
                    let src_addr = loaded.files.get(&src).expect("source allocated first").0;
                    let (_, bytes) = loaded.files.get_mut(&dest).expect("dest allocated first");
                    let field = &mut bytes[offset as usize..offset as usize + size];
                    let value = le(field) + src_addr;
                    if size < 8 {
                        assert!(value >> (size * 8) == 0, "pointer overflows {size} bytes");
                    }
                    field.copy_from_slice(&value.to_le_bytes()[..size]);
                }
                COMMAND_ADD_CHECKSUM => {
                    let file = name_of(&cmd[4..60]);
                    let offset = le(&cmd[60..64]) as usize;
                    let start = le(&cmd[64..68]);
                    let len = le(&cmd[68..72]);
                    let (_, bytes) = loaded.files.get_mut(&file).expect("file allocated first");
                    assert!(offset < bytes.len());
                    let s = sum(&bytes[start as usize..(start + len) as usize]);
                    bytes[offset] = bytes[offset].wrapping_sub(s);
                    summed.push((file, start, len));
                }
                other => panic!("unexpected command {other}"),
            }
        }
        loaded
    }

    /// Loads the files at the given addresses (the tables file's address is the first
    /// multiple of its alignment at or above `high`).
    fn load(files: &LoaderFiles, high: u64, fseg: u64) -> Loaded {
        run(files, |name, align| match name {
            TABLES_FILE => high.next_multiple_of(u64::from(align)),
            RSDP_FILE => fseg.next_multiple_of(u64::from(align)),
            other => panic!("unexpected file {other}"),
        })
    }

    /// Follows the tables from the RSDP the way an OS does and checks each step.
    fn verify(loaded: &Loaded, cfg: &AcpiConfig) {
        let rsdp_addr = loaded.files[RSDP_FILE].0;
        let rsdp = loaded.at(rsdp_addr, RSDP_LEN);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "revision");
        assert_eq!(sum(&rsdp[..RSDP_V1_LEN]), 0, "RSDP checksum");
        assert_eq!(sum(rsdp), 0, "RSDP extended checksum");

        let xsdt = loaded.table(le(&rsdp[RSDP_XSDT..RSDP_XSDT + 8]));
        let rsdt = loaded.table(le(&rsdp[RSDP_RSDT..RSDP_RSDT + 4]));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(&rsdt[..4], b"RSDT");
        let x_entries: Vec<u64> = xsdt[36..].chunks(8).map(le).collect();
        let r_entries: Vec<u64> = rsdt[36..].chunks(4).map(le).collect();
        assert_eq!(x_entries, r_entries, "RSDT and XSDT list the same tables");

        let mut by_sig = HashMap::new();
        for addr in [
            le(&rsdp[RSDP_XSDT..RSDP_XSDT + 8]),
            le(&rsdp[RSDP_RSDT..RSDP_RSDT + 4]),
        ]
        .into_iter()
        .chain(x_entries.iter().copied())
        {
            let t = loaded.table(addr);
            assert_eq!(
                sum(t),
                0,
                "checksum of {}",
                String::from_utf8_lossy(&t[..4])
            );
            by_sig.insert(t[..4].to_vec(), addr);
        }

        let fadt_addr = by_sig[&b"FACP".to_vec()];
        let fadt_t = loaded.table(fadt_addr);
        let dsdt_addr = le(&fadt_t[FADT_DSDT..FADT_DSDT + 4]);
        assert_eq!(dsdt_addr, le(&fadt_t[FADT_X_DSDT..FADT_X_DSDT + 8]));
        let facs_addr = le(&fadt_t[FADT_FIRMWARE_CTRL..FADT_FIRMWARE_CTRL + 4]);
        assert_eq!(
            le(&fadt_t[FADT_X_FIRMWARE_CTRL..FADT_X_FIRMWARE_CTRL + 8]),
            0,
            "X_FIRMWARE_CTRL must be zero when FIRMWARE_CTRL is set"
        );
        assert_eq!(facs_addr % 64, 0, "FACS alignment");
        let facs_t = loaded.table(facs_addr);
        assert_eq!(&facs_t[..4], b"FACS");
        assert_eq!(facs_t.len(), 64);

        // One machine: the tables are the direct boot's, byte for byte, at their new places.
        let dsdt_t = loaded.table(dsdt_addr);
        assert_eq!(sum(dsdt_t), 0, "DSDT checksum");
        assert_eq!(dsdt_t, dsdt(cfg).as_slice());
        assert_eq!(fadt_t, fadt(dsdt_addr, Some(facs_addr), None).as_slice());
        assert_eq!(
            loaded.table(by_sig[&b"APIC".to_vec()]),
            madt(cfg.vcpus).as_slice()
        );

        // What SeaBIOS's DSDT parser looks for: each device's HID and its Memory32Fixed window.
        let hids = dsdt_t.windows(8).filter(|w| w == b"LNRO0005").count();
        assert_eq!(hids, cfg.virtio_mmio.len());
        for v in &cfg.virtio_mmio {
            let mut window = vec![0x86, 9, 0, 1];
            window.extend_from_slice(&(v.base as u32).to_le_bytes());
            window.extend_from_slice(&(v.size as u32).to_le_bytes());
            assert!(
                dsdt_t.windows(window.len()).any(|w| w == window),
                "no _CRS window for {:#x}",
                v.base
            );
        }
    }

    #[test]
    fn the_script_links_the_direct_boots_tables() {
        for cfg in [
            config(1, 0),
            config(2, 3),
            config(8, layout::VIRTIO_MMIO_MAX),
        ] {
            let files = build(&cfg).unwrap();
            // Two placements, so a pointer left unpatched or patched twice cannot pass by luck.
            for (high, fseg) in [(0x7ffd_f000, 0xf_5a30), (0xbfe0_0040, 0xf_0000)] {
                verify(&load(&files, high, fseg), &cfg);
            }
        }
    }

    #[test]
    fn files_go_to_their_zones_with_their_alignment() {
        let files = build(&config(4, 2)).unwrap();
        let loaded = load(&files, 0x7ffd_f040, 0xf_5a30);
        let allocs: Vec<(&str, u32, u8)> = loaded
            .allocations
            .iter()
            .map(|a| (a.name.as_str(), a.align, a.zone))
            .collect();
        assert_eq!(
            allocs,
            [(TABLES_FILE, 64, ZONE_HIGH), (RSDP_FILE, 16, ZONE_FSEG)]
        );
        assert_eq!(
            files.rsdp.len(),
            RSDP_LEN,
            "the F segment holds only the RSDP"
        );
        // Placed at an address that is only 64-aligned, the FACS must still be.
        let (base, _) = loaded.files[TABLES_FILE];
        assert_eq!(base % 128, 64);
        assert_eq!(&files.tables[..4], b"FACS");
    }

    #[test]
    fn blobs_carry_offsets_and_no_checksums() {
        let files = build(&config(2, 1)).unwrap();
        // Before the loader runs, the RSDP points into the tables file by offset.
        let xsdt_off = le(&files.rsdp[RSDP_XSDT..RSDP_XSDT + 8]) as usize;
        assert_eq!(&files.tables[xsdt_off..xsdt_off + 4], b"XSDT");
        assert_eq!(files.tables[xsdt_off + SDT_CHECKSUM], 0);
        assert_eq!(files.rsdp[RSDP_CHECKSUM], 0);
        assert_eq!(files.rsdp[RSDP_EXT_CHECKSUM], 0);
    }

    #[test]
    fn the_firmware_fadt_differs_from_the_direct_one_only_in_its_facs_pointer() {
        let direct = fadt(0x1234, None, None);
        let firmware = fadt(0x1234, Some(0x40), None);
        let differ: Vec<usize> = (0..direct.len())
            .filter(|i| direct[*i] != firmware[*i])
            .collect();
        assert_eq!(differ, [SDT_CHECKSUM, FADT_FIRMWARE_CTRL]);
        // Full ACPI, not hardware-reduced: the 8259s stay in use.
        let flags = le(&firmware[112..116]);
        assert_eq!(flags & (1 << 20), 0);
    }

    #[test]
    fn too_many_devices_is_an_error() {
        let mut cfg = config(1, 1);
        cfg.virtio_mmio = vec![cfg.virtio_mmio[0]; 2000];
        assert!(matches!(build(&cfg), Err(AcpiError::LoaderTooLarge(_))));
    }
}

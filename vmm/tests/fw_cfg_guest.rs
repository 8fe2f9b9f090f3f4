//! A tiny guest on the local /dev/kvm reads fw_cfg as SeaBIOS does: the signature and the
//! file directory through the ports (byte by byte and with `rep insb`), then the directory and a file through DMA. The device
//! carries the firmware machine's real files; the guest is direct-boot code (real-mode firmware
//! does not run on every host), so the VM is built in-process with fw_cfg added to its bus.

mod tiny;

use std::time::{Duration, Instant};
use tiny::{asm, pvh_elf, tempdir};
use vireo_vmm::acpi::AcpiConfig;
use vireo_vmm::boot::firmware_files::fw_cfg_builder;
use vireo_vmm::config::{BootDevice, FirmwareConfig, SmbiosConfig, VmConfig};
use vireo_vmm::devices::fw_cfg::{self, FwCfg};
use vireo_vmm::lifecycle::ExitReason;
use vireo_vmm::vm::Vm;
use vm_memory::{Bytes, GuestAddress};

const SIG_AT: u32 = 0x30_0000;
const SIG_REP_AT: u32 = 0x30_0080;
const DIR_PORT_AT: u32 = 0x30_0100;
const ACCESS_AT: u32 = 0x31_0000;
const DIR_DMA_AT: u32 = 0x32_0000;
const FILE_DMA_AT: u32 = 0x33_0000;
const DIR_BYTES: u32 = 4 + 3 * 64;

/// in al, dx; mov [at], al
fn in_byte_to(at: u32) -> Vec<u8> {
    let mut v = vec![0xec, 0xa2];
    v.extend(at.to_le_bytes());
    v
}

fn select(key: u16) -> Vec<u8> {
    let mut v = asm::mov_dx(fw_cfg::SELECTOR_PORT);
    v.extend([0x66, 0xb8]);
    v.extend(key.to_le_bytes()); // mov ax, key
    v.extend([0x66, 0xef]); // out dx, ax
    v
}

/// A FWCfgDmaAccess at ACCESS_AT (big-endian fields), started through both register halves.
fn dma(control: u32, len: u32, dst: u32) -> Vec<u8> {
    let be = |x: u32| u32::from_le_bytes(x.to_be_bytes());
    let mut v = asm::store(ACCESS_AT, be(control));
    v.extend(asm::store(ACCESS_AT + 4, be(len)));
    v.extend(asm::store(ACCESS_AT + 8, 0));
    v.extend(asm::store(ACCESS_AT + 12, be(dst)));
    v.extend(asm::mov_dx(fw_cfg::DMA_PORT));
    v.extend([0xb8, 0, 0, 0, 0, 0xef]); // mov eax, 0; out dx, eax
    v.extend(asm::mov_dx(fw_cfg::DMA_PORT + 4));
    v.push(0xb8);
    v.extend(be(ACCESS_AT).to_le_bytes()); // mov eax, BE(ACCESS_AT)
    v.push(0xef);
    v
}

#[test]
fn guest_reads_signature_directory_and_a_file_through_ports_and_dma() {
    let dir = tempdir("fw-cfg-guest");
    let mut code = select(0);
    code.extend(asm::mov_dx(fw_cfg::DATA_PORT));
    for i in 0..4 {
        code.extend(in_byte_to(SIG_AT + i));
    }
    // Again as SeaBIOS reads fw_cfg without DMA: one `rep insb` of four bytes.
    code.extend(select(0));
    code.extend(asm::mov_dx(fw_cfg::DATA_PORT));
    code.push(0xbf);
    code.extend(SIG_REP_AT.to_le_bytes()); // mov edi, SIG_REP_AT
    code.extend([0xb9, 4, 0, 0, 0, 0xfc, 0xf3, 0x6c]); // mov ecx, 4; cld; rep insb
    code.extend(select(0x19));
    code.extend(asm::mov_dx(fw_cfg::DATA_PORT));
    for i in 0..DIR_BYTES {
        code.extend(in_byte_to(DIR_PORT_AT + i));
    }
    // SELECT | READ of the directory, then of the second file (bootorder).
    code.extend(dma((0x19 << 16) | 0x0a, DIR_BYTES, DIR_DMA_AT));
    code.extend(dma((0x21 << 16) | 0x0a, 0x100, FILE_DMA_AT));
    code.extend(asm::poweroff());
    let kernel = dir.join("guest.elf");
    std::fs::write(&kernel, pvh_elf(&code)).unwrap();

    let mut config = VmConfig::minimal("fwcfg", kernel, 16, 1);
    config.seccomp = false;
    config.boot_marker = false;
    config.serial.log = Some(dir.join("serial.log"));
    let fw = FirmwareConfig {
        loader: "/unused".into(),
        vga_rom: None,
        boot_order: vec![BootDevice::Disk { index: 0 }],
        boot_menu_timeout_ms: None,
        smbios: SmbiosConfig::default(),
        nvram: None,
    };
    let acpi = vireo_vmm::acpi::loader::build(&AcpiConfig {
        vcpus: 1,
        virtio_mmio: Vec::new(),
        pc: None,
    })
    .unwrap();
    let items = fw_cfg_builder(&config, &fw, 256 << 10, &acpi, None).unwrap();
    let names: Vec<String> = items.names().map(String::from).collect();
    let mut vm = Vm::new(config, Instant::now()).unwrap();
    let dev = std::sync::Arc::new(std::sync::Mutex::new(FwCfg::new(items, vm.mem.clone())));
    vm.pio_bus
        .insert(dev.clone(), fw_cfg::SELECTOR_PORT.into(), fw_cfg::PORTS_LEN)
        .unwrap();
    vm.pio_bus
        .insert(dev.clone(), fw_cfg::DMA_PORT.into(), fw_cfg::DMA_LEN)
        .unwrap();
    vm.load().unwrap();
    let threads = vm.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while vm.exit.reason().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(vm.exit.reason(), Some(ExitReason::Poweroff));
    let _ = vm.run.pause(&threads, Duration::from_secs(2));

    let read = |at: u32, n: u32| {
        let mut b = vec![0u8; n as usize];
        vm.mem.read_slice(&mut b, GuestAddress(at.into())).unwrap();
        b
    };
    assert_eq!(read(SIG_AT, 4), b"QEMU");
    assert_eq!(
        read(SIG_REP_AT, 4),
        b"QEMU",
        "a string read is four 1-byte reads"
    );
    let by_port = read(DIR_PORT_AT, DIR_BYTES);
    assert_eq!(
        u32::from_be_bytes(by_port[..4].try_into().unwrap()) as usize,
        names.len()
    );
    for (i, name) in names.iter().take(3).enumerate() {
        let e = &by_port[4 + 64 * i..4 + 64 * (i + 1)];
        assert_eq!(u16::from_be_bytes([e[4], e[5]]), 0x20 + i as u16);
        assert_eq!(&e[8..8 + name.len()], name.as_bytes());
    }
    assert_eq!(
        read(DIR_DMA_AT, DIR_BYTES),
        by_port,
        "DMA reads what the ports read"
    );
    assert_eq!(names[1], "bootorder");
    let want = b"/virtio-mmio@00000000d8000000/virtio-blk@0\0";
    let got = read(FILE_DMA_AT, 0x100);
    assert_eq!(&got[..want.len()], want);
    assert!(
        got[want.len()..].iter().all(|&b| b == 0),
        "zero-filled past the file"
    );
    let mut ctl = [0u8; 4];
    vm.mem
        .read_slice(&mut ctl, GuestAddress(ACCESS_AT.into()))
        .unwrap();
    assert_eq!(ctl, [0; 4], "DMA completed without error");
    let _ = std::fs::remove_dir_all(dir);
}

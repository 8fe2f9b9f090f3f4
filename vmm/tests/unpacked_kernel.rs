//! A bzImage booted from its payload unpacked ahead of time (`kernel_unpacked`), on the local
//! /dev/kvm: the VMM loads the ELF at its physical address, builds the zero page from the
//! bzImage's setup header and enters the ELF's entry point in 64-bit mode with RSI pointing at
//! it, as the bzImage's decompressor would. The guest checks the zero page and says so.

mod tiny;

use serde_json::json;
use std::time::Duration;

/// Where the unpacked kernel is linked, as x86-64 Linux is (LOAD_PHYSICAL_ADDR).
const VMLINUX_ADDR: u64 = 0x100_0000;

/// A bzImage with a valid 64-bit setup header whose own code only halts: entering it instead of
/// the unpacked kernel prints nothing.
fn bzimage() -> Vec<u8> {
    let mut f = vec![0u8; 1024 + 4096];
    f[0x1f1] = 1; // setup_sects: the protected-mode part starts at 1024
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x200] = 0xeb;
    f[0x201] = 0x66; // the jump over the header: its length
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    f[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // XLF_KERNEL_64
    f[0x260..0x264].copy_from_slice(&0x10_0000u32.to_le_bytes()); // init_size
    for b in &mut f[1024..] {
        *b = 0xf4; // hlt
    }
    f
}

/// 64-bit code in an ELF without a PVH note, one PT_LOAD at [`VMLINUX_ADDR`].
fn vmlinux(code: &[u8]) -> Vec<u8> {
    let code_off = 64u64 + 56;
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&62u16.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&VMLINUX_ADDR.to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&7u32.to_le_bytes());
    for v in [
        code_off,
        VMLINUX_ADDR,
        VMLINUX_ADDR,
        code.len() as u64,
        code.len() as u64,
        16,
    ] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

fn print(s: &str) -> Vec<u8> {
    let mut v = vec![0x66, 0xba, 0xf8, 0x03]; // mov dx, 0x3f8
    for b in s.bytes() {
        v.extend([0xb0, b, 0xee]); // mov al, b; out dx, al
    }
    v
}

/// Prints OK when [rsi + 0x202] is the zero page's "HdrS" and [rsi + 0x1fe] its boot flag.
fn check_zero_page() -> Vec<u8> {
    let ok = [print("UNPACKED-OK\n"), vec![0xfa, 0xf4, 0xeb, 0xfd]].concat();
    let bad = [print("UNPACKED-BAD\n"), vec![0xfa, 0xf4, 0xeb, 0xfd]].concat();
    let mut v = Vec::new();
    // cmp dword [rsi + 0x202], "HdrS"
    v.extend([0x81, 0xbe, 0x02, 0x02, 0x00, 0x00]);
    v.extend(0x5372_6448u32.to_le_bytes());
    let jne_over_next = v.len();
    v.extend([0x75, 0x00]);
    // cmp word [rsi + 0x1fe], 0xaa55
    v.extend([0x66, 0x81, 0xbe, 0xfe, 0x01, 0x00, 0x00, 0x55, 0xaa]);
    let jne_to_bad = v.len();
    v.extend([0x75, 0x00]);
    v.extend(&ok);
    let bad_at = v.len();
    v.extend(&bad);
    v[jne_over_next + 1] = (bad_at - (jne_over_next + 2)) as u8;
    v[jne_to_bad + 1] = (bad_at - (jne_to_bad + 2)) as u8;
    v
}

#[test]
fn an_unpacked_kernel_is_entered_in_64_bit_mode_with_the_bzimage_zero_page() {
    let vm_dir = tiny::tempdir("unpacked");
    let bz = vm_dir.join("vmlinuz");
    let elf = vm_dir.join("vmlinux");
    std::fs::write(&bz, bzimage()).unwrap();
    std::fs::write(&elf, vmlinux(&check_zero_page())).unwrap();
    let serial_log = vm_dir.join("serial.log");
    let cfg = json!({
        "version": 1, "name": "unpacked", "memory_mib": 32, "vcpus": 1,
        "kernel": bz, "kernel_unpacked": elf, "cmdline": "console=ttyS0",
        "serial": {"log": serial_log},
        "input": {"keyboard": false, "tablet": false},
    });
    let mut vm = tiny::Vmm::start_with_config(vm_dir, cfg, serial_log);
    let up = vm.wait_serial(b"UNPACKED-", Duration::from_secs(20));
    let out = String::from_utf8_lossy(&vm.serial()).into_owned();
    let _ = vm.child.kill();
    let _ = vm.child.wait();
    assert!(up, "the unpacked kernel printed nothing: {out:?}");
    assert!(out.contains("UNPACKED-OK"), "{out:?}");
}

#[test]
fn an_unpacked_kernel_needs_a_bzimage() {
    let vm_dir = tiny::tempdir("unpacked-elf");
    let elf = vm_dir.join("vmlinux");
    std::fs::write(&elf, vmlinux(&check_zero_page())).unwrap();
    let pvh = vm_dir.join("pvh.elf");
    std::fs::write(&pvh, tiny::pvh_elf(&tiny::asm::spin())).unwrap();
    let serial_log = vm_dir.join("serial.log");
    let cfg = json!({
        "version": 1, "name": "unpacked-elf", "memory_mib": 32, "vcpus": 1,
        "kernel": pvh, "kernel_unpacked": elf,
        "serial": {"log": serial_log},
        "input": {"keyboard": false, "tablet": false},
    });
    let mut vm = tiny::Vmm::start_with_config(vm_dir, cfg, serial_log);
    let (status, err) = vm.wait(Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        err.contains("an unpacked kernel goes with a bzImage"),
        "{err}"
    );
}

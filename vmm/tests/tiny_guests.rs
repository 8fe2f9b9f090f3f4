//! Device and lifecycle tests with tiny hand-written guests on the local /dev/kvm, driving the
//! real `vireo-vmm` binary.

mod tiny;

use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};
use tiny::{asm, Vmm};

const T: Duration = Duration::from_secs(20);

fn code(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn serial_output_reaches_the_log_and_s5_powers_off() {
    let mut vm = Vmm::start(
        "serial",
        &code(&[asm::print("hello from the guest\n"), asm::poweroff()]),
        |_| {},
    );
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(err.contains("VM ended: poweroff"), "stderr: {err}");
    assert_eq!(vm.serial(), b"hello from the guest\n");
}

#[test]
fn i8042_delivers_scancodes_and_acks_led_commands() {
    let guest = vec![
        0xb0, 0xed, 0xe6, 0x60, // mov al, 0xed; out 0x60, al   (set LEDs)
        0xb0, 0x04, 0xe6, 0x60, // mov al, 4;    out 0x60, al   (caps lock)
        // wait: in al, 0x64; test al, 1; jz wait
        0xe4, 0x64, 0xa8, 0x01, 0x74, 0xfa, //
        0xe4, 0x60, // in al, 0x60
        0x66, 0xba, 0xf8, 0x03, 0xee, // mov dx, 0x3f8; out dx, al
        0xeb, 0xf1, // jmp wait
    ];
    let mut vm = Vmm::start("i8042", &guest, |_| {});
    let mut c = vm.connect();
    assert!(
        vm.wait_serial(&[0xfa, 0xfa], T),
        "no ACKs for the LED command: {:x?}",
        vm.serial()
    );
    let r = c.execute("send-text", json!({"text": "a"}));
    assert_eq!(r["return"], json!({}), "{r}");
    assert!(
        vm.wait_serial(&[0xfa, 0xfa, 0x1e, 0x9e], T),
        "scancodes not read: {:x?}",
        vm.serial()
    );
    let r = c.execute("send-scancodes", json!({"codes": [0x30, 0xb0]}));
    assert_eq!(r["return"], json!({}), "{r}");
    assert!(
        vm.wait_serial(&[0x1e, 0x9e, 0x30, 0xb0], T),
        "{:x?}",
        vm.serial()
    );
    let bad = c.execute("send-scancodes", json!({"codes": [300]}));
    assert_eq!(bad["error"]["class"], "GenericError", "{bad}");
    c.execute("quit", json!({}));
    let (st, _) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
}

#[test]
fn i8042_reset_line_is_a_reboot() {
    let mut vm = Vmm::start(
        "reset",
        &code(&[vec![0xb0, 0xfe, 0xe6, 0x64], asm::hang()]),
        |_| {},
    );
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(2), "stderr: {err}");
    assert!(err.contains("VM ended: reboot"), "stderr: {err}");
}

#[test]
fn fadt_reset_register_is_a_reboot() {
    let mut vm = Vmm::start(
        "cf9",
        &code(&[
            asm::mov_dx(0xcf9),
            asm::mov_al(6),
            asm::OUT_DX_AL.to_vec(),
            asm::hang(),
        ]),
        |_| {},
    );
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(2), "stderr: {err}");
}

#[test]
fn triple_fault_is_reported_as_a_crash() {
    // ud2 with an empty IDT: #UD -> #GP -> #DF -> shutdown.
    let mut vm = Vmm::start("triple", &[0x0f, 0x0b], |_| {});
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(3), "stderr: {err}");
    assert!(
        err.contains("guest crashed") && err.contains("triple fault"),
        "stderr: {err}"
    );
}

#[test]
fn wild_mmio_and_bad_ports_do_not_kill_the_vmm() {
    let guest = code(&[
        vec![0xc7, 0x05, 0x00, 0x00, 0x00, 0xe0, 0x01, 0x00, 0x00, 0x00], // mov dword [0xe0000000], 1
        vec![0xa1, 0x00, 0x10, 0x00, 0xe0],                               // mov eax, [0xe0001000]
        vec![0xc7, 0x05, 0x00, 0x00, 0x00, 0xd8, 0xff, 0xff, 0xff, 0xff], // virtio window, no device
        vec![0xe6, 0x99, 0xe4, 0x99], // out 0x99, al; in al, 0x99
        vec![0x66, 0xba, 0xff, 0x03, 0x66, 0xef], // out 0x3ff, ax (odd width)
        asm::print("survived\n"),
        asm::poweroff(),
    ]);
    let mut vm = Vmm::start("wild", &guest, |_| {});
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(
        vm.serial().ends_with(b"survived\n"),
        "{:?}",
        String::from_utf8_lossy(&vm.serial())
    );
    assert!(err.contains("MMIO write 0xe0000000"), "stderr: {err}");
}

#[test]
fn boot_marker_port_and_mmio_are_timed() {
    let guest = code(&[
        asm::mov_dx(0x3f0),
        asm::mov_al(0x7b),
        asm::OUT_DX_AL.to_vec(),
        vec![0xc7, 0x05, 0x00, 0x00, 0x00, 0xdf, 0x34, 0x12, 0x00, 0x00], // mov dword [0xdf000000], 0x1234
        asm::spin(),
    ]);
    let mut vm = Vmm::start("marker", &guest, |_| {});
    let mut c = vm.connect();
    let deadline = Instant::now() + T;
    let marks = loop {
        let s = c.execute("status", json!({}));
        let marks = s["return"]["boot_marks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if marks.len() >= 2 || Instant::now() > deadline {
            break marks;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(marks.len(), 2, "{marks:?}");
    assert_eq!(marks[0]["value"], 0x7b);
    assert_eq!(marks[1]["value"], 0x1234);
    let ms = marks[0]["ms"].as_f64().unwrap();
    assert!(ms > 0.0 && ms < 20_000.0, "{ms}");
    c.execute("quit", json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
    assert!(err.contains("boot marker 0x7b at"), "stderr: {err}");
}

#[test]
fn power_button_reaches_a_polling_guest() {
    let guest = code(&[
        asm::mov_dx(0x602),
        vec![0x66, 0xb8, 0x00, 0x01, 0x66, 0xef], // PM1_EN <- PWRBTN_EN
        asm::print("ready\n"),
        asm::mov_dx(0x600),
        vec![0x66, 0xed, 0xf6, 0xc4, 0x01, 0x74, 0xf9], // wait: in ax, dx; test ah, 1; jz wait
        vec![0x66, 0xef],                               // PM1_STS <- PWRBTN_STS (clear)
        asm::print("button\n"),
        asm::poweroff(),
    ]);
    let mut vm = Vmm::start("pwrbtn", &guest, |_| {});
    let mut c = vm.connect();
    assert!(vm.wait_serial(b"ready\n", T));
    assert_eq!(c.execute("power-down", json!({}))["return"], json!({}));
    assert!(c.wait_event("poweroff").is_some(), "events: {:?}", c.events);
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(vm.serial().ends_with(b"ready\nbutton\n"));
}

#[test]
fn rtc_reads_the_host_year() {
    let guest = code(&[
        vec![0xb0, 0x32, 0xe6, 0x70, 0xe4, 0x71], // century
        asm::mov_dx(0x3f8),
        asm::OUT_DX_AL.to_vec(),
        vec![0xb0, 0x09, 0xe6, 0x70, 0xe4, 0x71], // year
        asm::OUT_DX_AL.to_vec(),
        asm::poweroff(),
    ]);
    let mut vm = Vmm::start("rtc", &guest, |_| {});
    let (st, _) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
    let s = vm.serial();
    let bcd = |b: u8| i32::from(b >> 4) * 10 + i32::from(b & 0xf);
    let year = bcd(s[0]) * 100 + bcd(s[1]);
    let host_year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952) as i32;
    assert!(
        (year - host_year).abs() <= 1,
        "guest year {year}, host about {host_year}"
    );
}

/// Spins, printing a '.' every 2^16 iterations.
fn ticker() -> Vec<u8> {
    code(&[
        asm::mov_dx(0x3f8),
        asm::mov_al(b'.'),
        // loop: inc ecx; test cx, 0xffff; jnz loop; out dx, al; jmp loop
        vec![
            0x41, 0x66, 0xf7, 0xc1, 0xff, 0xff, 0x75, 0xf8, 0xee, 0xeb, 0xf5,
        ],
    ])
}

#[test]
fn control_status_pause_resume_quit_with_two_clients() {
    let mut vm = Vmm::start("control", &ticker(), |_| {});
    let mut a = vm.connect();
    let mut b = vm.connect();
    assert_eq!(a.greeting["vireo"]["protocol"], 1);
    let s = a.execute("status", json!({}));
    assert_eq!(s["return"]["state"], "running", "{s}");
    assert_eq!(s["return"]["vcpus"], 1);
    assert!(vm.wait_serial(b"..", T), "guest makes no progress");

    assert_eq!(a.execute("pause", json!({}))["return"], json!({}));
    assert_eq!(
        b.wait_event("state-changed").unwrap()["data"]["state"],
        "paused"
    );
    assert_eq!(b.execute("status", json!({}))["return"]["state"], "paused");
    let before = vm.serial().len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(vm.serial().len(), before, "guest ran while paused");
    assert_eq!(
        a.execute("pause", json!({}))["error"]["class"],
        "InvalidState"
    );

    assert_eq!(b.execute("resume", json!({}))["return"], json!({}));
    assert!(
        vm.wait_serial(&vec![b'.'; before + 2], T),
        "guest did not resume"
    );
    assert_eq!(
        a.execute("bogus", json!({}))["error"]["class"],
        "CommandNotFound"
    );
    writeln!(a.writer, "not json").unwrap();
    assert_eq!(a.read_msg().unwrap()["error"]["class"], "ParseError");

    assert_eq!(b.execute("quit", json!({}))["return"], json!({}));
    let ev = a.wait_event("shutdown").expect("shutdown event");
    assert_eq!(ev["data"]["reason"], "quit");
    let (st, _) = vm.wait(T);
    assert_eq!(st.code(), Some(0));
    assert!(!vm.control.exists(), "control socket left behind");
}

#[test]
fn console_socket_replays_backlog_and_types_into_the_uart() {
    let guest = code(&[
        asm::print("before-attach\n"),
        // wait for a byte and read it; inc al; out dx, al; jmp back to the wait
        asm::wait_serial_byte(),
        vec![0xfe, 0xc0, 0xee, 0xeb, 0xed],
    ]);
    let vm = Vmm::start("console", &guest, |_| {});
    assert!(vm.wait_serial(b"before-attach\n", T));
    let sock = vm.dir.join("console.sock");
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 14];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(buf, b"before-attach\n");
    s.write_all(b"HAL").unwrap();
    let mut echo = [0u8; 3];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"IBM");
}

fn run_with_config(cfg: serde_json::Value, tag: &str) -> (Option<i32>, String) {
    let dir = tiny::tempdir(tag);
    let p = dir.join("vm.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vireo-vmm"))
        .arg("--config")
        .arg(&p)
        .arg("--control")
        .arg(dir.join("c.sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(err: &str) -> &str {
    assert_eq!(
        err.lines().count(),
        1,
        "expected one error line, got:\n{err}"
    );
    err.trim_end()
}

#[test]
fn bad_configs_give_one_clear_line() {
    let dir = tiny::tempdir("badcfg");
    let not_kernel = dir.join("notes.txt");
    std::fs::write(
        &not_kernel,
        "just some text, certainly not a kernel image\n".repeat(40),
    )
    .unwrap();
    let good = dir.join("k.elf");
    std::fs::write(&good, tiny::pvh_elf(&asm::poweroff())).unwrap();
    let base = |kernel: &std::path::Path, mem: u64, vcpus: u32| json!({"version": 1, "name": "bad", "memory_mib": mem, "vcpus": vcpus, "kernel": kernel});

    let (code, err) = run_with_config(base(&dir.join("missing"), 64, 1), "b1");
    assert_eq!(code, Some(1));
    assert!(
        one_line(&err).contains("kernel:") && err.contains("No such file"),
        "{err}"
    );

    let (code, err) = run_with_config(base(&not_kernel, 64, 1), "b2");
    assert_eq!(code, Some(1));
    assert!(one_line(&err).contains("not a Linux kernel"), "{err}");

    let (code, err) = run_with_config(base(&good, 0, 1), "b3");
    assert_eq!(code, Some(1));
    assert!(one_line(&err).contains("memory_mib"), "{err}");

    let (code, err) = run_with_config(base(&good, 64, 255), "b4");
    assert_eq!(code, Some(1));
    assert!(one_line(&err).contains("vcpus"), "{err}");

    let mut unknown = base(&good, 64, 1);
    unknown["colour"] = json!("blue");
    let (code, err) = run_with_config(unknown, "b5");
    assert_eq!(code, Some(1));
    assert!(one_line(&err).contains("unknown field `colour`"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_kvm_permission_says_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/kvm")
        .expect("/dev/kvm")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o006,
        0,
        "/dev/kvm is world-accessible here; this test needs it not to be"
    );
    let dir = tiny::tempdir("perm");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let k = dir.join("k.elf");
    std::fs::write(&k, tiny::pvh_elf(&asm::poweroff())).unwrap();
    let p = dir.join("vm.json");
    std::fs::write(
        &p,
        json!({"name": "p", "memory_mib": 16, "vcpus": 1, "kernel": k}).to_string(),
    )
    .unwrap();
    let bin = dir.join("vireo-vmm");
    std::fs::copy(env!("CARGO_BIN_EXE_vireo-vmm"), &bin).unwrap();
    for f in [&k, &p, &bin] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("--config")
        .arg(&p)
        .arg("--control")
        .arg(dir.join("c.sock"))
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        one_line(&err).contains("permission denied") && err.contains("kvm"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_thread_runs_under_a_seccomp_filter() {
    let mut vm = Vmm::start("seccomp", &code(&[asm::print("up\n"), asm::spin()]), |_| {});
    let mut c = vm.connect();
    assert!(vm.wait_serial(b"up\n", T));
    // The console listener thread exists once a client could attach.
    let _console = UnixStream::connect(vm.dir.join("console.sock")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = vm.child.id();
    let mut seen = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm"))
            .unwrap()
            .trim()
            .to_owned();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let mode = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(str::trim)
            .unwrap_or("?")
            .to_owned();
        seen.push((comm, mode));
    }
    for (comm, mode) in &seen {
        assert_eq!(mode, "2", "thread {comm} is not filtered: {seen:?}");
    }
    assert!(seen.iter().any(|(c, _)| c == "vcpu0"), "{seen:?}");
    assert!(seen.iter().any(|(c, _)| c == "serial-console"), "{seen:?}");
    assert!(seen.iter().any(|(c, _)| c == "rtc-timer"), "{seen:?}");
    // Still fully working under the filters.
    assert_eq!(c.execute("pause", json!({}))["return"], json!({}));
    assert_eq!(c.execute("resume", json!({}))["return"], json!({}));
    c.execute("quit", json!({}));
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "{err}");
}

#[test]
fn memory_above_the_mmio_hole_and_several_vcpus_start() {
    // 5 GiB: RAM is split around the 32-bit MMIO hole; 3 vCPUs (the APs wait for INIT/SIPI
    // that never comes, which is fine: the BSP powers off).
    let mut vm = Vmm::start(
        "bigmem",
        &code(&[asm::print("big\n"), asm::poweroff()]),
        |c| {
            c["memory_mib"] = json!(5 * 1024);
            c["vcpus"] = json!(3);
        },
    );
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert_eq!(vm.serial(), b"big\n");
}

/// `out 0x3f8, al` then `shr eax, 8`, `n` times: the low `n` bytes of eax to the serial log.
fn emit_eax(n: usize) -> Vec<u8> {
    let mut v = asm::mov_dx(0x3f8);
    for _ in 0..n {
        v.extend(asm::OUT_DX_AL);
        v.extend([0xc1, 0xe8, 0x08]);
    }
    v
}

#[test]
fn unclaimed_reads_are_all_ones_and_writes_are_dropped() {
    let guest = code(&[
        // ISA IDE status (byte), data (word), secondary channel (dword).
        asm::mov_dx(0x1f7),
        vec![0xec], // in al, dx
        emit_eax(1),
        asm::mov_dx(0x1f0),
        vec![0x66, 0xed], // in ax, dx
        emit_eax(2),
        asm::mov_dx(0x170),
        vec![0xed], // in eax, dx
        emit_eax(4),
        // The TPM TIS window: a dword, a write, the dword again, a byte.
        vec![0xa1, 0x00, 0x00, 0xd4, 0xfe], // mov eax, [0xfed40000]
        emit_eax(4),
        asm::store(0xfed4_0000, 0x1234_5678),
        vec![0xa1, 0x00, 0x00, 0xd4, 0xfe],
        emit_eax(4),
        vec![0xa0, 0x00, 0x0f, 0xd4, 0xfe], // mov al, [0xfed40f00]
        emit_eax(1),
        asm::poweroff(),
    ]);
    let mut vm = Vmm::start("unclaimed", &guest, |_| {});
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert_eq!(vm.serial(), vec![0xff; 16], "stderr: {err}");
    assert!(err.contains("MMIO read 0xfed40000"), "stderr: {err}");
}

#[test]
fn rtc_periodic_interrupt_reaches_the_guest_on_irq8() {
    const IDT: u32 = 0x1000;
    const IDTR: u32 = 0x1800;
    const COUNT: u32 = 0x1900;
    const LAST_C: u32 = 0x1904;
    const HANDLER_OFF: u32 = 0x200;
    let handler = tiny::LOAD_ADDR as u32 + HANDLER_OFF;
    let stray = handler + 0x40;
    let gate = IDT + 0x28 * 8;
    let w = |addr: u32, v: u16| {
        let mut x = vec![0x66, 0xc7, 0x05];
        x.extend(addr.to_le_bytes());
        x.extend(v.to_le_bytes());
        x
    };
    let outb = |port: u8, v: u8| vec![0xb0, v, 0xe6, port];
    let cmos = |i: u8| vec![0xb0, i, 0xe6, 0x70, 0xe4, 0x71];
    let mut main: Vec<u8> = code(&[
        vec![0xbc, 0x00, 0xf0, 0x01, 0x00], // mov esp, 0x1f000: interrupts need a stack
        // The CMOS fields a BIOS reads: memory above 16 MiB (64 KiB units), CPUs - 1.
        cmos(0x34),
        emit_eax(1),
        cmos(0x35),
        emit_eax(1),
        cmos(0x5f),
        emit_eax(1),
        vec![0x66, 0x8c, 0xc8], // mov ax, cs
        // Every gate -> a handler that prints '?' and powers off: a stray vector fails clearly.
        vec![0xbf],
        IDT.to_le_bytes().to_vec(), // mov edi, IDT
        vec![0xb9, 0, 1, 0, 0],     // mov ecx, 256
        vec![0x66, 0xc7, 0x07],
        (stray as u16).to_le_bytes().to_vec(), // fill: mov word [edi], stray
        vec![0x66, 0x89, 0x47, 0x02],          // mov [edi+2], ax
        vec![0x66, 0xc7, 0x47, 0x04, 0x00, 0x8e], // mov word [edi+4], 0x8e00
        vec![0x66, 0xc7, 0x47, 0x06],
        ((stray >> 16) as u16).to_le_bytes().to_vec(), // mov word [edi+6], stray >> 16
        vec![0x83, 0xc7, 0x08, 0xe2, 0xe6],            // add edi, 8; loop fill
        // IDT gate 0x28 (IRQ 8 once the slave PIC is based at 0x28) -> handler.
        w(gate, handler as u16),
        vec![0x66, 0xa3],
        (gate + 2).to_le_bytes().to_vec(), // mov [gate+2], ax
        w(gate + 4, 0x8e00),
        w(gate + 6, (handler >> 16) as u16),
        w(IDTR, (0x29 * 8 - 1) as u16),
        asm::store(IDTR + 2, IDT),
        vec![0x0f, 0x01, 0x1d],
        IDTR.to_le_bytes().to_vec(), // lidt [IDTR]
        asm::store(COUNT, 0),
        // 8259s: master at 0x20, slave at 0x28, only the cascade and IRQ 8 unmasked.
        outb(0x20, 0x11),
        outb(0x21, 0x20),
        outb(0x21, 0x04),
        outb(0x21, 0x01),
        outb(0xa0, 0x11),
        outb(0xa1, 0x28),
        outb(0xa1, 0x02),
        outb(0xa1, 0x01),
        outb(0x21, 0xfb),
        outb(0xa1, 0xfe),
        // RTC: 1024 Hz (what SeaBIOS uses), periodic interrupt on, C cleared.
        outb(0x70, 0x0a),
        outb(0x71, 0x26),
        outb(0x70, 0x0b),
        outb(0x71, 0x42),
        cmos(0x0c),
        vec![0xfb], // sti
    ]);
    let wait = tiny::LOAD_ADDR as u32 + main.len() as u32;
    main.extend(code(&[
        // wait: hlt; cmp dword [COUNT], 20; jb wait
        vec![0xf4, 0x83, 0x3d],
        COUNT.to_le_bytes().to_vec(),
        vec![20, 0x72, 0xf6],
        vec![0xfa, 0xa0], // cli; mov al, [LAST_C]
        LAST_C.to_le_bytes().to_vec(),
        emit_eax(1),
        asm::print("irq8\n"),
        asm::poweroff(),
    ]));
    assert!(main.len() <= HANDLER_OFF as usize);
    main.resize(HANDLER_OFF as usize, 0x90);
    main.extend(code(&[
        cmos(0x0c), // read C: acknowledges
        vec![0xa2],
        LAST_C.to_le_bytes().to_vec(), // mov [LAST_C], al
        vec![0xff, 0x05],
        COUNT.to_le_bytes().to_vec(), // inc dword [COUNT]
        outb(0xa0, 0x20),
        outb(0x20, 0x20),
        // Back to the loop's test (past its hlt) without iret, which this host's kvm_pvm cannot
        // emulate in 32-bit mode: drop the frame, interrupts on again.
        vec![0xbc, 0x00, 0xf0, 0x01, 0x00, 0xfb, 0xb8], // mov esp, 0x1f000; sti; mov eax, wait+1
        (wait + 1).to_le_bytes().to_vec(),
        vec![0xff, 0xe0], // jmp eax
    ]));
    main.resize((stray - tiny::LOAD_ADDR as u32) as usize, 0x90);
    main.extend(code(&[asm::print("?"), asm::poweroff()]));
    let mut vm = Vmm::start("rtcirq", &main, |c| {
        c["memory_mib"] = json!(64);
        c["vcpus"] = json!(2);
    });
    let started = Instant::now();
    let (st, err) = vm.wait(T);
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    let s = vm.serial();
    assert_eq!(
        s[..3],
        [0x00, 0x03, 0x01],
        "CMOS: (64 - 16) MiB / 64 KiB = 0x300, 2 CPUs"
    );
    assert_eq!(s[3] & 0xc0, 0xc0, "register C in the handler: IRQF | PF");
    assert!(s.ends_with(b"irq8\n"), "stray vector or no IRQ 8: {s:x?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

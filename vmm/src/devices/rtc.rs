//! MC146818 RTC and CMOS at ports 0x70/0x71: the host's clock (UTC) as the guest set it, its
//! periodic, alarm and update-ended interrupts on IRQ 8, and the BIOS's CMOS bytes.
//!
//! Time is the host's UTC plus an offset the guest sets by writing the clock (with or without
//! the SET bit), so the guest never moves the host's clock. Flags in register C are worked out
//! when the guest looks and by a timer thread, which runs only while register B enables an
//! interrupt and the last one is unacknowledged by no register C read (IRQF clear): a guest
//! that never enables the RTC interrupt costs no wakeups. The line is an edge per IRQF rising,
//! as the ISA line only rises again after register C was read.

use crate::devices::bus::BusDevice;
use crate::devices::cmos;
use crate::devices::irq::IrqLine;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;

const A_UIP: u8 = 0x80;
const A_DV_MASK: u8 = 0x70;
/// 32.768 kHz time base, divider running.
const A_DV_NORMAL: u8 = 0x20;
const A_RS_MASK: u8 = 0x0f;

const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_DM_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;

const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;

const D_VRT: u8 = 0x80;

/// The datasheet's update cycle: UIP is set this long before the second ticks over.
const UIP_WINDOW_NS: u32 = 244_000;
/// Alarm register values from 0xc0 up match any value.
const ALARM_DONT_CARE: u8 = 0xc0;

/// Raises the RTC's interrupt line (IRQ 8); a trait so tests can count.
pub trait RtcIrq: Send {
    fn raise(&self);
}

impl RtcIrq for IrqLine {
    fn raise(&self) {
        let _ = self.trigger();
    }
}

/// Broken-down time, binary, 24-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    sec: i64,
    min: i64,
    hour: i64,
    /// 1 (Sunday) ..= 7
    wday: i64,
    mday: i64,
    mon: i64,
    year: i64,
}

impl Tm {
    fn from_secs(secs: i64) -> Tm {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Civil-from-days (proleptic Gregorian), as in Howard Hinnant's date algorithms.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let mday = doy - (153 * mp + 2) / 5 + 1;
        let mon = if mp < 10 { mp + 3 } else { mp - 9 };
        Tm {
            sec: rem % 60,
            min: rem / 60 % 60,
            hour: rem / 3600,
            // 1970-01-01 was a Thursday; the RTC counts Sunday as 1.
            wday: (days + 4).rem_euclid(7) + 1,
            mday,
            mon,
            year: yoe + era * 400 + i64::from(mon <= 2),
        }
    }

    /// Seconds since the epoch; out-of-range fields (a guest's nonsense) just carry over.
    fn to_secs(self) -> i64 {
        let y = self.year - i64::from(self.mon <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.mon.clamp(1, 12);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + self.mday - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + self.hour * 3600 + self.min * 60 + self.sec
    }
}

fn host_now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

/// Periodic interrupt period for rate select `rs` (register A bits 0-3); none for 0.
fn period(rs: u8) -> Option<Duration> {
    let shift = match rs {
        0 => return None,
        // Rates 1 and 2 repeat rates 8 and 9 on a 32.768 kHz base.
        1 | 2 => u32::from(rs) + 7,
        r => u32::from(r) - 1,
    };
    // (1 << shift) ticks of 32768 Hz.
    Some(Duration::from_nanos((1_000_000_000u64 << shift) / 32_768))
}

struct State {
    /// CMOS bytes; the clock registers 0x00..=0x09 and 0x32 are computed, not stored.
    ram: [u8; 128],
    /// RTC seconds minus host seconds.
    offset: i64,
    /// While SET is on: the time the guest is writing (updates are held).
    set_tm: Option<Tm>,
    reg_c: u8,
    /// The RTC second the flags were last brought up to date for.
    last_sec: i64,
    next_periodic: Option<Instant>,
    irq: Option<Box<dyn RtcIrq>>,
    stop: bool,
}

impl State {
    fn running(&self) -> bool {
        self.ram[usize::from(REG_A)] & A_DV_MASK == A_DV_NORMAL
    }

    fn reg_b(&self) -> u8 {
        self.ram[usize::from(REG_B)]
    }

    fn now_tm(&self) -> Tm {
        match self.set_tm {
            Some(tm) => tm,
            None => Tm::from_secs(host_now().0 + self.offset),
        }
    }

    fn encode(&self, v: i64) -> u8 {
        let v = v.rem_euclid(100) as u8;
        if self.reg_b() & B_DM_BINARY != 0 {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, v: u8) -> i64 {
        if self.reg_b() & B_DM_BINARY != 0 {
            i64::from(v)
        } else {
            i64::from(v >> 4) * 10 + i64::from(v & 0xf)
        }
    }

    fn encode_hour(&self, h: i64) -> u8 {
        if self.reg_b() & B_24H != 0 {
            return self.encode(h);
        }
        let pm = if h >= 12 { 0x80 } else { 0 };
        let h12 = match h % 12 {
            0 => 12,
            x => x,
        };
        self.encode(h12) | pm
    }

    fn decode_hour(&self, v: u8) -> i64 {
        if self.reg_b() & B_24H != 0 {
            return self.decode(v);
        }
        let h = self.decode(v & 0x7f) % 12;
        if v & 0x80 != 0 {
            h + 12
        } else {
            h
        }
    }

    fn read(&mut self, idx: u8, now: Instant) -> u8 {
        let tm = self.now_tm();
        match idx {
            0x00 => self.encode(tm.sec),
            0x02 => self.encode(tm.min),
            0x04 => self.encode_hour(tm.hour),
            0x06 => self.encode(tm.wday),
            0x07 => self.encode(tm.mday),
            0x08 => self.encode(tm.mon),
            0x09 => self.encode(tm.year % 100),
            cmos::CENTURY => self.encode(tm.year / 100),
            REG_A => {
                let mut a = self.ram[usize::from(REG_A)] & !A_UIP;
                let (_, ns) = host_now();
                if self.running() && self.set_tm.is_none() && ns >= 1_000_000_000 - UIP_WINDOW_NS {
                    a |= A_UIP;
                }
                a
            }
            REG_C => {
                self.update(now);
                std::mem::take(&mut self.reg_c)
            }
            REG_D => D_VRT,
            i => self.ram[usize::from(i & 0x7f)],
        }
    }

    fn write(&mut self, idx: u8, v: u8, now: Instant) {
        match idx {
            0x00 | 0x02 | 0x04 | 0x06 | 0x07 | 0x08 | 0x09 | cmos::CENTURY => {
                let mut tm = self.now_tm();
                match idx {
                    0x00 => tm.sec = self.decode(v),
                    0x02 => tm.min = self.decode(v),
                    0x04 => tm.hour = self.decode_hour(v),
                    0x06 => tm.wday = self.decode(v),
                    0x07 => tm.mday = self.decode(v),
                    0x08 => tm.mon = self.decode(v),
                    0x09 => tm.year = tm.year - tm.year % 100 + self.decode(v),
                    _ => tm.year = self.decode(v) * 100 + tm.year % 100,
                }
                if self.set_tm.is_some() {
                    self.set_tm = Some(tm);
                } else {
                    self.set_clock(tm);
                }
            }
            REG_A => {
                let old_rs = self.ram[usize::from(REG_A)] & A_RS_MASK;
                self.ram[usize::from(REG_A)] = v & !A_UIP;
                if v & A_RS_MASK != old_rs || !self.running() {
                    self.next_periodic = None;
                }
                self.update(now);
            }
            REG_B => {
                let mut v = v;
                if v & B_SET != 0 {
                    // Setting the clock stops updates and their interrupt.
                    v &= !B_UIE;
                    if self.set_tm.is_none() {
                        self.set_tm = Some(self.now_tm());
                    }
                } else if let Some(tm) = self.set_tm.take() {
                    self.set_clock(tm);
                }
                self.ram[usize::from(REG_B)] = v;
                self.update(now);
            }
            REG_C | REG_D => {}
            i => self.ram[usize::from(i & 0x7f)] = v,
        }
    }

    fn set_clock(&mut self, tm: Tm) {
        let host = host_now().0;
        self.offset = tm.to_secs() - host;
        self.last_sec = host + self.offset;
    }

    fn alarm_matches(&self, rtc_sec: i64) -> bool {
        let t = rtc_sec.rem_euclid(86_400);
        let field = |reg: u8, want: i64, hour: bool| {
            let v = self.ram[usize::from(reg)];
            v & ALARM_DONT_CARE == ALARM_DONT_CARE
                || (if hour {
                    self.decode_hour(v)
                } else {
                    self.decode(v)
                }) == want
        };
        field(0x01, t % 60, false) && field(0x03, t / 60 % 60, false) && field(0x05, t / 3600, true)
    }

    /// Brings register C up to date with the time passed, and raises IRQ 8 when a flag whose
    /// interrupt is enabled came up while IRQF was clear.
    fn update(&mut self, now: Instant) {
        if !self.running() {
            return;
        }
        if self.set_tm.is_none() {
            let sec = host_now().0 + self.offset;
            if sec > self.last_sec {
                self.reg_c |= C_UF;
                // A day or more covers every time of day.
                let first = self.last_sec.max(sec - 86_400) + 1;
                if (first..=sec).any(|s| self.alarm_matches(s)) {
                    self.reg_c |= C_AF;
                }
            }
            self.last_sec = sec;
        }
        match period(self.ram[usize::from(REG_A)] & A_RS_MASK) {
            None => self.next_periodic = None,
            Some(p) => match self.next_periodic {
                None => self.next_periodic = Some(now + p),
                Some(due) if now >= due => {
                    self.reg_c |= C_PF;
                    // Late by more than a period (a stalled host): start over rather than
                    // burst.
                    let next = due + p;
                    self.next_periodic = Some(if next > now { next } else { now + p });
                }
                Some(_) => {}
            },
        }
        let enabled = self.reg_b() & (B_PIE | B_AIE | B_UIE);
        if self.reg_c & enabled != 0 && self.reg_c & C_IRQF == 0 {
            self.reg_c |= C_IRQF;
            if let Some(irq) = &self.irq {
                irq.raise();
            }
        }
    }

    /// How long the timer thread may sleep; `None`: until a register changes.
    fn sleep_for(&self, now: Instant) -> Option<Duration> {
        if self.stop || self.irq.is_none() || !self.running() || self.reg_c & C_IRQF != 0 {
            return None;
        }
        let b = self.reg_b();
        let mut d: Option<Duration> = None;
        if b & B_PIE != 0 {
            if let Some(due) = self.next_periodic {
                d = Some(due.saturating_duration_since(now));
            }
        }
        if b & (B_AIE | B_UIE) != 0 && self.set_tm.is_none() {
            let (_, ns) = host_now();
            // Just past the next second, so the update sees it.
            let next_sec = Duration::from_nanos(u64::from(1_000_000_000 - ns) + 100_000);
            d = Some(d.map_or(next_sec, |x| x.min(next_sec)));
        }
        d
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The RTC/CMOS bus device.
pub struct Rtc {
    index: u8,
    shared: Arc<Shared>,
}

impl Default for Rtc {
    fn default() -> Self {
        Rtc::new()
    }
}

impl Rtc {
    /// A clock without interrupts and without the BIOS's memory fields.
    pub fn new() -> Rtc {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_A)] = A_DV_NORMAL | 0x06;
        ram[usize::from(REG_B)] = B_24H;
        let (host, _) = host_now();
        let next_periodic = period(ram[usize::from(REG_A)] & A_RS_MASK).map(|p| Instant::now() + p);
        Rtc {
            index: 0,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    ram,
                    offset: 0,
                    set_tm: None,
                    reg_c: 0,
                    last_sec: host,
                    next_periodic,
                    irq: None,
                    stop: false,
                }),
                wake: Condvar::new(),
            }),
        }
    }

    /// The clock with the CMOS fields a BIOS reads for `mem_size` bytes of RAM (laid out by
    /// [`crate::layout::ram_regions`]) and `vcpus` CPUs.
    pub fn with_memory(mem_size: u64, vcpus: u8) -> Rtc {
        let rtc = Rtc::new();
        {
            let mut st = rtc.shared.lock();
            for (i, v) in cmos::platform_bytes(mem_size, vcpus) {
                st.ram[usize::from(i)] = v;
            }
        }
        rtc
    }

    /// Connects IRQ 8 and starts the timer thread (`rtc-timer`, under its own seccomp filter)
    /// that raises the periodic, alarm and update interrupts. The thread ends with the device.
    pub fn with_interrupt(self, irq: Box<dyn RtcIrq>) -> std::io::Result<Rtc> {
        self.shared.lock().irq = Some(irq);
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("rtc-timer".into())
            .spawn(move || {
                crate::seccomp::apply_current(crate::seccomp::ThreadKind::Timer);
                timer_loop(&shared)
            })?;
        Ok(self)
    }
}

fn timer_loop(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let now = Instant::now();
        st.update(now);
        st = match st.sleep_for(now) {
            None => shared.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                shared
                    .wake
                    .wait_timeout(st, d)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

impl Drop for Rtc {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

impl BusDevice for Rtc {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let v = if offset == 1 {
            let mut st = self.shared.lock();
            let v = st.read(self.index, Instant::now());
            if self.index == REG_C {
                // IRQF cleared: the timer may run again.
                self.shared.wake.notify_all();
            }
            v
        } else {
            self.index
        };
        if let Some(d) = data.first_mut() {
            *d = v;
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let Some(&v) = data.first() else { return };
        if offset == 0 {
            // Bit 7 is the NMI mask, not part of the index.
            self.index = v & 0x7f;
        } else {
            self.shared.lock().write(self.index, v, Instant::now());
            self.shared.wake.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rd(r: &mut Rtc, i: u8) -> u8 {
        r.write(0x70, 0, &[i | 0x80]);
        let mut b = [0u8];
        r.read(0x70, 1, &mut b);
        b[0]
    }

    fn wr(r: &mut Rtc, i: u8, v: u8) {
        r.write(0x70, 0, &[i]);
        r.write(0x70, 1, &[v]);
    }

    fn bcd(b: u8) -> i64 {
        i64::from(b >> 4) * 10 + i64::from(b & 0xf)
    }

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);
    impl RtcIrq for Count {
        fn raise(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn reads_bcd_host_time_and_keeps_nvram() {
        let mut r = Rtc::new();
        let year = rd(&mut r, 0x09);
        assert_eq!(rd(&mut r, 0x32), 0x20);
        assert!(year >= 0x24 && year & 0xf < 10);
        let month = rd(&mut r, 0x08);
        assert!((1..=0x12).contains(&month));
        assert_eq!(rd(&mut r, 0x0b) & 0x06, 0x02, "24h + BCD");
        assert_eq!(rd(&mut r, 0x0d), 0x80);
        wr(&mut r, 0x40, 0x5a);
        assert_eq!(rd(&mut r, 0x40), 0x5a);
    }

    #[test]
    fn date_conversion_round_trips() {
        for secs in [0i64, 951_782_400, 1_709_210_096, 4_102_444_800, 86_399] {
            assert_eq!(Tm::from_secs(secs).to_secs(), secs);
        }
        let t = Tm::from_secs(951_782_400); // 2000-02-29 00:00 UTC, a Tuesday
        assert_eq!((t.year, t.mon, t.mday, t.wday), (2000, 2, 29, 3));
    }

    #[test]
    fn memory_fields_for_the_bios() {
        let mut r = Rtc::with_memory(512 << 20, 4);
        assert_eq!(rd(&mut r, 0x15), 0x80);
        assert_eq!(rd(&mut r, 0x16), 0x02);
        let above_16m = u32::from(rd(&mut r, 0x34)) | u32::from(rd(&mut r, 0x35)) << 8;
        assert_eq!(above_16m, (512 - 16) * 16);
        assert_eq!(rd(&mut r, 0x5f), 3);
        assert_eq!(rd(&mut r, 0x10), 0);
    }

    #[test]
    fn set_bit_holds_and_moves_the_guest_clock_only() {
        let mut r = Rtc::new();
        wr(&mut r, REG_B, B_SET | B_24H | B_DM_BINARY);
        wr(&mut r, 0x09, 99);
        wr(&mut r, 0x32, 19);
        wr(&mut r, 0x08, 12);
        wr(&mut r, 0x07, 31);
        wr(&mut r, 0x04, 23);
        wr(&mut r, 0x02, 59);
        wr(&mut r, 0x00, 58);
        assert_eq!(rd(&mut r, 0x00), 58, "held while SET");
        assert_eq!(
            rd(&mut r, REG_A) & A_UIP,
            0,
            "no update in progress while SET"
        );
        wr(&mut r, REG_B, B_24H | B_DM_BINARY);
        assert_eq!(rd(&mut r, 0x09), 99);
        assert_eq!(rd(&mut r, 0x32), 19);
        assert_eq!(rd(&mut r, 0x04), 23);
        // 12-hour BCD: 23h is 11 PM.
        wr(&mut r, REG_B, 0);
        assert_eq!(rd(&mut r, 0x04), 0x80 | 0x11);
        // A write without SET, in 12-hour BCD: 1 AM.
        wr(&mut r, 0x04, 0x01);
        wr(&mut r, REG_B, B_24H);
        assert_eq!(rd(&mut r, 0x04), 0x01);
        // The host clock is untouched: a fresh RTC reads this century.
        let mut fresh = Rtc::new();
        assert_eq!(rd(&mut fresh, 0x32), 0x20);
        assert!(bcd(rd(&mut fresh, 0x09)) >= 24);
    }

    #[test]
    fn periodic_flag_is_read_to_clear_and_raises_irq_once_per_read() {
        let count = Count::default();
        let mut r = Rtc::new();
        r.shared.lock().irq = Some(Box::new(count.clone()));
        // 1024 Hz, periodic interrupt on, no timer thread: flags come up when the guest looks.
        wr(&mut r, REG_A, A_DV_NORMAL | 0x06);
        wr(&mut r, REG_B, B_24H | B_PIE);
        std::thread::sleep(Duration::from_millis(3));
        let c = rd(&mut r, REG_C);
        assert_eq!(c & (C_IRQF | C_PF), C_IRQF | C_PF, "{c:#x}");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        std::thread::sleep(Duration::from_millis(3));
        let c = rd(&mut r, REG_C);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(c & C_PF, C_PF);
        // Rate 0: no periodic flag at all.
        wr(&mut r, REG_A, A_DV_NORMAL);
        let _ = rd(&mut r, REG_C);
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(rd(&mut r, REG_C) & C_PF, 0);
    }

    #[test]
    fn flags_without_enable_bits_raise_nothing() {
        let count = Count::default();
        let mut r = Rtc::new();
        r.shared.lock().irq = Some(Box::new(count.clone()));
        std::thread::sleep(Duration::from_millis(3));
        let c = rd(&mut r, REG_C);
        assert_eq!(c & C_IRQF, 0);
        assert_eq!(c & C_PF, C_PF, "the flag itself is set as on hardware");
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn alarm_and_update_flags() {
        let mut r = Rtc::new();
        {
            let mut st = r.shared.lock();
            // Pretend the last update was three seconds ago.
            st.last_sec -= 3;
            let now = host_now().0 + st.offset;
            let t = (now - 1).rem_euclid(86_400);
            let b = |v: i64| st.encode(v);
            let (s, m, h) = (b(t % 60), b(t / 60 % 60), b(t / 3600));
            st.ram[1] = s;
            st.ram[3] = m;
            st.ram[5] = h;
        }
        let c = rd(&mut r, REG_C);
        assert_eq!(c & (C_UF | C_AF), C_UF | C_AF, "{c:#x}");
        assert_eq!(rd(&mut r, REG_C) & (C_UF | C_AF), 0, "read clears");
        // Don't-care alarm bytes match every second.
        wr(&mut r, 0x01, 0xff);
        wr(&mut r, 0x03, 0xff);
        wr(&mut r, 0x05, 0xff);
        r.shared.lock().last_sec -= 1;
        assert_eq!(rd(&mut r, REG_C) & C_AF, C_AF);
    }

    #[test]
    fn timer_thread_raises_periodic_interrupts_while_enabled_only() {
        let count = Count::default();
        let mut r = Rtc::new().with_interrupt(Box::new(count.clone())).unwrap();
        // 64 Hz periodic.
        wr(&mut r, REG_A, A_DV_NORMAL | 0x0a);
        wr(&mut r, REG_B, B_24H | B_PIE);
        // A guest that acknowledges each interrupt by reading C, for about 200 ms.
        let start = Instant::now();
        let mut seen = 0;
        while start.elapsed() < Duration::from_millis(200) {
            let n = count.0.load(Ordering::SeqCst);
            if n > seen {
                seen = n;
                let _ = rd(&mut r, REG_C);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            (6..=16).contains(&seen),
            "{seen} interrupts in 200 ms at 64 Hz"
        );
        // Unacknowledged: no more edges.
        let n = count.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert!(count.0.load(Ordering::SeqCst) <= n + 1);
        // Disabled: the thread sleeps.
        wr(&mut r, REG_B, B_24H);
        let _ = rd(&mut r, REG_C);
        let n = count.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count.0.load(Ordering::SeqCst), n);
    }

    #[test]
    fn timer_thread_raises_the_update_interrupt_each_second() {
        let count = Count::default();
        let mut r = Rtc::new().with_interrupt(Box::new(count.clone())).unwrap();
        wr(&mut r, REG_B, B_24H | B_UIE);
        let _ = rd(&mut r, REG_C);
        let deadline = Instant::now() + Duration::from_millis(1500);
        while count.0.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(count.0.load(Ordering::SeqCst) >= 1);
        assert_eq!(rd(&mut r, REG_C) & (C_IRQF | C_UF), C_IRQF | C_UF);
    }
}

//! CMOS RTC at ports 0x70/0x71, reading the host's clock (UTC, BCD, 24-hour mode).
//!
//! Writes to the time registers are accepted and ignored: the guest cannot move the host's
//! clock, and Linux only writes the RTC when NTP-synced.

use crate::devices::bus::BusDevice;

pub struct Rtc {
    index: u8,
    /// Battery-backed bytes the guest may use (we keep what it writes outside the clock).
    nvram: [u8; 128],
}

impl Default for Rtc {
    fn default() -> Self {
        Rtc::new()
    }
}

fn bcd(v: i32) -> u8 {
    let v = v.rem_euclid(100) as u8;
    ((v / 10) << 4) | (v % 10)
}

/// Host UTC time as (sec, min, hour, weekday 1..7, mday, month 1..12, year).
fn host_time() -> (i32, i32, i32, i32, i32, i32, i32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), as in Howard Hinnant's date algorithms.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wday = (days + 4).rem_euclid(7) + 1; // 1970-01-01 was a Thursday; RTC Sunday = 1
    (
        (rem % 60) as i32,
        (rem / 60 % 60) as i32,
        (rem / 3600) as i32,
        wday as i32,
        d as i32,
        m as i32,
        y as i32,
    )
}

impl Rtc {
    pub fn new() -> Rtc {
        let mut nvram = [0u8; 128];
        nvram[0x0a] = 0x26;
        nvram[0x0b] = 0x02;
        nvram[0x0d] = 0x80;
        Rtc { index: 0, nvram }
    }

    fn read_reg(&self, idx: u8) -> u8 {
        let (s, mi, h, wd, d, mo, y) = host_time();
        match idx {
            0x00 => bcd(s),
            0x02 => bcd(mi),
            0x04 => bcd(h),
            0x06 => bcd(wd),
            0x07 => bcd(d),
            0x08 => bcd(mo),
            0x09 => bcd(y % 100),
            0x32 => bcd(y / 100),
            // Status A: update-in-progress never set, 32.768 kHz, 1024 Hz.
            0x0a => self.nvram[0x0a] & 0x7f,
            0x0c => 0,
            0x0d => 0x80,
            i => self.nvram[usize::from(i & 0x7f)],
        }
    }
}

impl BusDevice for Rtc {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let v = if offset == 1 {
            self.read_reg(self.index)
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
            match self.index {
                0x00..=0x09 | 0x0c | 0x0d | 0x32 => {}
                i => self.nvram[usize::from(i)] = v,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bcd_host_time() {
        let mut r = Rtc::new();
        let rd = |r: &mut Rtc, i: u8| {
            r.write(0x70, 0, &[i | 0x80]);
            let mut b = [0u8];
            r.read(0x70, 1, &mut b);
            b[0]
        };
        let year = rd(&mut r, 0x09);
        let century = rd(&mut r, 0x32);
        assert_eq!(century, 0x20);
        assert!(year >= 0x24 && year & 0xf < 10);
        let month = rd(&mut r, 0x08);
        assert!((1..=0x12).contains(&month));
        assert_eq!(rd(&mut r, 0x0b) & 0x06, 0x02, "24h + BCD");
        r.write(0x70, 0, &[0x40]);
        r.write(0x70, 1, &[0x5a]);
        assert_eq!(rd(&mut r, 0x40), 0x5a);
    }
}

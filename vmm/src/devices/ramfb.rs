//! ramfb: the firmware-stage display, a framebuffer in guest RAM that the guest describes
//! through the writable fw_cfg file `etc/ramfb`.
//!
//! SeaVGABIOS (`vgaroms/vgabios-ramfb.bin`, offered by fw_cfg) allocates 1024x768 XRGB8888 in
//! guest RAM and writes its address and geometry to `etc/ramfb`; fw_cfg then calls
//! [`Ramfb::written`]. A configuration that fails a check is ignored (the previous one stays,
//! as in QEMU), with a rate-limited log line. One [`Ramfb`] is shared, by cheap clones,
//! between fw_cfg (the write hook) and the VNC server, which reads it as a
//! [`FramebufferSource`](crate::vnc::FramebufferSource) (see `ramfb/scanout.rs`): until the
//! guest configures it, a 640x480 black screen.

pub mod config;
mod scanout;

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use vm_memory::GuestMemoryMmap;

pub use config::{ConfigError, PixelFormat, RamfbConfig, RawConfig, CONFIG_SIZE};
pub use scanout::BLANK_SIZE;

use crate::devices::fw_cfg::FwCfgWriteHook;

/// The writable fw_cfg file the guest describes its framebuffer in.
pub const FILE_NAME: &str = "etc/ramfb";
/// Its size in bytes.
pub const FILE_SIZE: usize = CONFIG_SIZE;
/// The fw_cfg name of the VGA option ROM that drives ramfb (Debian: the `seabios` package's
/// `vgabios-ramfb.bin`).
pub const ROM_NAME: &str = "vgaroms/vgabios-ramfb.bin";

/// At most one log line of each kind per this long; the rest are counted.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The ramfb device. Clones share one state.
#[derive(Clone)]
pub struct Ramfb {
    inner: Arc<Inner>,
}

struct Inner {
    mem: GuestMemoryMmap,
    config: RwLock<Option<RamfbConfig>>,
    rejected: Mutex<RateLimit>,
    accepted: Mutex<RateLimit>,
}

impl Ramfb {
    /// A device over the guest's RAM, not yet configured.
    pub fn new(mem: GuestMemoryMmap) -> Ramfb {
        Ramfb {
            inner: Arc::new(Inner {
                mem,
                config: RwLock::new(None),
                rejected: Mutex::new(RateLimit::default()),
                accepted: Mutex::new(RateLimit::default()),
            }),
        }
    }

    /// The configuration in use, if the guest has given a valid one.
    pub fn config(&self) -> Option<RamfbConfig> {
        *self
            .inner
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Back to the unconfigured blank screen (a machine reset: the firmware configures it
    /// again).
    pub fn reset(&self) {
        *self
            .inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Takes a configuration the guest wrote; returns what was wrong with it, if anything
    /// (the device then keeps its previous configuration).
    pub fn apply(&self, content: &[u8]) -> Result<RamfbConfig, ConfigError> {
        let cfg = config::from_bytes(content, &self.inner.mem)?;
        let old = self
            .inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(cfg);
        if old != Some(cfg) {
            if let Some(more) = self.inner.accepted_log() {
                log::info!(
                    "ramfb: {}x{} {:?} at {:#x}, stride {}{more}",
                    cfg.width,
                    cfg.height,
                    cfg.format,
                    cfg.addr,
                    cfg.stride
                );
            }
        }
        Ok(cfg)
    }

    fn mem(&self) -> &GuestMemoryMmap {
        &self.inner.mem
    }
}

impl Inner {
    fn accepted_log(&self) -> Option<String> {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(Instant::now())
    }

    fn rejected_log(&self) -> Option<String> {
        self.rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(Instant::now())
    }
}

impl FwCfgWriteHook for Ramfb {
    fn written(&mut self, content: &[u8]) {
        if let Err(e) = self.apply(content) {
            if let Some(more) = self.inner.rejected_log() {
                log::warn!("ramfb: guest configuration ignored: {e}{more}");
            }
        }
    }
}

/// One log line per [`LOG_INTERVAL`]; the next line says how many were held back.
#[derive(Default)]
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(suffix)` when a line may be logged now; the suffix counts the lines held back.
    fn allow(&mut self, now: Instant) -> Option<String> {
        if let Some(last) = self.last {
            if now.saturating_duration_since(last) < LOG_INTERVAL {
                self.suppressed = self.suppressed.saturating_add(1);
                return None;
            }
        }
        self.last = Some(now);
        let n = std::mem::take(&mut self.suppressed);
        Some(if n == 0 {
            String::new()
        } else {
            format!(" ({n} more since the last report)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    #[test]
    fn rate_limit_logs_once_per_interval_and_counts_the_rest() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        assert_eq!(r.allow(t0).as_deref(), Some(""));
        assert_eq!(r.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            r.allow(t0 + LOG_INTERVAL).as_deref(),
            Some(" (2 more since the last report)")
        );
        assert_eq!(r.allow(t0 + LOG_INTERVAL * 3).as_deref(), Some(""));
    }

    #[test]
    fn a_bad_config_keeps_the_previous_one() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 8 << 20)]).expect("memory");
        let mut fb = Ramfb::new(mem);
        assert_eq!(fb.config(), None);
        let good = RawConfig {
            addr: 1 << 20,
            fourcc: PixelFormat::Xrgb8888.fourcc(),
            flags: 0,
            width: 800,
            height: 600,
            stride: 3200,
        };
        fb.written(&good.to_bytes());
        let cfg = fb.config().expect("configured");
        assert_eq!((cfg.width, cfg.height, cfg.addr), (800, 600, 1 << 20));
        // Each kind of bad write, many times over: ignored, no panic.
        let bad = [
            RawConfig { width: 0, ..good }.to_bytes().to_vec(),
            RawConfig {
                addr: 7 << 20,
                ..good
            }
            .to_bytes()
            .to_vec(),
            RawConfig { fourcc: 1, ..good }.to_bytes().to_vec(),
            vec![0xff; 5],
            Vec::new(),
        ];
        for _ in 0..100 {
            for b in &bad {
                fb.written(b);
            }
        }
        assert_eq!(fb.config(), Some(cfg));
        // A clone is the same device.
        let other = fb.clone();
        fb.reset();
        assert_eq!(other.config(), None);
    }
}

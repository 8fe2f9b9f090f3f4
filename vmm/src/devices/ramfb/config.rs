//! The guest's ramfb configuration (the 28 bytes of fw_cfg `etc/ramfb`): parsing, validation
//! against guest RAM, and the pixel formats the scanout understands.
//!
//! Layout, all big-endian: `u64 addr, u32 fourcc, u32 flags, u32 width, u32 height, u32 stride`.
//! Every field comes from the guest; nothing here trusts one before it is checked.

use vireo_vmm_api::limits::MAX_DISPLAY_SIDE;
use vm_memory::{GuestAddress, GuestMemoryBackend};

/// Size of the configuration file.
pub const CONFIG_SIZE: usize = 28;

/// A DRM fourcc code: the four characters in memory order, as `u32` little-endian.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

/// The pixel layouts a guest may choose. SeaVGABIOS and OVMF's QemuRamfbDxe use XRGB8888;
/// the others are the packed RGB formats Linux's simplefb/simpledrm know, so a guest that
/// programs ramfb itself is not refused for picking one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 'XR24': 32 bits, little-endian x:R:G:B (bytes B, G, R, x).
    Xrgb8888,
    /// 'AR24': as XRGB8888; alpha is ignored.
    Argb8888,
    /// 'XB24': 32 bits, little-endian x:B:G:R (bytes R, G, B, x).
    Xbgr8888,
    /// 'AB24': as XBGR8888; alpha is ignored.
    Abgr8888,
    /// 'RG24': 24 bits, little-endian R:G:B (bytes B, G, R).
    Rgb888,
    /// 'BG24': 24 bits, little-endian B:G:R (bytes R, G, B).
    Bgr888,
    /// 'RG16': 16 bits, little-endian R5:G6:B5.
    Rgb565,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 7] = [
        PixelFormat::Xrgb8888,
        PixelFormat::Argb8888,
        PixelFormat::Xbgr8888,
        PixelFormat::Abgr8888,
        PixelFormat::Rgb888,
        PixelFormat::Bgr888,
        PixelFormat::Rgb565,
    ];

    pub fn from_fourcc(code: u32) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    pub const fn fourcc(self) -> u32 {
        fourcc(match self {
            PixelFormat::Xrgb8888 => b"XR24",
            PixelFormat::Argb8888 => b"AR24",
            PixelFormat::Xbgr8888 => b"XB24",
            PixelFormat::Abgr8888 => b"AB24",
            PixelFormat::Rgb888 => b"RG24",
            PixelFormat::Bgr888 => b"BG24",
            PixelFormat::Rgb565 => b"RG16",
        })
    }

    pub const fn bytes_per_pixel(self) -> u32 {
        match self {
            PixelFormat::Xrgb8888
            | PixelFormat::Argb8888
            | PixelFormat::Xbgr8888
            | PixelFormat::Abgr8888 => 4,
            PixelFormat::Rgb888 | PixelFormat::Bgr888 => 3,
            PixelFormat::Rgb565 => 2,
        }
    }

    /// Converts packed guest pixels (`src`, a whole number of pixels) to the VNC server's
    /// xRGB8888 (red in bits 16..24), top byte zero.
    pub fn to_xrgb(self, src: &[u8], out: &mut [u32]) {
        let bpp = self.bytes_per_pixel() as usize;
        let pixels = src.chunks_exact(bpp).zip(out.iter_mut());
        match self {
            PixelFormat::Xrgb8888 | PixelFormat::Argb8888 => {
                for (p, o) in pixels {
                    *o = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & 0x00ff_ffff;
                }
            }
            PixelFormat::Xbgr8888 | PixelFormat::Abgr8888 | PixelFormat::Bgr888 => {
                for (p, o) in pixels {
                    *o = u32::from_le_bytes([p[2], p[1], p[0], 0]);
                }
            }
            PixelFormat::Rgb888 => {
                for (p, o) in pixels {
                    *o = u32::from_le_bytes([p[0], p[1], p[2], 0]);
                }
            }
            PixelFormat::Rgb565 => {
                for (p, o) in pixels {
                    let v = u32::from(u16::from_le_bytes([p[0], p[1]]));
                    // Widen each channel by repeating its top bits, so full scale stays 0xff.
                    let r = (v >> 11) & 0x1f;
                    let g = (v >> 5) & 0x3f;
                    let b = v & 0x1f;
                    let (r, g, b) = (
                        (r << 3) | (r >> 2),
                        (g << 2) | (g >> 4),
                        (b << 3) | (b >> 2),
                    );
                    *o = (r << 16) | (g << 8) | b;
                }
            }
        }
    }
}

/// The fields as the guest wrote them, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawConfig {
    pub addr: u64,
    pub fourcc: u32,
    pub flags: u32,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
}

/// A configuration that passed every check: the framebuffer lies wholly in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamfbConfig {
    /// Guest-physical address of the first pixel.
    pub addr: u64,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (at least `width * bytes_per_pixel`).
    pub stride: u32,
}

impl RamfbConfig {
    /// Bytes the framebuffer spans: every row but the last at `stride`, the last only as
    /// wide as its pixels (a guest need not allocate padding after the last row).
    pub fn span(&self) -> u64 {
        span(self.width, self.height, self.stride, self.format)
    }
}

fn span(width: u32, height: u32, stride: u32, format: PixelFormat) -> u64 {
    // width, height <= MAX_DISPLAY_SIDE and stride < 2^32: at most 2^44, no overflow.
    u64::from(stride) * u64::from(height.saturating_sub(1))
        + u64::from(width) * u64::from(format.bytes_per_pixel())
}

/// Why a guest's configuration was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration is {0} bytes, not {CONFIG_SIZE}")]
    Length(usize),
    #[error("pixel format {} is not supported (XR24, AR24, XB24, AB24, RG24, BG24, RG16 are)", show_fourcc(*.0))]
    Fourcc(u32),
    #[error("width {0} is outside 1..={MAX_DISPLAY_SIDE}")]
    Width(u32),
    #[error("height {0} is outside 1..={MAX_DISPLAY_SIDE}")]
    Height(u32),
    #[error("stride {stride} is less than a row of pixels ({row} bytes)")]
    Stride { stride: u32, row: u32 },
    #[error("framebuffer at {addr:#x} of {len} bytes runs past the end of the address space")]
    AddressOverflow { addr: u64, len: u64 },
    #[error("framebuffer at {addr:#x} of {len} bytes is not wholly in guest RAM")]
    OutsideRam { addr: u64, len: u64 },
}

/// A fourcc as its characters when they are printable, else as hex.
fn show_fourcc(code: u32) -> String {
    let b = code.to_le_bytes();
    if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("'{}'", String::from_utf8_lossy(&b))
    } else {
        format!("{code:#010x}")
    }
}

/// Splits the file's content into its fields.
pub fn parse(content: &[u8]) -> Result<RawConfig, ConfigError> {
    let b: &[u8; CONFIG_SIZE] = content
        .try_into()
        .map_err(|_| ConfigError::Length(content.len()))?;
    let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut addr = [0u8; 8];
    addr.copy_from_slice(&b[..8]);
    Ok(RawConfig {
        addr: u64::from_be_bytes(addr),
        fourcc: u32_at(8),
        flags: u32_at(12),
        width: u32_at(16),
        height: u32_at(20),
        stride: u32_at(24),
    })
}

impl RawConfig {
    /// The file content that parses to these fields.
    pub fn to_bytes(&self) -> [u8; CONFIG_SIZE] {
        let mut b = [0u8; CONFIG_SIZE];
        b[..8].copy_from_slice(&self.addr.to_be_bytes());
        for (i, v) in [
            self.fourcc,
            self.flags,
            self.width,
            self.height,
            self.stride,
        ]
        .into_iter()
        .enumerate()
        {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_be_bytes());
        }
        b
    }

    /// Checks every field against the limits and `mem`. `flags` is ignored, as QEMU does.
    /// A stride of 0 means rows packed without padding (QEMU's reading too).
    pub fn validate<M: GuestMemoryBackend>(&self, mem: &M) -> Result<RamfbConfig, ConfigError> {
        let format =
            PixelFormat::from_fourcc(self.fourcc).ok_or(ConfigError::Fourcc(self.fourcc))?;
        if !(1..=MAX_DISPLAY_SIDE).contains(&self.width) {
            return Err(ConfigError::Width(self.width));
        }
        if !(1..=MAX_DISPLAY_SIDE).contains(&self.height) {
            return Err(ConfigError::Height(self.height));
        }
        // Cannot overflow: width <= 4096, bpp <= 4.
        let row = self.width * format.bytes_per_pixel();
        let stride = if self.stride == 0 { row } else { self.stride };
        if stride < row {
            return Err(ConfigError::Stride {
                stride: self.stride,
                row,
            });
        }
        let len = span(self.width, self.height, stride, format);
        let overflow = ConfigError::AddressOverflow {
            addr: self.addr,
            len,
        };
        self.addr.checked_add(len).ok_or(overflow)?;
        let in_ram = usize::try_from(len)
            .map(|n| mem.check_range(GuestAddress(self.addr), n))
            .unwrap_or(false);
        if !in_ram {
            return Err(ConfigError::OutsideRam {
                addr: self.addr,
                len,
            });
        }
        Ok(RamfbConfig {
            addr: self.addr,
            format,
            width: self.width,
            height: self.height,
            stride,
        })
    }
}

/// Parses and validates in one step.
pub fn from_bytes<M: GuestMemoryBackend>(
    content: &[u8],
    mem: &M,
) -> Result<RamfbConfig, ConfigError> {
    parse(content)?.validate(mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const MIB: u64 = 1 << 20;

    /// 16 MiB of RAM, a hole, then 16 MiB more: the shape of `layout::ram_regions`.
    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 16 * MIB as usize),
            (GuestAddress(32 * MIB), 16 * MIB as usize),
        ])
        .expect("test memory")
    }

    /// What SeaVGABIOS writes: 1024x768 XRGB8888, packed.
    fn seavgabios() -> RawConfig {
        RawConfig {
            addr: 4 * MIB,
            fourcc: fourcc(b"XR24"),
            flags: 0,
            width: 1024,
            height: 768,
            stride: 4096,
        }
    }

    #[test]
    fn the_firmware_config_parses_and_validates() {
        let raw = seavgabios();
        let bytes = raw.to_bytes();
        // Big-endian on the wire: the address's low byte is last.
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 0, 0x40, 0, 0]);
        assert_eq!(&bytes[8..12], b"42RX");
        assert_eq!(parse(&bytes), Ok(raw));
        let cfg = from_bytes(&bytes, &mem()).expect("valid");
        assert_eq!(
            cfg,
            RamfbConfig {
                addr: 4 * MIB,
                format: PixelFormat::Xrgb8888,
                width: 1024,
                height: 768,
                stride: 4096
            }
        );
        assert_eq!(cfg.span(), 4096 * 768);
    }

    #[test]
    fn only_28_bytes_parse() {
        let bytes = seavgabios().to_bytes();
        for n in [0, 1, 27, 29, 56] {
            let mut v = bytes.to_vec();
            v.resize(n, 0);
            assert_eq!(parse(&v), Err(ConfigError::Length(n)));
        }
    }

    #[test]
    fn every_supported_format_and_no_other() {
        let m = mem();
        for f in PixelFormat::ALL {
            let raw = RawConfig {
                fourcc: f.fourcc(),
                stride: 1024 * f.bytes_per_pixel(),
                ..seavgabios()
            };
            assert_eq!(raw.validate(&m).map(|c| c.format), Ok(f), "{f:?}");
        }
        for odd in [
            0,
            u32::MAX,
            fourcc(b"YUYV"),
            fourcc(b"XR30"),
            fourcc(b"C8  "),
            0x3432_5258u32.swap_bytes(),
        ] {
            let raw = RawConfig {
                fourcc: odd,
                ..seavgabios()
            };
            assert_eq!(raw.validate(&m), Err(ConfigError::Fourcc(odd)));
        }
        let msg = ConfigError::Fourcc(fourcc(b"YUYV")).to_string();
        assert!(msg.contains("'YUYV'"), "{msg}");
        let msg = ConfigError::Fourcc(7).to_string();
        assert!(msg.contains("0x00000007"), "{msg}");
    }

    #[test]
    fn width_and_height_stay_within_the_display_limit() {
        let m = mem();
        for w in [0, MAX_DISPLAY_SIDE + 1, u32::MAX] {
            let raw = RawConfig {
                width: w,
                stride: 0,
                ..seavgabios()
            };
            assert_eq!(raw.validate(&m), Err(ConfigError::Width(w)));
        }
        for h in [0, MAX_DISPLAY_SIDE + 1, u32::MAX] {
            let raw = RawConfig {
                height: h,
                ..seavgabios()
            };
            assert_eq!(raw.validate(&m), Err(ConfigError::Height(h)));
        }
        // The limits themselves are fine when RAM holds them.
        let raw = RawConfig {
            addr: 0,
            width: MAX_DISPLAY_SIDE,
            height: 1,
            stride: 0,
            ..seavgabios()
        };
        assert!(raw.validate(&m).is_ok());
        let raw = RawConfig {
            addr: 0,
            fourcc: PixelFormat::Rgb565.fourcc(),
            width: 1,
            height: MAX_DISPLAY_SIDE,
            stride: 2,
            ..seavgabios()
        };
        assert!(raw.validate(&m).is_ok());
    }

    #[test]
    fn stride_must_hold_a_row_and_zero_means_packed() {
        let m = mem();
        let raw = RawConfig {
            stride: 4095,
            ..seavgabios()
        };
        assert_eq!(
            raw.validate(&m),
            Err(ConfigError::Stride {
                stride: 4095,
                row: 4096
            })
        );
        let packed = RawConfig {
            stride: 0,
            ..seavgabios()
        };
        assert_eq!(packed.validate(&m).map(|c| c.stride), Ok(4096));
        // Padding is allowed, and counts towards the span.
        let padded = RawConfig {
            stride: 8192,
            ..seavgabios()
        };
        assert_eq!(padded.validate(&m).map(|c| c.span()), Ok(8192 * 767 + 4096));
        // RGB888 rows are 3 bytes a pixel.
        let rgb = RawConfig {
            fourcc: PixelFormat::Rgb888.fourcc(),
            stride: 3071,
            ..seavgabios()
        };
        assert_eq!(
            rgb.validate(&m),
            Err(ConfigError::Stride {
                stride: 3071,
                row: 3072
            })
        );
    }

    #[test]
    fn the_whole_framebuffer_must_be_in_ram() {
        let m = mem();
        let len = 4096 * 768;
        let at = |addr| RawConfig {
            addr,
            ..seavgabios()
        };
        // Ends exactly at the end of the first region: fine.
        assert!(at(16 * MIB - len).validate(&m).is_ok());
        // One byte further runs into the hole.
        assert_eq!(
            at(16 * MIB - len + 1).validate(&m),
            Err(ConfigError::OutsideRam {
                addr: 16 * MIB - len + 1,
                len
            })
        );
        // Straddling the hole, inside the hole, past the end of RAM.
        for addr in [
            16 * MIB - 4096,
            20 * MIB,
            48 * MIB - len + 1,
            48 * MIB,
            1 << 40,
        ] {
            assert_eq!(
                at(addr).validate(&m),
                Err(ConfigError::OutsideRam { addr, len }),
                "{addr:#x}"
            );
        }
        // The second region works too.
        assert!(at(32 * MIB).validate(&m).is_ok());
        // The last row need not be padded to the stride.
        let tight = RawConfig {
            addr: 16 * MIB - (8192 * 767 + 4096),
            stride: 8192,
            ..seavgabios()
        };
        assert!(tight.validate(&m).is_ok());
    }

    #[test]
    fn addresses_near_the_top_do_not_overflow() {
        let m = mem();
        for addr in [u64::MAX, u64::MAX - 4096 * 768 + 2] {
            let raw = RawConfig {
                addr,
                ..seavgabios()
            };
            assert_eq!(
                raw.validate(&m),
                Err(ConfigError::AddressOverflow {
                    addr,
                    len: 4096 * 768
                })
            );
        }
        // Ends exactly at 2^64 - 1: no overflow, but no RAM either.
        let addr = u64::MAX - 4096 * 768;
        let raw = RawConfig {
            addr,
            ..seavgabios()
        };
        assert!(matches!(
            raw.validate(&m),
            Err(ConfigError::OutsideRam { .. })
        ));
        // The largest stride with the largest height: a span past 2^32 is computed exactly.
        let raw = RawConfig {
            addr: 0,
            height: MAX_DISPLAY_SIDE,
            stride: u32::MAX,
            ..seavgabios()
        };
        assert_eq!(
            raw.validate(&m),
            Err(ConfigError::OutsideRam {
                addr: 0,
                len: u64::from(u32::MAX) * 4095 + 4096
            })
        );
    }

    #[test]
    fn flags_are_ignored() {
        let raw = RawConfig {
            flags: u32::MAX,
            ..seavgabios()
        };
        assert_eq!(raw.validate(&mem()), seavgabios().validate(&mem()));
    }

    #[test]
    fn pixels_convert_to_xrgb() {
        let mut out = [0u32; 2];
        PixelFormat::Xrgb8888.to_xrgb(&[0x33, 0x22, 0x11, 0xff, 1, 2, 3, 4], &mut out);
        assert_eq!(out, [0x11_2233, 0x03_0201]);
        PixelFormat::Argb8888.to_xrgb(&[0x33, 0x22, 0x11, 0x80, 0, 0, 0, 0], &mut out);
        assert_eq!(out[0], 0x11_2233);
        PixelFormat::Xbgr8888.to_xrgb(&[0x11, 0x22, 0x33, 0xff, 0, 0, 0, 0], &mut out);
        assert_eq!(out[0], 0x11_2233);
        PixelFormat::Abgr8888.to_xrgb(&[0x11, 0x22, 0x33, 0xff, 0, 0, 0, 0], &mut out);
        assert_eq!(out[0], 0x11_2233);
        PixelFormat::Rgb888.to_xrgb(&[0x33, 0x22, 0x11, 0xcc, 0xbb, 0xaa], &mut out);
        assert_eq!(out, [0x11_2233, 0xaa_bbcc]);
        PixelFormat::Bgr888.to_xrgb(&[0x11, 0x22, 0x33, 0xaa, 0xbb, 0xcc], &mut out);
        assert_eq!(out, [0x11_2233, 0xaa_bbcc]);
        // Full red, full green+blue.
        PixelFormat::Rgb565.to_xrgb(
            &0xf800u16
                .to_le_bytes()
                .iter()
                .chain(&0x07ffu16.to_le_bytes())
                .copied()
                .collect::<Vec<_>>(),
            &mut out,
        );
        assert_eq!(out, [0xff_0000, 0x00_ffff]);
    }
}

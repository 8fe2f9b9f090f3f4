//! The Bochs VBE "DISPI" registers (ports 0x1CE index / 0x1CF data, and BAR 2 at 0x500 with
//! one 16-bit register every 2 bytes): the linear-framebuffer modes SeaVGABIOS's VBE,
//! OVMF's QemuVideoDxe and Linux's `bochs` DRM driver set.
//!
//! The guest writes any values; the mode only counts as valid ([`Dispi::mode`]) when its
//! geometry fits the video memory, so the renderer never reads past it.

pub const INDEX_PORT: u16 = 0x1ce;
/// 0x1CE index, 0x1CF (and 0x1D0, where 16-bit data accesses land) data.
pub const PORTS_LEN: u16 = 3;

pub const ID: usize = 0;
pub const XRES: usize = 1;
pub const YRES: usize = 2;
pub const BPP: usize = 3;
pub const ENABLE: usize = 4;
pub const VIRT_WIDTH: usize = 6;
pub const VIRT_HEIGHT: usize = 7;
pub const X_OFFSET: usize = 8;
pub const Y_OFFSET: usize = 9;
pub const VIDEO_MEMORY_64K: usize = 10;
const COUNT: usize = 11;

/// The newest interface revision, which QEMU offers too.
pub const ID5: u16 = 0xb0c5;
const ID_MIN: u16 = 0xb0c0;

pub const ENABLED: u16 = 0x01;
pub const GETCAPS: u16 = 0x02;
pub const LFB_ENABLED: u16 = 0x40;
pub const NOCLEARMEM: u16 = 0x80;

/// Largest mode offered, as QEMU's stdvga does.
pub const MAX_XRES: u16 = vireo_vmm_api::limits::VGA_MAX_WIDTH as u16;
pub const MAX_YRES: u16 = vireo_vmm_api::limits::VGA_MAX_HEIGHT as u16;
pub const MAX_BPP: u16 = 32;

/// A mode the renderer can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub bpp: u32,
    /// Bytes from one line to the next.
    pub stride: u32,
    /// Byte offset of the visible top-left pixel in video memory.
    pub offset: u64,
}

pub struct Dispi {
    index: u16,
    regs: [u16; COUNT],
    vram_size: u64,
}

/// What a register write asks of the device besides storing the value.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// A mode was enabled without NOCLEARMEM: the guest expects black video memory.
    ClearVram,
}

impl Dispi {
    pub fn new(vram_size: u64) -> Dispi {
        let mut regs = [0; COUNT];
        regs[ID] = ID5;
        regs[VIDEO_MEMORY_64K] = u16::try_from(vram_size >> 16).unwrap_or(u16::MAX);
        Dispi {
            index: 0,
            regs,
            vram_size,
        }
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn set_index(&mut self, i: u16) {
        self.index = i;
    }

    pub fn read(&self, i: u16) -> u16 {
        let i = usize::from(i);
        let caps = self.regs[ENABLE] & GETCAPS != 0;
        match i {
            XRES if caps => MAX_XRES,
            YRES if caps => MAX_YRES,
            BPP if caps => MAX_BPP,
            _ => self.regs.get(i).copied().unwrap_or(0),
        }
    }

    pub fn write(&mut self, i: u16, v: u16) -> Effect {
        let i = usize::from(i);
        match i {
            // The guest negotiates the revision by writing the one it wants.
            ID => {
                if (ID_MIN..=ID5).contains(&v) {
                    self.regs[ID] = v;
                }
                Effect::None
            }
            VIDEO_MEMORY_64K => Effect::None,
            ENABLE => {
                let was = self.regs[ENABLE] & ENABLED != 0;
                self.regs[ENABLE] = v;
                if v & ENABLED != 0 {
                    // Enabling resets the virtual size to the visible one, as Bochs does.
                    self.regs[VIRT_WIDTH] = self.regs[XRES];
                    self.regs[VIRT_HEIGHT] = self.regs[YRES];
                    self.regs[X_OFFSET] = 0;
                    self.regs[Y_OFFSET] = 0;
                    if !was && v & NOCLEARMEM == 0 {
                        return Effect::ClearVram;
                    }
                }
                Effect::None
            }
            VIRT_WIDTH => {
                self.regs[VIRT_WIDTH] = v;
                Effect::None
            }
            _ if i < COUNT => {
                self.regs[i] = v;
                Effect::None
            }
            _ => Effect::None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.regs[ENABLE] & ENABLED != 0
    }

    /// The enabled mode, if its geometry is one the renderer draws and fits video memory.
    pub fn mode(&self) -> Option<Mode> {
        if !self.enabled() {
            return None;
        }
        let bpp = u32::from(self.regs[BPP]);
        if ![8, 15, 16, 24, 32].contains(&bpp) {
            return None;
        }
        let width = u32::from(self.regs[XRES]);
        let height = u32::from(self.regs[YRES]);
        if width == 0 || height == 0 || width > MAX_XRES.into() || height > MAX_YRES.into() {
            return None;
        }
        let bytes = bpp.div_ceil(8);
        let virt = u32::from(self.regs[VIRT_WIDTH]).max(width);
        let stride = virt * bytes;
        let x = u64::from(self.regs[X_OFFSET]);
        let y = u64::from(self.regs[Y_OFFSET]);
        let offset = y * u64::from(stride) + x * u64::from(bytes);
        let end = offset + u64::from(height - 1) * u64::from(stride) + u64::from(width * bytes);
        (end <= self.vram_size).then_some(Mode {
            width,
            height,
            bpp,
            stride,
            offset,
        })
    }

    /// Programs a mode as firmware would (a direct kernel boot has none).
    pub fn set_mode(&mut self, width: u16, height: u16) {
        self.regs[XRES] = width;
        self.regs[YRES] = height;
        self.regs[BPP] = 32;
        self.write(ENABLE as u16, ENABLED | LFB_ENABLED | NOCLEARMEM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VRAM: u64 = 16 << 20;

    #[test]
    fn identifies_and_reports_memory_and_caps() {
        let mut d = Dispi::new(VRAM);
        assert_eq!(d.read(ID as u16), ID5);
        d.write(ID as u16, 0xb0c0);
        assert_eq!(d.read(ID as u16), 0xb0c0);
        d.write(ID as u16, 0x1234);
        assert_eq!(d.read(ID as u16), 0xb0c0);
        assert_eq!(d.read(VIDEO_MEMORY_64K as u16), 256);
        d.write(ENABLE as u16, GETCAPS);
        assert_eq!(d.read(XRES as u16), MAX_XRES);
        assert_eq!(d.read(BPP as u16), MAX_BPP);
        d.write(ENABLE as u16, 0);
        assert_eq!(d.read(XRES as u16), 0);
    }

    #[test]
    fn a_mode_counts_only_when_it_fits() {
        let mut d = Dispi::new(VRAM);
        d.write(XRES as u16, 1024);
        d.write(YRES as u16, 768);
        d.write(BPP as u16, 32);
        assert_eq!(d.mode(), None, "not enabled yet");
        assert_eq!(
            d.write(ENABLE as u16, ENABLED | LFB_ENABLED),
            Effect::ClearVram
        );
        let m = d.mode().expect("mode");
        assert_eq!(
            (m.width, m.height, m.stride, m.offset),
            (1024, 768, 4096, 0)
        );
        // Panning: the offset moves the visible window; past video memory it is refused.
        d.write(Y_OFFSET as u16, 768);
        assert_eq!(d.mode().map(|m| m.offset), Some(768 * 4096));
        d.write(Y_OFFSET as u16, 4000);
        assert_eq!(d.mode(), None);
        d.write(Y_OFFSET as u16, 0);
        d.write(BPP as u16, 4);
        assert_eq!(d.mode(), None, "planar 4 bpp is not drawn");
        d.write(BPP as u16, 32);
        d.write(XRES as u16, 4096);
        assert_eq!(d.mode(), None);
    }

    #[test]
    fn enabling_again_or_with_noclearmem_keeps_memory() {
        let mut d = Dispi::new(VRAM);
        d.write(XRES as u16, 640);
        d.write(YRES as u16, 480);
        d.write(BPP as u16, 32);
        assert_eq!(d.write(ENABLE as u16, ENABLED | NOCLEARMEM), Effect::None);
        assert_eq!(d.write(ENABLE as u16, ENABLED), Effect::None);
    }
}

//! QEMU's standard VGA (`-vga std`, PCI 1234:1111): the one display device every stage of a
//! PC's boot can drive. SeaBIOS runs its option ROM (Debian's `vgabios-stdvga.bin`, offered
//! as fw_cfg `pci1234,1111.rom`), which uses real VGA text mode: characters go straight to the
//! legacy window, no mode switches per character as with ramfb's emulated text (which took
//! minutes per GRUB menu under nested virtualization). Boot loaders and OVMF's QemuVideoDxe
//! set linear modes through the Bochs VBE registers; Linux's `bochs` DRM driver binds it and
//! reads the EDID for the preferred mode.
//!
//! - BAR 0: 16 MiB of video memory, a dirty-logged KVM slot wherever the guest puts it.
//! - BAR 2 (4 KiB MMIO, QEMU's layout): EDID at 0x000, the VGA ports 0x3C0-0x3DF at 0x400,
//!   the VBE registers at 0x500, QEMU's extended registers (size, byte order) at 0x600.
//! - Ports 0x3B0-0x3DF (VGA) and 0x1CE-0x1D0 (VBE), always decoded, as on the real card
//!   (the BIOS programs them before any BAR exists).
//! - The legacy window 0xA0000-0xBFFFF is guest RAM ([`text`] says why that is enough).
//!
//! The screen ([`FramebufferSource`]) is the VBE mode while one is enabled, else the legacy
//! mode; a change of either changes its size, which VNC clients get as a desktop resize.

mod dispi;
pub mod edid;
mod regs;
mod text;
mod vram;

use std::sync::{Arc, Mutex, PoisonError};

use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;

use crate::devices::bus::BusDevice;
use crate::devices::framebuffer::pages_to_rows;
use crate::pci::config::{BarKind, BarWindow, ConfigSpace, Identity, Space};
use crate::pci::root::PciFunction;
use crate::vnc::FramebufferSource;
pub use dispi::{INDEX_PORT as VBE_PORT, PORTS_LEN as VBE_PORTS_LEN};
pub use regs::{PORT_BASE as VGA_PORT_BASE, PORT_LEN as VGA_PORT_LEN};
use text::Legacy;

pub use vireo_vmm_api::limits::VGA_VRAM_SIZE;

/// The fw_cfg name SeaBIOS looks for the device's option ROM under.
pub const ROM_NAME: &str = "pci1234,1111.rom";

const MMIO_BAR: usize = 2;
const MMIO_SIZE: u64 = 0x1000;
const MMIO_EDID: u64 = 0x000;
const MMIO_VGA: u64 = 0x400;
const MMIO_VBE: u64 = 0x500;
const MMIO_QEXT: u64 = 0x600;
/// QEMU's extended registers: their size, then the framebuffer's byte order (little).
const QEXT_SIZE: u32 = 8;
const QEXT_LITTLE_ENDIAN: u32 = 0x1e1e_1e1e;

struct State {
    regs: regs::VgaRegs,
    dispi: dispi::Dispi,
    edid: [u8; edid::EDID_SIZE],
}

/// The device; clones share it (the PCI function, the port handlers and the VNC server's
/// source are all one card).
#[derive(Clone)]
pub struct StdVga {
    state: Arc<Mutex<State>>,
    vram: Arc<vram::Vram>,
    mem: GuestMemoryMmap,
}

impl StdVga {
    /// A card whose EDID prefers `width` x `height`; `vm` is `None` in tests (no KVM slot).
    pub fn new(
        vm: Option<Arc<VmFd>>,
        mem: GuestMemoryMmap,
        width: u32,
        height: u32,
    ) -> std::io::Result<StdVga> {
        let vram = vram::Vram::new(vm, VGA_VRAM_SIZE as usize)?;
        Ok(StdVga {
            state: Arc::new(Mutex::new(State {
                regs: regs::VgaRegs::new(),
                dispi: dispi::Dispi::new(vram.size()),
                edid: edid::build(width, height),
            })),
            vram: Arc::new(vram),
            mem,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The PCI function (configuration space and BARs) of this card.
    pub fn function(&self) -> Result<VgaFunction, crate::pci::config::ConfigError> {
        VgaFunction::new(self.clone())
    }

    /// The legacy VGA ports' handler (0x3B0..0x3E0).
    pub fn vga_ports(&self) -> VgaPorts {
        VgaPorts(self.clone())
    }

    /// The VBE ports' handler (0x1CE..0x1D1).
    pub fn vbe_ports(&self) -> VbePorts {
        VbePorts(self.clone())
    }

    /// A direct kernel boot has no firmware to set a mode: a `width` x `height` 32-bit linear
    /// mode, as firmware would leave it. Returns the video memory's guest address for
    /// boot_params.screen_info, if BAR 0 is placed.
    pub fn set_boot_mode(&self, width: u16, height: u16) -> Option<u64> {
        self.state().dispi.set_mode(width, height);
        self.vram.base()
    }

    fn vbe_write(&self, index: u16, v: u16) {
        let (effect, clear_len) = {
            let mut s = self.state();
            let effect = s.dispi.write(index, v);
            let len = s.dispi.mode().map_or(self.vram.size(), |m| {
                u64::from(m.stride) * u64::from(m.height)
            });
            (effect, len)
        };
        if effect == dispi::Effect::ClearVram {
            self.vram.clear(clear_len);
        }
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match offset {
            o if o < MMIO_EDID + edid::EDID_SIZE as u64 => {
                let s = self.state();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = s.edid.get(o as usize + i).copied().unwrap_or(0);
                }
            }
            o if (MMIO_VGA..MMIO_VGA + 0x20).contains(&o) => {
                self.state().regs.read_ports(mmio_vga_port(o), data);
            }
            o if (MMIO_VBE..MMIO_VBE + 0x20).contains(&o) && data.len() == 2 && o % 2 == 0 => {
                let v = self.state().dispi.read(((o - MMIO_VBE) / 2) as u16);
                data.copy_from_slice(&v.to_le_bytes());
            }
            o if (MMIO_QEXT..MMIO_QEXT + u64::from(QEXT_SIZE)).contains(&o) && data.len() == 4 => {
                let v = match o - MMIO_QEXT {
                    0 => QEXT_SIZE,
                    4 => QEXT_LITTLE_ENDIAN,
                    _ => 0,
                };
                data.copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) {
        match offset {
            o if (MMIO_VGA..MMIO_VGA + 0x20).contains(&o) => {
                self.state().regs.write_ports(mmio_vga_port(o), data);
            }
            o if (MMIO_VBE..MMIO_VBE + 0x20).contains(&o) && data.len() == 2 && o % 2 == 0 => {
                self.vbe_write(
                    ((o - MMIO_VBE) / 2) as u16,
                    u16::from_le_bytes([data[0], data[1]]),
                );
            }
            // The byte-order register only takes little-endian, the one x86 guests write.
            _ => {}
        }
    }

    fn screen(&self) -> Screen {
        Screen::of(&self.state())
    }
}

/// The port BAR 2's VGA window maps `offset` to (0x400 is 0x3C0).
fn mmio_vga_port(offset: u64) -> u16 {
    0x3c0 + (offset - MMIO_VGA) as u16
}

enum Screen {
    Linear(dispi::Mode),
    Legacy(Legacy),
    /// A VBE mode the renderer cannot show (bad geometry): black at the last size.
    Blank,
}

impl Screen {
    fn of(s: &State) -> Screen {
        match s.dispi.mode() {
            Some(m) => Screen::Linear(m),
            None if s.dispi.enabled() => Screen::Blank,
            None => Screen::Legacy(Legacy::of(&s.regs)),
        }
    }
}

/// What clients see while the guest shows nothing drawable.
const BLANK_SIZE: (u32, u32) = (640, 480);

impl FramebufferSource for StdVga {
    fn size(&self) -> (u32, u32) {
        match self.screen() {
            Screen::Linear(m) => (m.width, m.height),
            Screen::Legacy(l) => l.size(),
            Screen::Blank => BLANK_SIZE,
        }
    }

    fn take_dirty_rows(&self, rows: &mut [bool]) {
        // The dirty log is taken in every mode so it never carries stale pages into the next.
        let pages = self.vram.take_dirty_pages();
        match (self.screen(), pages) {
            (Screen::Linear(m), Some(pages)) => {
                let first = (m.offset / 4096) as usize;
                let shifted: Vec<usize> = pages
                    .into_iter()
                    .filter(|p| *p >= first)
                    .map(|p| p - first)
                    .collect();
                pages_to_rows(&shifted, m.stride as usize, rows);
                // Rows of a panned screen start mid-page: the page numbers above are off.
                if m.offset % 4096 != 0 {
                    rows.iter_mut().for_each(|r| *r = true);
                }
            }
            // Legacy modes live in guest RAM, which has no log: the server compares.
            _ => rows.iter_mut().for_each(|r| *r = true),
        }
    }

    fn read_pixels(&self, x: u32, y: u32, out: &mut [u32]) {
        out.fill(0);
        // One lock for the mode and the drawing: this runs for every row of every scan.
        let s = self.state();
        match Screen::of(&s) {
            Screen::Linear(m) => {
                if x >= m.width || y >= m.height {
                    return;
                }
                let n = out.len().min((m.width - x) as usize);
                let bytes = m.bpp.div_ceil(8) as usize;
                let at =
                    m.offset + u64::from(y) * u64::from(m.stride) + u64::from(x) * bytes as u64;
                let mut buf = vec![0u8; n * bytes];
                if !self.vram.read(at, &mut buf) {
                    return;
                }
                for (o, p) in out.iter_mut().zip(buf.chunks_exact(bytes)) {
                    *o = match m.bpp {
                        32 | 24 => u32::from(p[2]) << 16 | u32::from(p[1]) << 8 | u32::from(p[0]),
                        16 => rgb565(u16::from_le_bytes([p[0], p[1]])),
                        15 => rgb555(u16::from_le_bytes([p[0], p[1]])),
                        _ => s.regs.dac_rgb(p[0]),
                    };
                }
            }
            Screen::Legacy(l) => text::draw_row(&s.regs, &self.mem, l, x, y, out),
            Screen::Blank => {}
        }
    }
}

fn widen(v: u16, bits: u32) -> u32 {
    let v = u32::from(v);
    (v << (8 - bits)) | (v >> (2 * bits - 8))
}

fn rgb565(p: u16) -> u32 {
    widen(p >> 11, 5) << 16 | widen((p >> 5) & 0x3f, 6) << 8 | widen(p & 0x1f, 5)
}

fn rgb555(p: u16) -> u32 {
    widen((p >> 10) & 0x1f, 5) << 16 | widen((p >> 5) & 0x1f, 5) << 8 | widen(p & 0x1f, 5)
}

/// Ports 0x3B0..0x3DF. Word accesses are index/data pairs, as `outw` to 0x3C4 writes the
/// sequencer's index and then its data.
pub struct VgaPorts(StdVga);

impl BusDevice for VgaPorts {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]) {
        self.0.state().regs.read_ports((base + offset) as u16, data);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
        self.0
            .state()
            .regs
            .write_ports((base + offset) as u16, data);
    }
}

/// Ports 0x1CE (index) and 0x1CF/0x1D0 (data), 16 bits wide.
pub struct VbePorts(StdVga);

impl BusDevice for VbePorts {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let s = self.0.state();
        let v = match offset {
            0 => s.dispi.index(),
            _ => s.dispi.read(s.dispi.index()),
        };
        let b = v.to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = b.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let v = match data {
            [lo] => u16::from(*lo),
            [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
            [] => return,
        };
        match offset {
            0 => self.0.state().dispi.set_index(v),
            _ => {
                let index = self.0.state().dispi.index();
                self.0.vbe_write(index, v);
            }
        }
    }
}

/// The card on PCI: 1234:1111, class VGA-compatible display controller.
pub struct VgaFunction {
    card: StdVga,
    config: ConfigSpace,
}

impl VgaFunction {
    fn new(card: StdVga) -> Result<VgaFunction, crate::pci::config::ConfigError> {
        let mut config = ConfigSpace::new(Identity {
            vendor: 0x1234,
            device: 0x1111,
            revision: 2,
            class: [0x03, 0x00, 0x00],
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
            interrupt_pin: 0,
            multifunction: false,
        });
        config.add_bar(
            0,
            BarKind::Memory32 { prefetchable: true },
            card.vram.size(),
        )?;
        config.add_bar(
            MMIO_BAR,
            BarKind::Memory32 {
                prefetchable: false,
            },
            MMIO_SIZE,
        )?;
        Ok(VgaFunction { card, config })
    }
}

impl PciFunction for VgaFunction {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn bar_read(&mut self, index: usize, offset: u64, data: &mut [u8]) {
        match index {
            MMIO_BAR => self.card.mmio_read(offset, data),
            // BAR 0 is a memory slot; an access lands here only while the slot moves.
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, index: usize, offset: u64, data: &[u8]) {
        if index == MMIO_BAR {
            self.card.mmio_write(offset, data);
        }
    }

    fn window_moved(&mut self, window: &BarWindow, mapped: bool) {
        if window.index != 0 || window.space != Space::Memory {
            return;
        }
        let base = mapped.then_some(window.base);
        if let Err(e) = self.card.vram.place(base) {
            log::warn!("VGA: video memory at {:?}: {e}", base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    fn card() -> StdVga {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("memory");
        StdVga::new(None, mem, 1280, 800).expect("card")
    }

    fn vbe(ports: &mut VbePorts, index: u16, v: u16) {
        ports.write(0x1ce, 0, &index.to_le_bytes());
        ports.write(0x1ce, 1, &v.to_le_bytes());
    }

    #[test]
    fn a_vbe_mode_shows_video_memory_at_its_size() {
        let c = card();
        let mut p = c.vbe_ports();
        vbe(&mut p, dispi::XRES as u16, 800);
        vbe(&mut p, dispi::YRES as u16, 600);
        vbe(&mut p, dispi::BPP as u16, 32);
        vbe(
            &mut p,
            dispi::ENABLE as u16,
            dispi::ENABLED | dispi::LFB_ENABLED,
        );
        assert_eq!(c.size(), (800, 600));
        c.vram.write(800 * 4 * 2 + 4 * 3, &[0x30, 0x20, 0x10, 0xff]);
        let mut px = [0u32; 2];
        c.read_pixels(3, 2, &mut px);
        assert_eq!(px, [0x10_20_30, 0]);
        // Off again: the legacy text screen (all registers zero: one character).
        vbe(&mut p, dispi::ENABLE as u16, 0);
        assert_eq!(c.size(), (9, 1));
    }

    #[test]
    fn the_mmio_bar_serves_edid_vbe_and_the_vga_ports() {
        let c = card();
        let mut f = c.function().expect("function");
        let mut hdr = [0u8; 8];
        f.bar_read(MMIO_BAR, 0, &mut hdr);
        assert_eq!(hdr, [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        let mut id = [0u8; 2];
        f.bar_read(MMIO_BAR, MMIO_VBE, &mut id);
        assert_eq!(u16::from_le_bytes(id), dispi::ID5);
        let mut mem64k = [0u8; 2];
        f.bar_read(
            MMIO_BAR,
            MMIO_VBE + 2 * dispi::VIDEO_MEMORY_64K as u64,
            &mut mem64k,
        );
        assert_eq!(u16::from_le_bytes(mem64k), 256);
        // Misc output through the MMIO copy of 0x3C2, read back at 0x3CC.
        f.bar_write(MMIO_BAR, MMIO_VGA + 2, &[0x67]);
        let mut misc = [0u8];
        f.bar_read(MMIO_BAR, MMIO_VGA + 0x0c, &mut misc);
        assert_eq!(misc, [0x67]);
        let mut q = [0u8; 4];
        f.bar_read(MMIO_BAR, MMIO_QEXT, &mut q);
        assert_eq!(u32::from_le_bytes(q), QEXT_SIZE);
    }

    #[test]
    fn word_writes_to_an_index_port_set_index_and_data() {
        let c = card();
        let mut p = c.vga_ports();
        // outw(0x0101, 0x3C4): sequencer index 1, data 1 (8-dot characters).
        p.write(0x3b0, 0x14, &[0x01, 0x01]);
        assert_eq!(c.state().regs.char_width(), 8);
    }

    #[test]
    fn enabling_a_mode_clears_what_it_shows() {
        let c = card();
        c.vram.write(0, &[0xff; 16]);
        let mut p = c.vbe_ports();
        vbe(&mut p, dispi::XRES as u16, 640);
        vbe(&mut p, dispi::YRES as u16, 480);
        vbe(&mut p, dispi::BPP as u16, 32);
        vbe(&mut p, dispi::ENABLE as u16, dispi::ENABLED);
        let mut b = [1u8; 16];
        assert!(c.vram.read(0, &mut b));
        assert_eq!(b, [0; 16]);
    }

    #[test]
    fn sixteen_bit_pixels_widen_to_full_range() {
        assert_eq!(rgb565(0xffff), 0xff_ff_ff);
        assert_eq!(rgb565(0xf800), 0xff_00_00);
        assert_eq!(rgb555(0x001f), 0x00_00_ff);
        assert_eq!(rgb555(0), 0);
    }
}

//! Glue between the VNC server and the VMM: input into the guest's devices, the control
//! socket's `screendump` / `vnc-info` commands, and the `resolution-changed` event.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vireo_vmm_api::control::{Command, Done, Event, Return};

use super::{FramebufferSource, InputSink, PointerEvent, VncConfig, VncEvent, VncServer, XtKey};
use crate::control::events::EventBus;
use crate::control::ControlHandler;
use crate::devices::framebuffer::GuestFramebuffer;
use crate::devices::i8042::KeyboardInput;
use crate::virtio::input::InputHandle;

/// Keys go to the i8042 keyboard as set-1 bytes; pointer events go to the virtio tablet
/// when the machine has one, and are dropped otherwise (the PS/2 mouse is not emulated, so
/// a guest without a tablet sees no pointer at all).
pub struct GuestInput {
    keyboard: Option<KeyboardInput>,
    virtio: Option<InputHandle>,
    warned: AtomicBool,
}

impl GuestInput {
    pub fn new(keyboard: Option<KeyboardInput>, virtio: Option<InputHandle>) -> GuestInput {
        GuestInput {
            keyboard,
            virtio,
            warned: AtomicBool::new(false),
        }
    }
}

impl InputSink for GuestInput {
    fn key(&self, key: XtKey, down: bool) {
        if let Some(k) = &self.keyboard {
            k.push_scancodes(&key.bytes(down));
        }
    }

    fn pointer(&self, e: PointerEvent) {
        match &self.virtio {
            Some(v) if v.has_tablet() => v.pointer_abs(
                u32::from(e.x),
                u32::from(e.y),
                u32::from(e.width),
                u32::from(e.height),
                e.buttons,
            ),
            _ => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    log::info!("VNC: pointer events dropped: this machine has no virtio tablet");
                }
            }
        }
    }

    fn leds(&self) -> Option<u8> {
        self.keyboard.as_ref().map(KeyboardInput::leds)
    }
}

/// Maps the VMM config's display section to a server config (TCP on 127.0.0.1 only);
/// `seccomp` is the VM config's switch for all thread filters.
pub fn server_config(vm_name: &str, vnc: &crate::config::VncConfig, seccomp: bool) -> VncConfig {
    VncConfig {
        unix_path: vnc.unix_socket.clone(),
        tcp: vnc
            .tcp_port
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))),
        password: vnc.password.clone(),
        name: vm_name.to_string(),
        seccomp,
        ..VncConfig::default()
    }
}

/// Starts the server for a VM: pixels from `source` (its framebuffer memory, or ramfb during
/// firmware boot), keys into its i8042, pointer into its virtio tablet if any; resolution
/// changes become `resolution-changed` events on the control socket.
pub fn start_for_vm(
    config: VncConfig,
    source: Arc<dyn FramebufferSource>,
    keyboard: Option<KeyboardInput>,
    virtio: Option<InputHandle>,
    events: Option<EventBus>,
) -> Result<Arc<VncServer>, super::server::VncError> {
    let input = Arc::new(GuestInput::new(keyboard, virtio));
    let on_event: Option<Box<dyn Fn(VncEvent) + Send + Sync>> = events.map(|bus| {
        Box::new(move |e: VncEvent| match e {
            VncEvent::Resized { width, height } => {
                bus.emit(Event::ResolutionChanged { width, height })
            }
            VncEvent::ClientConnected { id, peer } => bus.emit(Event::VncConnected { id, peer }),
            VncEvent::ClientDisconnected { id, reason } => {
                bus.emit(Event::VncDisconnected { id, reason })
            }
        }) as Box<dyn Fn(VncEvent) + Send + Sync>
    });
    Ok(Arc::new(super::start(config, source, input, on_event)?))
}

/// Control-socket commands:
/// - `screendump` `{"filename": "/abs/path.png"}` → `{}`: writes the screen as PNG.
/// - `vnc-info` → `{"unix_path", "tcp", "auth", "width", "height", "clients": [..]}`.
pub struct VncControl {
    server: Arc<VncServer>,
}

impl VncControl {
    pub fn new(server: Arc<VncServer>) -> VncControl {
        VncControl { server }
    }
}

impl ControlHandler for VncControl {
    fn commands(&self) -> Vec<&'static str> {
        vec!["screendump", "vnc-info"]
    }

    fn handle(&mut self, command: &Command) -> Option<Result<Return, String>> {
        match command {
            Command::Screendump { filename } => Some(screendump(&self.server, filename)),
            Command::VncInfo => Some(Ok(Return::VncInfo(self.server.info()))),
            _ => None,
        }
    }
}

fn screendump(server: &VncServer, path: &Path) -> Result<Return, String> {
    if !path.is_absolute() {
        return Err(format!(
            "screendump: filename {:?} must be an absolute path",
            path.display().to_string()
        ));
    }
    server.screendump(path).map_err(|e| e.to_string())?;
    Ok(Return::Done(Done {}))
}

/// The VM builder's hook: when the config has a display with a VNC listener, starts the
/// server on the VM's screen, i8042 keyboard and virtio tablet (if attached), and adds
/// `screendump` / `vnc-info` to the control socket. The server lives as long as the control
/// handler, i.e. the process.
///
/// The screen is the framebuffer memory of a direct kernel boot, or ramfb (see
/// [`crate::vm::Vm::ramfb`]) when the machine boots firmware: the firmware and the boot
/// loader draw there, and its mode changes reach clients as desktop resizes.
///
/// Call after `attach_all` (virtio), from `Vm::attach_optional_devices`, with the virtio
/// input handle if there is one.
pub fn attach(
    vm: &mut crate::vm::Vm,
    virtio: Option<InputHandle>,
) -> Result<(), crate::vm::VmError> {
    let Some(display) = vm.config.display.clone() else {
        return Ok(());
    };
    if display.vnc.unix_socket.is_none() && display.vnc.tcp_port.is_none() {
        return Ok(());
    }
    let source: Arc<dyn FramebufferSource> = if let Some(vga) = &vm.vga {
        Arc::new(vga.clone())
    } else if vm.config.firmware.is_some() {
        match vm.ramfb() {
            Some(ramfb) => Arc::new(ramfb),
            None => return Ok(()),
        }
    } else {
        match vm.framebuffer()? {
            Some(fb) => Arc::new(GuestFramebuffer::new(fb)),
            None => return Ok(()),
        }
    };
    let server = start_for_vm(
        server_config(&vm.config.name, &display.vnc, vm.config.seccomp),
        source,
        Some(vm.keyboard.clone()),
        virtio,
        Some(vm.events.clone()),
    )
    .map_err(|e| crate::vm::VmError::Device(e.to_string()))?;
    vm.add_control_handler(Box::new(VncControl::new(server)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::fw_cfg::FwCfgWriteHook;
    use crate::devices::ramfb::{PixelFormat, RawConfig, BLANK_SIZE};
    use vireo_vmm_api::config::{DisplayConfig, FirmwareConfig, VmConfig};
    use vm_memory::{Bytes, GuestAddress};

    fn info(vm: &mut crate::vm::Vm) -> crate::vnc::VncInfo {
        let h = vm
            .control_handlers
            .iter_mut()
            .find(|h| h.commands().contains(&"vnc-info"))
            .expect("VNC control handler");
        match h.handle(&Command::VncInfo) {
            Some(Ok(Return::VncInfo(i))) => i,
            other => panic!("vnc-info: {other:?}"),
        }
    }

    /// A firmware-booted machine with a display serves ramfb (on the local /dev/kvm): blank
    /// until the guest configures it, then the guest's mode and pixels, `screendump` included.
    #[test]
    fn a_firmware_machine_shows_ramfb() {
        let dir = std::env::temp_dir().join(format!("vireo-ramfb-attach-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cfg = VmConfig::minimal_firmware(
            "ramfb",
            FirmwareConfig {
                loader: dir.join("bios.bin"),
                vga_rom: None,
                boot_order: Vec::new(),
                boot_menu_timeout_ms: None,
                smbios: Default::default(),
                nvram: None,
            },
            64,
            1,
        );
        let mut display = DisplayConfig::default();
        display.vnc.unix_socket = Some(dir.join("vnc.sock"));
        cfg.display = Some(display);
        cfg.seccomp = false;
        let mut vm = crate::vm::Vm::new(cfg, std::time::Instant::now()).expect("KVM VM");
        attach(&mut vm, None).expect("VNC on ramfb");
        let i = info(&mut vm);
        assert_eq!((i.width, i.height), BLANK_SIZE);

        let mut ramfb = vm
            .ramfb()
            .expect("a firmware machine with a display has ramfb");
        let base = 0x20_0000;
        vm.mem
            .write_slice(&0x0000_ff00u32.to_le_bytes(), GuestAddress(base + 4 * 33))
            .expect("guest RAM");
        ramfb.written(
            &RawConfig {
                addr: base,
                fourcc: PixelFormat::Xrgb8888.fourcc(),
                flags: 0,
                width: 48,
                height: 16,
                stride: 0,
            }
            .to_bytes(),
        );
        let i = info(&mut vm);
        assert_eq!((i.width, i.height), (48, 16));

        let png = dir.join("screen.png");
        let h = vm
            .control_handlers
            .iter_mut()
            .find(|h| h.commands().contains(&"screendump"))
            .expect("screendump handler");
        let r = h.handle(&Command::Screendump {
            filename: png.clone(),
        });
        assert!(matches!(r, Some(Ok(Return::Done(_)))), "{r:?}");
        let decoder = png::Decoder::new(std::fs::File::open(&png).expect("png written"));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).expect("png data");
        assert_eq!((frame.width, frame.height), (48, 16));
        assert_eq!(&buf[33 * 3..34 * 3], &[0, 0xff, 0]);
        assert_eq!(buf.iter().filter(|&&b| b != 0).count(), 1);
        drop(vm);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

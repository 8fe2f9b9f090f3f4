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
    let source: Arc<dyn FramebufferSource> = if vm.config.firmware.is_some() {
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

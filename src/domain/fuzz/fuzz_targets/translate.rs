//! Domain XML through the driver's whole path to the VMM: parse and validate (as every stored
//! definition is), then translate into the VMM's configuration. Any document may be refused,
//! with an error; none may panic, and a configuration that translation hands out must pass the
//! VMM's own validation, since the driver writes it for the helper to start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_driver::rundir::RunDir;
use vireo_driver::translate::translate;
use vireo_driver::Definition;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(def) = Definition::parse(text) else {
        return;
    };
    let run = RunDir::new("/nonexistent/vireo-fuzz/run");
    let nvram = std::path::Path::new("/nonexistent/vireo-fuzz/nvram");
    if let Ok(mut t) = translate(&def.dom, &run, nvram, &mut || Some(5900)) {
        // A UEFI store still to make is a copy of its template at start: the template stands
        // in for it here.
        if let (Some(copy), Some(fw)) = (&t.nvram_from_template, t.config.firmware.as_mut()) {
            fw.nvram = Some(copy.template.clone());
        }
        if let Err(e) = t.config.validate() {
            panic!("translate made a config the VMM refuses: {e}\n{text}");
        }
    }
});

//! The JSON the VMM reads from others: control-socket request lines (any local client of the
//! user's may write them) and the VM configuration file. Request lines: parsing never panics; a
//! request that parses is written back and parses to the same request; a refused line's error
//! reply is one line of JSON. Configs: a config that parses and validates is written back and
//! reads as the same config, and validation never panics on what serde accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vireo_vmm::config::VmConfig;
use vireo_vmm_api::control::{to_json, Command, Done, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let answers = |name: &str| which & 2 == 0 || Command::CORE.contains(&name);
        match Request::parse(rest, answers) {
            Ok(req) => {
                let line = to_json(&req).expect("a parsed request serialises");
                let again = Request::parse(line.as_bytes(), |_| true)
                    .unwrap_or_else(|e| panic!("{line} does not parse again: {e:?}"));
                assert_eq!(again, req, "{line}");
            }
            Err(rejected) => {
                let reply: Reply<Done> = rejected.reply();
                let line = to_json(&reply).expect("an error reply serialises");
                assert!(!line.contains('\n'), "{line}");
                let _: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
            }
        }
    } else if let Ok(cfg) = serde_json::from_slice::<VmConfig>(rest) {
        if cfg.validate().is_ok() {
            let text = serde_json::to_string(&cfg).expect("a config serialises");
            let again: VmConfig = serde_json::from_str(&text).expect("its own JSON parses");
            assert_eq!(again, cfg);
            again.validate().expect("still valid");
        }
    }
});

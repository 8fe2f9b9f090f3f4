//! Runs Debian's stock kernel under `vireo-vmm` inside the nested-KVM rig (vireo-rig), with a
//! control-protocol driver (l2/driver.py, python3 from the host's /usr in L1) that waits for
//! serial output and sends commands.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use vireo_rig::initramfs::{concat, Initramfs};
use vireo_rig::modules::ModuleIndex;
use vireo_rig::{debian, GuestImage};

const DRIVER: &str = include_str!("driver.py");

/// One L2 boot.
pub struct L2 {
    pub name: String,
    pub vcpus: u8,
    pub memory_mib: u64,
    pub cmdline_extra: String,
    /// Scenario script (sourced by the rig's L2 init, with the vireo_* helpers).
    pub scenario: String,
    /// Extra modules (by name) copied to /lib/vireo-extra/NAME.ko.
    pub extra_modules: Vec<&'static str>,
    /// Driver steps (see driver.py).
    pub steps: Vec<Value>,
    pub timeout: Duration,
    /// The scenario makes the guest triple-fault on purpose; any other triple fault is the
    /// nested rig's (see tests/rig/README.md) and the boot is run once more.
    pub triple_fault_expected: bool,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    pub exit: Option<i32>,
    pub serial: String,
    pub stderr: String,
    pub driver: Vec<Value>,
    pub raw: String,
}

impl Outcome {
    pub fn events(&self) -> Vec<String> {
        self.driver
            .iter()
            .filter(|d| d["op"] == "event")
            .filter_map(|d| d["msg"]["event"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn step(&self, op: &str, key: &str, val: &str) -> Option<&Value> {
        self.driver.iter().find(|d| d["op"] == op && d[key] == val)
    }

    /// A short dump for assertion messages.
    pub fn dump(&self) -> String {
        let tail: Vec<&str> = self
            .serial
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "exit {:?}\n--- serial (last 40 lines)\n{}\n--- stderr\n{}\n--- driver\n{}",
            self.exit,
            tail.join("\n"),
            self.stderr,
            self.driver
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 mitigations=off";

impl L2 {
    pub fn new(name: &str, scenario: &str) -> L2 {
        L2 {
            name: name.to_owned(),
            vcpus: 1,
            memory_mib: 512,
            cmdline_extra: String::new(),
            scenario: scenario.to_owned(),
            extra_modules: Vec::new(),
            steps: Vec::new(),
            timeout: Duration::from_secs(240),
            triple_fault_expected: false,
        }
    }

    fn initrd(&self, image: &GuestImage) -> PathBuf {
        let cache = debian::cache_dir().expect("rig cache");
        let dir = cache
            .join("runs")
            .join(format!("vmm-{}-{}", std::process::id(), self.name));
        std::fs::create_dir_all(&dir).unwrap();
        let mut extra = Initramfs::new();
        extra.file("scenario.sh", 0o644, self.scenario.as_str());
        if !self.extra_modules.is_empty() {
            let kernel = debian::kernel().expect("rig kernel");
            let index = ModuleIndex::new(
                &kernel.modules_dir,
                &cache.join("modules").join(&kernel.release),
            )
            .expect("module index");
            for m in index.resolve(&self.extra_modules).expect("extra modules") {
                extra.host_file(&format!("lib/vireo-extra/{}.ko", m.name), 0o644, &m.path);
            }
        }
        let extra_path = dir.join("scenario.cpio");
        extra.write(&extra_path).unwrap();
        let initrd = dir.join("initrd.cpio");
        concat(&[&image.base_initrd, &extra_path], &initrd).unwrap();
        initrd
    }

    /// Boots it (one retry if L2 shows no sign of life, per the rig's hang statistics).
    /// Boots once; boots once more (a rerun in the ledger) when the first boot gave no
    /// verdict or was lost to a triple fault the scenario did not cause.
    pub fn run(&self) -> Outcome {
        let first = self.run_once();
        match lost_boot(&first, self.triple_fault_expected) {
            Some(why) => {
                eprintln!("{}", first.dump());
                vireo_rig::reruns::note(&format!("L2 boot '{}'", self.name), &why);
                self.run_once()
            }
            None => first,
        }
    }

    fn run_once(&self) -> Outcome {
        let image = GuestImage::stock().unwrap_or_else(|e| panic!("rig guest image: {e}"));
        let initrd = self.initrd(&image);
        let w = format!("/tmp/vvr-{}", self.name);
        let cfg = json!({
            "version": 1,
            "name": self.name,
            "memory_mib": self.memory_mib,
            "vcpus": self.vcpus,
            "kernel": image.kernel,
            "initrd": initrd,
            "cmdline": format!("{BASE_CMDLINE} {}", self.cmdline_extra).trim(),
            "serial": {"log": format!("{w}/serial.log")},
        });
        let secs = self.timeout.as_secs();
        let vmm = env!("CARGO_BIN_EXE_vireo-vmm");
        let script = format!(
            "W={w}\nrm -rf $W; mkdir -p $W\n\
             cat > $W/vm.json <<'VIREO_EOF'\n{cfg}\nVIREO_EOF\n\
             cat > $W/steps.json <<'VIREO_EOF'\n{steps}\nVIREO_EOF\n\
             cat > $W/driver.py <<'VIREO_EOF'\n{DRIVER}\nVIREO_EOF\n\
             timeout -s KILL {secs} {vmm} --config $W/vm.json --control $W/ctl.sock 2>$W/stderr & pid=$!\n\
             timeout -s KILL {dsecs} python3 $W/driver.py $W & dpid=$!\n\
             wait $pid; rc=$?\n\
             wait $dpid\n\
             echo VMM-EXIT=$rc\n\
             echo VMM-SERIAL-BEGIN; cat $W/serial.log; echo; echo VMM-SERIAL-END\n\
             echo VMM-STDERR-BEGIN; cat $W/stderr; echo VMM-STDERR-END\n",
            steps = Value::Array(self.steps.clone()),
            dsecs = secs + 5,
        );
        let out = vireo_rig::run_command(&script, Duration::from_secs(secs + 60))
            .unwrap_or_else(|e| panic!("rig: {e}"));
        parse(&out.text())
    }
}

/// Why `out` is a boot the nested rig lost rather than a verdict on the VMM, if it is one.
pub fn lost_boot(out: &Outcome, triple_fault_expected: bool) -> Option<String> {
    if out.exit.is_none() || (out.serial.is_empty() && out.exit != Some(0)) {
        Some(format!("no verdict from the VMM (exit {:?})", out.exit))
    } else if !triple_fault_expected && out.stderr.contains("triple fault (KVM_EXIT_SHUTDOWN)") {
        Some("the nested rig lost the L2 boot to a triple fault".to_owned())
    } else {
        None
    }
}

fn section(text: &str, begin: &str, end: &str) -> String {
    let Some(a) = text.find(begin) else {
        return String::new();
    };
    let rest = &text[a + begin.len()..];
    let b = rest.find(end).unwrap_or(rest.len());
    rest[..b].trim_matches('\n').to_owned()
}

fn parse(text: &str) -> Outcome {
    let exit = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("VMM-EXIT="))
        .and_then(|v| v.trim().parse::<i32>().ok())
        // 137 = killed by the watchdog: no verdict from the VMM.
        .filter(|c| *c != 137);
    let driver = text
        .lines()
        .filter_map(|l| l.find("DRIVER ").map(|i| &l[i + 7..]))
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect();
    Outcome {
        exit,
        serial: section(text, "VMM-SERIAL-BEGIN", "VMM-SERIAL-END"),
        stderr: section(text, "VMM-STDERR-BEGIN", "VMM-STDERR-END"),
        driver,
        raw: text.to_owned(),
    }
}

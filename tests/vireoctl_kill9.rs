//! kill -9 at random instants during define / undefine / start / destroy never loses or corrupts
//! a definition: after every kill each definition file is byte-for-byte one of the versions
//! that was ever defined, and no file is missing that no undefine could have removed.
//!
//! `VIREO_KILL9_TRIALS` sets the number of trials (default 200).

mod vireoctl_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use vireoctl_support::{domain_xml, guest, Home};

/// xorshift: deterministic per run seed, printed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn variant(base: &str, uuid: &str, mem_kib: u64) -> String {
    base.replacen(
        "<memory unit='KiB'>16384</memory>",
        &format!("<uuid>{uuid}</uuid>\n  <memory unit='KiB'>{mem_kib}</memory>"),
        1,
    )
}

#[test]
fn kill9_never_loses_or_corrupts_a_definition() {
    let trials: u32 = std::env::var("VIREO_KILL9_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill9 seed {seed}, {trials} trials");
    let mut rng = Rng(seed);
    let h = Home::new("k9");
    vireoctl_support::vmm();
    let mut code = guest::print("k\n");
    code.extend(guest::spin());
    let kernel = h.file("k.elf", &guest::pvh_elf(&code));

    // name -> every version ever handed to define (a killed define may or may not have landed).
    let mut versions: HashMap<String, Vec<String>> = HashMap::new();
    // Names that must exist (never undefined) and names that may.
    let keep: Vec<String> = (0..4).map(|i| format!("keep{i}")).collect();
    let churn: Vec<String> = (0..3).map(|i| format!("churn{i}")).collect();
    for (i, n) in keep.iter().chain(churn.iter()).enumerate() {
        let base = domain_xml(n, &kernel, "", ("destroy", "restart", "destroy"));
        let uuid = format!("00000000-0000-4000-8000-{:012x}", i + 1);
        let vs: Vec<String> = (0..3)
            .map(|m| variant(&base, &uuid, 16384 * (m + 1)))
            .collect();
        versions.insert(n.clone(), vs);
    }
    for n in &keep {
        let f = h.file(&format!("{n}-0.xml"), versions[n][0].as_bytes());
        h.ok(&["define", f.to_str().unwrap()]);
    }
    let mut ops: HashMap<&str, u32> = HashMap::new();
    let mut killed = 0;
    let start = Instant::now();
    for t in 0..trials {
        let all: Vec<&String> = keep.iter().chain(churn.iter()).collect();
        let name = all[rng.below(all.len() as u64) as usize].clone();
        let op = match rng.below(10) {
            0..=3 => "define",
            4..=5 => "undefine",
            6..=7 => "start",
            _ => "destroy",
        };
        // Only churn machines are ever undefined.
        let op = if op == "undefine" && keep.contains(&name) {
            "define"
        } else {
            op
        };
        *ops.entry(op).or_default() += 1;
        let mut args: Vec<String> = vec![op.into()];
        if op == "define" {
            let v = rng.below(3) as usize;
            let f = h.file(&format!("in-{t}.xml"), versions[&name][v].as_bytes());
            args.push(f.display().to_string());
        } else {
            args.push(name.clone());
        }
        let mut child = h
            .cmd()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere in the first 12 ms: process start-up, parsing, the locked write.
        let delay = Duration::from_micros(rng.below(12_000));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed += 1;
        }
        let _ = child.wait();

        // Check the store right away, from the files themselves.
        for n in &keep {
            let p = h.machines().join(format!("{n}.xml"));
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("trial {t} ({op} {name}, seed {seed}): {n} lost: {e}"));
            assert!(
                versions[n].contains(&text),
                "trial {t} ({op} {name}, seed {seed}): {n} corrupted:\n{text}"
            );
        }
        for n in &churn {
            let p = h.machines().join(format!("{n}.xml"));
            if let Ok(text) = std::fs::read_to_string(&p) {
                assert!(
                    versions[n].contains(&text),
                    "trial {t} ({op} {name}, seed {seed}): {n} corrupted:\n{text}"
                );
            }
        }
    }
    let elapsed = start.elapsed();
    // Whatever was left, the tool still reads every definition and can stop every machine.
    // Supervisors started by killed `start`s may still be bringing their helper up: keep
    // destroying until everything stays shut off.
    let deadline = Instant::now() + Duration::from_secs(30);
    let json = loop {
        let (c, out, err) = h.run(&["list", "--all", "--json"]);
        assert_eq!(c, 0, "list after the kills: {err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut all_off = true;
        for m in json.as_array().unwrap() {
            let n = m["name"].as_str().unwrap();
            if m["state"] != "shutoff" || h.runtime(n).join("ctl").exists() {
                all_off = false;
                let (c, _, e) = h.run(&["destroy", n]);
                assert!(c == 0 || c == 5, "destroy {n}: {e}");
            }
        }
        if all_off {
            std::thread::sleep(Duration::from_millis(300));
            let again: serde_json::Value =
                serde_json::from_str(&h.ok(&["list", "--all", "--json"])).unwrap();
            if again
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["state"] == "shutoff")
            {
                break again;
            }
        }
        assert!(
            Instant::now() < deadline,
            "machines keep running after destroy: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for n in &keep {
        assert!(
            json.as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == n.as_str()),
            "{n} missing from list"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(h.machines())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    eprintln!(
        "kill9: {trials} trials in {:.1} s, {killed} processes killed mid-way, ops {ops:?}, temp files left by killed writers: {}",
        elapsed.as_secs_f64(),
        leftovers.len()
    );
    assert!(
        killed > trials / 4,
        "too few kills ({killed}) to mean anything"
    );
}

//! The wire protocol between the host and L1's command agent (`l1_agent.sh`) on L1's second
//! serial port.
//!
//! Host to agent, one line each:
//! ```text
//! VIREO-RIG-BEGIN id timeout_s len crc32     a command follows: len bytes, zlib CRC-32 (hex)
//! |script line                               each script line, prefixed with '|'
//! VIREO-RIG-END id
//! VIREO-RIG-QUERY id                         "how did id end?" (its EXIT line may be lost)
//! VIREO-RIG-PING token                       "are you there?" (between commands)
//! (empty line)                               a keep-alive; the agent ignores it
//! ```
//! Agent to host (the command's output arrives between START and EXIT):
//! ```text
//! VIREO-RIG-START id                         script arrived intact, command started
//! VIREO-RIG-NAK id reason                    script arrived damaged or cut short: send again
//! VIREO-RIG-EXIT id rc timed_out             command ended (timed_out 1: killed at its timeout)
//! VIREO-RIG-DUP id rc timed_out              id ran already (answer to a resend or a QUERY)
//! VIREO-RIG-UNKNOWN id                       QUERY for an id the agent has not run last
//! VIREO-RIG-PONG token ...
//! ```
//! The '|' prefix means no script line can be taken for a control line, and a control line
//! arriving inside a script (a resend after lost bytes) aborts the damaged copy. Length and
//! checksum catch lost or merged bytes. A resent copy of a command that already ran is answered
//! with DUP, never run twice. Every serial line is plain data to the tty layer, so a lost byte
//! costs one resend (seconds), not L1.

use std::fmt::Write as _;

/// zlib's CRC-32 (what busybox `crc32` prints, as 8 hex digits).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The script as the agent stores it: each line (as `str::lines` splits them) plus '\n'.
pub fn normalized(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + 1);
    for line in script.lines() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The whole message that sends `script` as command `id`.
pub fn frame(id: &str, timeout_s: u64, script: &str) -> String {
    let body = normalized(script);
    let mut msg = String::with_capacity(body.len() + body.lines().count() + 96);
    let _ = writeln!(
        msg,
        "VIREO-RIG-BEGIN {id} {timeout_s} {} {:08x}",
        body.len(),
        crc32(body.as_bytes())
    );
    for line in body.lines() {
        msg.push('|');
        msg.push_str(line);
        msg.push('\n');
    }
    let _ = writeln!(msg, "VIREO-RIG-END {id}");
    msg
}

/// The line asking how command `id` ended.
pub fn query(id: &str) -> String {
    format!("VIREO-RIG-QUERY {id}\n")
}

/// What the agent said about one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Start,
    Nak(String),
    /// The command ended (EXIT), or had ended already (DUP).
    Exit {
        rc: i32,
        timed_out: bool,
        repeated: bool,
    },
    Unknown,
}

/// A control line found in a line of serial output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Output before the marker on the same line (a command's last line without '\n').
    pub before: String,
    /// The command id the marker is about.
    pub id: String,
    pub reply: Reply,
}

const MARKERS: &[&str] = &[
    "VIREO-RIG-START ",
    "VIREO-RIG-NAK ",
    "VIREO-RIG-EXIT ",
    "VIREO-RIG-DUP ",
    "VIREO-RIG-UNKNOWN ",
];

/// Finds an agent reply in `line` (anywhere: output without a final newline runs into it).
/// PONG and lines without a marker are `None`. Malformed numbers read as rc -1, which no real
/// command has.
pub fn parse(line: &str) -> Option<Found> {
    let (pos, marker) = MARKERS
        .iter()
        .filter_map(|m| line.find(m).map(|p| (p, *m)))
        .min_by_key(|(p, _)| *p)?;
    let before = line[..pos].to_owned();
    let mut f = line[pos + marker.len()..].split_whitespace();
    let id = f.next()?.to_owned();
    let reply = match marker {
        "VIREO-RIG-START " => Reply::Start,
        "VIREO-RIG-NAK " => Reply::Nak(f.collect::<Vec<_>>().join(" ")),
        "VIREO-RIG-UNKNOWN " => Reply::Unknown,
        m => {
            let rc = f.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
            let timed_out = f.next() == Some("1");
            Reply::Exit {
                rc,
                timed_out,
                repeated: m == "VIREO-RIG-DUP ",
            }
        }
    };
    Some(Found { before, id, reply })
}

/// Whether `line` is protocol chatter rather than command output (PONGs, replies about other
/// commands): never shown as a command's output.
pub fn is_control(line: &str) -> bool {
    line.starts_with("VIREO-RIG-") || line.starts_with("VIREO-L1-READY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib_and_busybox() {
        // Values from `printf ... | busybox crc32` and zlib.crc32.
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"hello\n"), 0x363a_3020);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn frame_prefixes_lines_and_counts_what_the_agent_stores() {
        let msg = frame("7x1", 60, "echo a\r\nVIREO-RIG-END 7x1\n\nlast");
        let body = "echo a\nVIREO-RIG-END 7x1\n\nlast\n";
        let want = format!(
            "VIREO-RIG-BEGIN 7x1 60 {} {:08x}\n|echo a\n|VIREO-RIG-END 7x1\n|\n|last\nVIREO-RIG-END 7x1\n",
            body.len(),
            crc32(body.as_bytes())
        );
        assert_eq!(msg, want);
        // A script line that looks like a control line cannot end the script early.
        assert_eq!(msg.lines().filter(|l| *l == "VIREO-RIG-END 7x1").count(), 1);
    }

    #[test]
    fn empty_script_is_one_begin_and_one_end() {
        assert_eq!(
            frame("a", 1, ""),
            "VIREO-RIG-BEGIN a 1 0 00000000\nVIREO-RIG-END a\n"
        );
    }

    #[test]
    fn replies_are_found_with_the_output_before_them() {
        assert_eq!(
            parse("VIREO-RIG-START 1x2"),
            Some(Found {
                before: String::new(),
                id: "1x2".into(),
                reply: Reply::Start
            })
        );
        let f = parse("no newlineVIREO-RIG-EXIT 1x2 7 0").unwrap();
        assert_eq!(f.before, "no newline");
        assert_eq!(
            f.reply,
            Reply::Exit {
                rc: 7,
                timed_out: false,
                repeated: false
            }
        );
        assert_eq!(
            parse("VIREO-RIG-DUP 1x2 137 1").unwrap().reply,
            Reply::Exit {
                rc: 137,
                timed_out: true,
                repeated: true
            }
        );
        assert_eq!(
            parse("VIREO-RIG-NAK 1x2 got=10,deadbeef").unwrap().reply,
            Reply::Nak("got=10,deadbeef".into())
        );
        assert_eq!(
            parse("VIREO-RIG-UNKNOWN 1x2").unwrap().reply,
            Reply::Unknown
        );
        assert_eq!(
            parse("VIREO-RIG-EXIT 1x2 garbage").unwrap().reply,
            Reply::Exit {
                rc: -1,
                timed_out: false,
                repeated: false
            }
        );
        assert_eq!(parse("VIREO-RIG-PONG 3 uptime=1"), None);
        assert_eq!(parse("plain output"), None);
        assert_eq!(parse("VIREO-RIG-START "), None);
    }

    #[test]
    fn control_lines_are_recognised() {
        assert!(is_control("VIREO-RIG-DUP 1x1 0 0"));
        assert!(is_control("VIREO-RIG-PONG x"));
        assert!(!is_control("echo VIREO-RIG-START"));
    }

    /// The framing against the real agent loop, run by the host's busybox with pipes in place
    /// of the serial port: intact, damaged, interrupted and repeated messages.
    #[test]
    fn agent_script_accepts_intact_and_rejects_damaged_messages() {
        use std::io::Write;
        let Some(bb) = ["/usr/bin/busybox", "/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
        else {
            panic!("busybox not found: install busybox-static");
        };
        let dir = std::env::temp_dir().join(format!("vireo-rig-agent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let good = frame("t1", 30, "echo one\necho two >&2\nexit 3");
        let damaged = frame("t2", 30, "echo lost-a-byte").replacen("lost", "lst", 1);
        let cut = frame("t3", 30, "echo cut");
        let cut = &cut[..cut.find("VIREO-RIG-END").unwrap()];
        let after_cut = frame("t3", 30, "echo cut");
        let mut input = String::new();
        input.push_str(&good);
        input.push('\n');
        input.push_str(&good); // a resend of a command that ran: DUP, not a second run
        input.push_str(&query("t1"));
        input.push_str(&query("nope"));
        input.push_str(&damaged);
        input.push_str(cut);
        input.push_str(&after_cut);
        // A command killed by its watchdog, with a child that would outlive it.
        input.push_str(&frame("t4", 1, "sleep 30 & sleep 31"));
        input.push_str("VIREO-RIG-PING p1\n");
        let mut child = std::process::Command::new(bb)
            .args(["sh", "-c"])
            .arg(format!(
                "VIREO_AGENT_TEST=1\nVIREO_AGENT_TMP='{}'\nVIREO_AGENT_BUSYBOX='{bb}'\n{}",
                dir.display(),
                crate::rig::L1_AGENT
            ))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let want = [
            "VIREO-RIG-START t1",
            "one",
            "two",
            "VIREO-RIG-EXIT t1 3 0",
            "VIREO-RIG-DUP t1 3 0",
            "VIREO-RIG-DUP t1 3 0",
            "VIREO-RIG-UNKNOWN nope",
            "VIREO-RIG-NAK t2 got=16,",
            "VIREO-RIG-NAK t3 interrupted by=VIREO-RIG-BEGIN t3 30 ",
            "VIREO-RIG-START t3",
            "cut",
            "VIREO-RIG-EXIT t3 0 0",
            "VIREO-RIG-START t4",
            "VIREO-RIG-EXIT t4 137 1",
            "VIREO-RIG-PONG p1",
        ];
        let why = format!(
            "agent said:\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lines.len(), want.len(), "{why}");
        for (got, want) in lines.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} is not {want:?}; {why}");
        }
    }
}
